#pragma once
// Byte-level BPE model: vocab lookup and merges applied by rank.
#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace upg::tokenizer {

class BpeModel {
 public:
  // `vocab` is id -> byte-level text, `merges` "left right" by priority. Throws
  // upg::Error naming the merge when a merge's parts or result are not in the vocab.
  BpeModel(const std::vector<std::string>& vocab, const std::vector<std::string>& merges, int32_t unk_id,
           bool ignore_merges);

  // Appends the ids of one pre-token given as raw bytes. Thread-safe; results are cached.
  void encode_piece(std::string_view raw, std::vector<int32_t>& out) const;
  // Id of a byte-level token text, or -1.
  int32_t find(std::string_view text) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> ids_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) -> merge
  std::array<int32_t, 256> byte_ids_;          // id of each single-byte token, or -1
  int32_t unk_id_;
  bool ignore_merges_;

  // Long texts repeat the same words; caching them makes encoding close to linear.
  static constexpr size_t kCacheLimit = 1 << 16;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;

  void merge_word(std::string_view raw, std::vector<int32_t>& out) const;
};

}  // namespace upg::tokenizer
