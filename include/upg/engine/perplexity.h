#pragma once
// Perplexity over a token sequence, the quality measure of docs/QUALITY.md.
//
// Method (the fixed-length, non-overlapping windows of the transformers documentation):
// the tokens are cut into consecutive windows of `ctx` tokens (the last one may be
// shorter); each window starts a fresh context at position 0 and every token of it but
// the first is scored from the tokens before it in the same window. A window of n tokens
// thus scores n - 1 tokens, exactly the tokens `model(window, labels=window).loss`
// averages over in transformers, so the result is checkable against it window by window.
// Nothing is prepended: add a BOS token to `tokens` if the model expects one.
#include <cstdint>
#include <functional>
#include <vector>

namespace upg {

class Model;

struct PerplexityResult {
  double ppl = 0;        // exp(mean_nll)
  double mean_nll = 0;   // nats per scored token
  int64_t n_scored = 0;  // tokens scored (inputs minus one per window)
  int64_t n_tokens = 0;  // tokens run through the model
  int n_windows = 0;
  double seconds = 0;    // wall time of the forward passes and scoring
};

// Called after each chunk of a window: tokens run through the model so far, of `total`,
// and the running perplexity.
using PerplexityProgress = std::function<void(int64_t done, int64_t total, double running_ppl)>;

// Which tokens of a window are scored. Default: every one but the first, in every window
// (transformers' loss). SecondHalf: as llama.cpp's llama-perplexity scores, only whole
// windows, and in each only the tokens after position ctx / 2 (each predicted from at
// least half a window of context): for checking one evaluator against the other.
enum class PerplexityScoring { AllButFirst, SecondHalf };

// Throws upg::Error when ctx < 2, ctx exceeds the model's context length, fewer than two
// tokens are given (SecondHalf: fewer than ctx), or a token is outside the vocabulary.
PerplexityResult perplexity(Model& model, const std::vector<int32_t>& tokens, int ctx,
                            const PerplexityProgress& progress = {},
                            PerplexityScoring scoring = PerplexityScoring::AllButFirst);

}  // namespace upg
