#include "tokenizer/bpe.h"

#include <fmt/format.h>

#include <queue>

#include "upg/tokenizer/byte-level.h"
#include "upg/core/error.h"

namespace upg::tokenizer {
namespace {

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

}  // namespace

BpeModel::BpeModel(const std::vector<std::string>& vocab, const std::vector<std::string>& merges, int32_t unk_id,
                   bool ignore_merges)
    : unk_id_(unk_id), ignore_merges_(ignore_merges) {
  ids_.reserve(vocab.size());
  // First occurrence wins when a vocab repeats a text, as llama.cpp does.
  for (size_t i = 0; i < vocab.size(); ++i) ids_.emplace(vocab[i], static_cast<int32_t>(i));
  for (int b = 0; b < 256; ++b) byte_ids_[b] = find(bytes_to_byte_level(std::string(1, static_cast<char>(b))));

  merges_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const std::string& m = merges[r];
    // Byte-level tokens never hold a raw space (it is "Ġ"), so the first space splits.
    const size_t sp = m.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= m.size())
      throw Error(fmt::format("tokenizer: merges[{}] '{}' is not two space-separated tokens", r, m));
    const std::string_view left(m.data(), sp), right(m.data() + sp + 1, m.size() - sp - 1);
    const int32_t a = find(left), b = find(right);
    std::string joined(left);
    joined += right;
    const int32_t c = find(joined);
    if (a < 0 || b < 0 || c < 0)
      throw Error(fmt::format("tokenizer: merges[{}] '{}' uses a token that is not in the vocab ('{}')", r, m,
                              a < 0 ? std::string(left) : b < 0 ? std::string(right) : joined));
    // A repeated pair keeps its first (highest-priority) rank.
    merges_.emplace(pair_key(a, b), Merge{static_cast<int32_t>(r), c});
  }
}

int32_t BpeModel::find(std::string_view text) const {
  auto it = ids_.find(text);
  return it == ids_.end() ? -1 : it->second;
}

void BpeModel::merge_word(std::string_view raw, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    const int32_t whole = find(bytes_to_byte_level(raw));
    if (whole >= 0) {
      out.push_back(whole);
      return;
    }
  }
  // Symbols form a linked list; a heap of candidate pairs ordered by (rank, position)
  // gives the same result as the classic "merge the best pair, repeat" loop in
  // O(n log n), which matters for long runs of whitespace or digits-free text.
  struct Sym {
    int32_t id, prev, next;
  };
  struct Cand {
    int32_t rank, left, left_id, right_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::vector<Sym> syms(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    syms[i] = {byte_ids_[static_cast<unsigned char>(raw[i])], static_cast<int32_t>(i) - 1,
               i + 1 < raw.size() ? static_cast<int32_t>(i + 1) : -1};
  }
  std::priority_queue<Cand, std::vector<Cand>, std::greater<>> heap;
  auto push_pair = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = syms[left].next;
    if (right < 0 || syms[left].id < 0 || syms[right].id < 0) return;
    auto it = merges_.find(pair_key(syms[left].id, syms[right].id));
    if (it != merges_.end()) heap.push({it->second.rank, left, syms[left].id, syms[right].id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) push_pair(i);

  constexpr int32_t kDead = -2;
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& l = syms[c.left];
    // Stale entries (a side already merged into something else) are skipped.
    if (l.id != c.left_id || l.next < 0 || syms[l.next].id != c.right_id) continue;
    const int32_t r = l.next;
    l.id = merges_.at(pair_key(c.left_id, c.right_id)).result;
    l.next = syms[r].next;
    if (l.next >= 0) syms[l.next].prev = c.left;
    syms[r].id = kDead;
    push_pair(l.prev);
    push_pair(c.left);
  }
  for (int32_t i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) {
    // A byte with no token of its own becomes unk, or is dropped as HF does without one.
    if (syms[i].id >= 0) {
      out.push_back(syms[i].id);
    } else if (unk_id_ >= 0) {
      out.push_back(unk_id_);
    }
  }
}

void BpeModel::encode_piece(std::string_view raw, std::vector<int32_t>& out) const {
  if (raw.empty()) return;
  {
    std::lock_guard lock(cache_mu_);
    auto it = cache_.find(raw);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  merge_word(raw, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard lock(cache_mu_);
  if (cache_.size() >= kCacheLimit) cache_.clear();  // crude bound; hits stay high in practice
  cache_.emplace(std::string(raw), std::move(ids));
}

}  // namespace upg::tokenizer
