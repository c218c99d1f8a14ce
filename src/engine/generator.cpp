#include "upg/engine/generator.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include <fmt/format.h>

#include "engine/kv-manager.h"
#include "engine/stop-strings.h"
#include "upg/core/error.h"

namespace upg {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

Generator::Generator(Model& model)
    : model_(model), kv_(std::make_unique<KvManager>(model.kv_blocks(), model.kv_block_size(), false)) {
  kv_->start(0, {});
}

Generator::~Generator() = default;

std::span<const float> Generator::decode(size_t begin, size_t end) {
  slots_.clear();
  copies_.clear();
  kv_->append(0, std::span<const int32_t>(cached_).subspan(begin, end - begin), slots_, copies_);
  if (!copies_.empty()) model_.copy_kv_blocks(copies_);
  batch_.clear();
  const int32_t table = batch_.add_table(kv_->block_table(0));
  for (size_t i = begin; i < end; ++i) batch_.add(cached_[i], int32_t(i), 0, i + 1 == end, table);
  try {
    return model_.decode(batch_);
  } catch (...) {
    kv_->truncate(0, int(begin));  // their keys and values were never computed
    throw;
  }
}

GenerateStats Generator::generate(std::string_view prompt, const GenerateParams& params,
                                  const TokenCallback& on_token) {
  const Tokenizer& tok = model_.tokenizer();
  return generate(tok.encode(prompt, tok.add_bos(), true), params, on_token);
}

GenerateStats Generator::generate(const std::vector<int32_t>& prompt, const GenerateParams& params,
                                  const TokenCallback& on_token) {
  const int ctx = model_.context_length();
  if (prompt.empty()) throw Error("prompt is empty");
  if (prompt.size() >= size_t(ctx))
    throw ParamError("prompt", fmt::format("{} tokens do not fit the context of {} tokens", prompt.size(), ctx));
  const int n_prompt = int(prompt.size());
  // In 64 bits: a token limit near INT_MAX ("as many as fit") must not wrap.
  if (params.max_new_tokens >= 0 && int64_t(n_prompt) + params.max_new_tokens > ctx)
    throw ParamError("max_new_tokens", fmt::format("prompt ({} tokens) plus {} new tokens exceeds the context of {} tokens",
                                                   n_prompt, params.max_new_tokens, ctx));

  const Tokenizer* tok = model_.has_tokenizer() ? &model_.tokenizer() : nullptr;
  std::vector<int32_t> stop_ids;
  if (tok && !params.ignore_eos) stop_ids = tok->stop_ids();
  for (int id : model_.config().eos_token_ids)
    if (!params.ignore_eos && std::find(stop_ids.begin(), stop_ids.end(), id) == stop_ids.end()) stop_ids.push_back(id);

  // Reuse the cached prefix; at least the last prompt token is recomputed for its logits.
  const std::vector<int32_t>& in_cache = kv_->tokens(0);
  size_t keep = 0;
  while (keep < in_cache.size() && keep < prompt.size() && in_cache[keep] == prompt[keep]) ++keep;
  keep = std::min(keep, prompt.size() - 1);
  kv_->truncate(0, int(keep));
  cached_.assign(prompt.begin(), prompt.end());

  GenerateStats st;
  st.prompt_tokens = n_prompt;
  st.prefilled_tokens = int(prompt.size() - keep);
  Sampler sampler(params.sampling);
  StopStringFilter stops(params.stop_strings);
  std::optional<StreamDecoder> text;
  if (tok) text.emplace(*tok, true);

  auto t0 = std::chrono::steady_clock::now();
  std::span<const float> logits = decode(keep, prompt.size());
  st.prompt_seconds = seconds_since(t0);

  auto t1 = std::chrono::steady_clock::now();
  auto emit = [&](std::string_view piece, int32_t id) {
    std::string shown = stops.push(piece);
    bool go = shown.empty() || on_token(shown, id);
    if (stops.stopped()) {
      st.stop_reason = StopReason::kStopString;
      return false;
    }
    if (!go) st.stop_reason = StopReason::kCallback;
    return go;
  };
  while (true) {
    const int32_t next = sampler.sample(logits, cached_);
    if (st.generated_tokens == 0) t1 = std::chrono::steady_clock::now();  // decode timing starts after token 1
    if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) {
      st.stop_reason = StopReason::kEos;
      break;
    }
    cached_.push_back(next);
    ++st.generated_tokens;
    if (!emit(text ? text->push(next) : fmt::format("[{}]", next), next)) break;
    if (params.max_new_tokens >= 0 && st.generated_tokens >= params.max_new_tokens) {
      st.stop_reason = StopReason::kLength;
      break;
    }
    if (int(cached_.size()) >= ctx) {
      st.stop_reason = StopReason::kContextFull;
      break;
    }
    logits = decode(cached_.size() - 1, cached_.size());
  }
  if (st.stop_reason != StopReason::kStopString && st.stop_reason != StopReason::kCallback) {
    std::string rest = text ? text->flush() : std::string();
    rest = stops.push(rest) + stops.flush();
    if (!rest.empty()) on_token(rest, -1);
  }
  st.decode_seconds = st.generated_tokens > 1 ? seconds_since(t1) : 0;
  return st;
}

}  // namespace upg
