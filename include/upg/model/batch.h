#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace upg {

// A batch of tokens from one or more sequences, as plain data (vLLM style): the engine's
// scheduler fills it, the model runs it in one pass.
//
// Where each token's keys and values live: with block tables (the engine's KvManager),
// token i's sequence's table is tables[i], and position p of it is in cache slot
// table[p / block size] * block size + p % block size. Without them (tables empty), the
// cache is split into max_sequences contiguous contexts and seq_ids picks one: the
// default for callers that run fixed sequences (perplexity, calibration, tests).
struct Batch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;   // position of each token inside its sequence
  std::vector<int32_t> seq_ids;     // the token's sequence (without tables: its context, < max_sequences)
  std::vector<uint8_t> want_logits; // kLogits: return this token's logits; kGreedy: only their argmax
  // want_logits values. kGreedy sends back one token id (Model::greedy) where kLogits
  // sends a vocabulary of floats: greedy sampling where the logits are computed.
  static constexpr uint8_t kNone = 0, kLogits = 1, kGreedy = 2;
  std::vector<int32_t> tables;         // [size()] the block table of each token, or empty
  std::vector<int32_t> block_ids;      // the block tables, one after another
  std::vector<int32_t> table_offsets;  // table t is block_ids[table_offsets[t] .. table_offsets[t + 1])
  // Batch invariance (Backend::set_decode_rows), or empty: [size()] 1 for a token of its
  // request's prompt, 0 for a generated one. A token then runs through its class's
  // kernels whatever else the batch holds, so a request gives the same logits alone or
  // among others (on a backend whose batch_invariant() is true).
  std::vector<uint8_t> prompt;
  void add(int32_t token, int32_t pos, int32_t seq, bool logits) {
    tokens.push_back(token);
    positions.push_back(pos);
    seq_ids.push_back(seq);
    want_logits.push_back(logits ? 1 : 0);
  }
  // A token whose keys and values go through block table `table` (from add_table).
  void add(int32_t token, int32_t pos, int32_t seq, bool logits, int32_t table) {
    add(token, pos, seq, logits);
    tables.push_back(table);
  }
  // Adds a sequence's block table; returns its number for add().
  int32_t add_table(std::span<const int32_t> blocks) {
    if (table_offsets.empty()) table_offsets.push_back(0);
    block_ids.insert(block_ids.end(), blocks.begin(), blocks.end());
    table_offsets.push_back(int32_t(block_ids.size()));
    return int32_t(table_offsets.size() - 2);
  }
  void clear() {
    tokens.clear();
    positions.clear();
    seq_ids.clear();
    want_logits.clear();
    tables.clear();
    block_ids.clear();
    table_offsets.clear();
    prompt.clear();
  }
  size_t size() const { return tokens.size(); }
};

}  // namespace upg
