#pragma once
// Parameter checks shared by the step factories and the Sampler constructor. They throw
// ParamError naming the SamplingParams field; front ends (the CLI) name it their way.
#include "upg/sampling/sampling.h"

namespace upg::sampling {

void check_temperature(float t);   // finite; <= 0 means greedy
void check_top_k(int k);           // >= 0; 0 means off
void check_top_p(float p);         // (0, 1]
void check_min_p(float p);         // [0, 1]
void check_repeat_penalty(float r);     // finite, > 0
void check_frequency_penalty(float f);  // finite
void check_presence_penalty(float f);   // finite
void check_repeat_last_n(int n);        // >= -1
void check_params(const SamplingParams& p);

}  // namespace upg::sampling
