#pragma once
#include <cstdint>
#include <vector>

namespace upg {

// A batch of tokens from one or more sequences, as plain data (vLLM style): the engine's
// scheduler fills it, the model runs it in one pass.
struct Batch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;   // position of each token inside its sequence
  std::vector<int32_t> seq_ids;     // KV cache sequence slot of each token
  std::vector<uint8_t> want_logits; // 1: return logits for this token
  void add(int32_t token, int32_t pos, int32_t seq, bool logits) {
    tokens.push_back(token);
    positions.push_back(pos);
    seq_ids.push_back(seq);
    want_logits.push_back(logits ? 1 : 0);
  }
  void clear() {
    tokens.clear();
    positions.clear();
    seq_ids.clear();
    want_logits.clear();
  }
  size_t size() const { return tokens.size(); }
};

}  // namespace upg
