#pragma once
// Sampling as a chain of small steps over a candidate list (vLLM/llama.cpp style): each
// step narrows or reweights the candidates; the last one picks a token.
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace upg {

struct SamplingParams {
  float temperature = 0.8f;  // <= 0: greedy
  int top_k = 40;            // 0: off
  float top_p = 0.95f;       // >= 1: off
  float min_p = 0.05f;       // <= 0: off
  float repeat_penalty = 1.0f;     // 1: off (llama.cpp / CTRL-style, divides positive logits)
  float frequency_penalty = 0.0f;  // OpenAI style, subtracts count * penalty
  float presence_penalty = 0.0f;   // OpenAI style, subtracts penalty once if present
  int penalty_last_n = 64;         // window of recent tokens the penalties look at; -1 all
  uint64_t seed = 0xFFFFFFFFFFFFFFFFull;  // default: random seed
};

struct Candidate {
  int32_t id;
  float logit;
  float p;  // filled by steps that normalise
};

// The working set the steps operate on.
struct CandidateList {
  std::vector<Candidate> items;
  bool sorted = false;      // by logit, descending
  bool normalized = false;  // p holds softmax of logit over items
};

class SamplerStep {
 public:
  virtual ~SamplerStep() = default;
  virtual const char* name() const = 0;
  // Name plus settings, e.g. "top-k(40)"; what Sampler::describe() chains together.
  virtual std::string describe() const { return name(); }
  // history: tokens so far (prompt + generated), most recent last.
  virtual void apply(CandidateList& c, std::span<const int32_t> history) = 0;
};

// Individual steps, each unit-tested on hand-made logits.
std::unique_ptr<SamplerStep> make_penalties(float repeat, float frequency, float presence, int last_n);
std::unique_ptr<SamplerStep> make_temperature(float t);
std::unique_ptr<SamplerStep> make_top_k(int k);
std::unique_ptr<SamplerStep> make_top_p(float p);
std::unique_ptr<SamplerStep> make_min_p(float p);

class Sampler {
 public:
  // Builds penalties -> top-k -> temperature -> top-p -> min-p -> draw (or greedy when
  // temperature <= 0). Steps that are off are left out of the chain.
  explicit Sampler(const SamplingParams& p);
  ~Sampler();
  // Picks the next token from raw logits [vocab]. Allocation-free after the first call.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
  void reseed(uint64_t seed);
  std::string describe() const;  // "penalties -> top-k(40) -> ..." for --verbose

 private:
  std::vector<std::unique_ptr<SamplerStep>> steps_;
  bool greedy_;
  std::mt19937_64 rng_;
  uint64_t seed_ = 0;  // the seed actually in use (drawn from random_device for the default)
  CandidateList work_;
};

}  // namespace upg
