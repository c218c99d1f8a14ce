#include "upg/engine/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "upg/core/error.h"
#include "upg/model/model.h"

namespace upg {

namespace {

// Tokens per decode call inside a window: the ForwardPass ubatch, and it bounds the
// logits buffer to 256 x vocab floats (50 MB at a 49152 vocabulary).
constexpr int64_t kChunk = 256;

// -log softmax(logits)[target], with the log-sum-exp accumulated in double so a 50k
// vocabulary loses nothing to rounding.
double token_nll(const float* logits, int64_t vocab, int32_t target) {
  const float mx = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i] - mx));
  return std::log(sum) + double(mx) - double(logits[target]);
}

}  // namespace

PerplexityResult perplexity(Model& model, const std::vector<int32_t>& tokens, int ctx,
                            const PerplexityProgress& progress, PerplexityScoring scoring) {
  const int64_t n = int64_t(tokens.size());
  const int64_t vocab = model.config().vocab_size;
  if (ctx < 2) throw Error(fmt::format("perplexity: context {} is too small (at least 2 tokens)", ctx));
  if (ctx > model.context_length())
    throw Error(fmt::format("perplexity: context {} exceeds the model's context length {}", ctx,
                            model.context_length()));
  if (n < 2) throw Error(fmt::format("perplexity: {} tokens given, at least 2 are needed", n));
  const bool half = scoring == PerplexityScoring::SecondHalf;
  if (half && n < ctx)
    throw Error(fmt::format("perplexity: {} tokens given, a whole window of {} is needed", n, ctx));
  // Logits of window positions from `first` on are scored (each predicts the next token).
  const int64_t first = half ? ctx / 2 : 0;
  for (int64_t i = 0; i < n; ++i)
    if (tokens[size_t(i)] < 0 || tokens[size_t(i)] >= vocab)
      throw Error(fmt::format("perplexity: token {} (id {}) outside the vocabulary of {}", i, tokens[size_t(i)],
                              vocab));

  // A trailing window of one token has nothing to score; it is left out.
  const int64_t total = half ? n / ctx * ctx : n - (n % ctx == 1 ? 1 : 0);
  const auto t0 = std::chrono::steady_clock::now();
  PerplexityResult res;
  double nll_sum = 0;
  Batch b;
  for (int64_t w0 = 0; w0 + 1 < n && (!half || w0 + ctx <= n); w0 += ctx) {
    const int64_t len = std::min<int64_t>(ctx, n - w0);
    ++res.n_windows;
    for (int64_t c0 = 0; c0 < len; c0 += kChunk) {
      const int64_t c1 = std::min(len, c0 + kChunk);
      b.clear();
      // Position 0 restarts the sequence's cache, so every window stands alone. The
      // window's last token predicts nothing inside it and needs no logits.
      for (int64_t p = c0; p < c1; ++p) b.add(tokens[size_t(w0 + p)], int32_t(p), 0, p + 1 < len);
      const std::span<const float> logits = model.decode(b);
      for (int64_t p = std::max(c0, first); p < c1 && p + 1 < len; ++p)
        nll_sum += token_nll(logits.data() + (p - c0) * vocab, vocab, tokens[size_t(w0 + p + 1)]);
      res.n_scored += std::max<int64_t>(0, std::min(c1, len - 1) - std::max(c0, first));
      res.n_tokens += c1 - c0;
      if (progress) progress(res.n_tokens, total, std::exp(nll_sum / double(std::max<int64_t>(1, res.n_scored))));
    }
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.mean_nll = nll_sum / double(res.n_scored);
  res.ppl = std::exp(res.mean_nll);
  return res;
}

}  // namespace upg
