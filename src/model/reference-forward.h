#pragma once
// The plain reference forward pass, in the spirit of llama2.c: one token at a time,
// single-threaded scalar loops, fp32 everywhere, state allocated up front. It is slow on
// purpose: every backend and every SIMD target is tested against it.
#include <vector>

#include "model/rope.h"
#include "model/weights.h"
#include "upg/core/config.h"

namespace upg {

class ReferenceForward {
 public:
  ReferenceForward(const ModelConfig& cfg, const ModelWeights& w, int context_length);
  // Runs `token` at position `pos` (positions must be fed in order from 0) and returns
  // the logits [vocab].
  const std::vector<float>& step(int token, int pos);

 private:
  const ModelConfig& cfg_;
  const ModelWeights& w_;
  int ctx_;
  RopeCache rope_;
  // Run state (shapes in comments), allocated once.
  std::vector<float> x_;       // [hidden] residual stream
  std::vector<float> xb_;      // [hidden] normed input
  std::vector<float> q_;       // [H * hd]
  std::vector<float> att_out_; // [H * hd]
  std::vector<float> tmp_;     // [hidden] projection output
  std::vector<float> hb_;      // [inter] gate
  std::vector<float> hb2_;     // [inter] up
  std::vector<float> att_;     // [ctx] attention scores of one head
  std::vector<float> key_cache_, value_cache_;  // [layers, ctx, KV * hd]
  std::vector<float> row_;     // [max(hidden, inter)] one weight row converted to fp32
  std::vector<float> logits_;  // [vocab]
};

}  // namespace upg
