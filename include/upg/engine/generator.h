#pragma once
// Streaming text generation for one sequence on top of Model::decode.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "upg/engine/request.h"
#include "upg/model/model.h"
#include "upg/sampling/sampling.h"

namespace upg {

struct GenerateParams {
  SamplingParams sampling;
  int max_new_tokens = 256;  // < 0: until the context is full
  std::vector<std::string> stop_strings;
  bool ignore_eos = false;
};

struct GenerateStats {
  int prompt_tokens = 0;      // tokens in the prompt
  int prefilled_tokens = 0;   // of which were actually computed (the rest reused the cache)
  int generated_tokens = 0;
  double prompt_seconds = 0;  // prefill time
  double decode_seconds = 0;  // time for every generated token after the first
  StopReason stop_reason = StopReason::kNone;
  double prompt_tok_per_s() const { return prompt_seconds > 0 ? prefilled_tokens / prompt_seconds : 0; }
  double decode_tok_per_s() const {
    return decode_seconds > 0 && generated_tokens > 1 ? (generated_tokens - 1) / decode_seconds : 0;
  }
};

// Called with each printable piece of text (never half a UTF-8 character) and the id of
// the token that completed it; return false to stop.
using TokenCallback = std::function<bool(std::string_view text, int32_t token)>;

class KvManager;

class Generator {
 public:
  explicit Generator(Model& model);
  ~Generator();

  // Tokenizes `prompt` (special tokens parsed, BOS added if the tokenizer asks) and
  // generates. Throws upg::Error when the prompt does not fit the context.
  GenerateStats generate(std::string_view prompt, const GenerateParams& params, const TokenCallback& on_token);
  // Same from token ids. The KV cache keeps the longest common prefix with the previous
  // call (a chat re-sends the whole conversation; only the new turn is prefilled).
  GenerateStats generate(const std::vector<int32_t>& prompt, const GenerateParams& params,
                         const TokenCallback& on_token);

  // Tokens of the sequence so far (prompt and generated).
  const std::vector<int32_t>& history() const { return cached_; }

 private:
  // Appends tokens [begin, end) of cached_ to the sequence's blocks and runs them; only
  // the last one yields logits.
  std::span<const float> decode(size_t begin, size_t end);

  Model& model_;
  std::vector<int32_t> cached_;  // the sequence: prompt and generated tokens
  // Its blocks of the model's KV cache, and which tokens they hold (sequence 0). Prefix
  // sharing is off: the one sequence lives on between calls, so the longest common
  // prefix with the new prompt is kept to the token, not to the block.
  std::unique_ptr<KvManager> kv_;
  Batch batch_;
  std::vector<int64_t> slots_;
  std::vector<BlockCopy> copies_;
};

}  // namespace upg
