#include "engine/kv-manager.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg {

namespace {

// splitmix64's finalizer: every input bit reaches every output bit.
uint64_t mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The hash of a block's tokens after the prefix whose hash is `prev`. A hash only picks
// the candidate; find() compares the tokens and the parent block, so a collision costs
// a miss, never a wrong prefix.
uint64_t chain(uint64_t prev, std::span<const int32_t> tokens) {
  uint64_t h = mix(prev + 0x9e3779b97f4a7c15ULL);
  for (int32_t t : tokens) h = mix(h ^ uint32_t(t));
  return h;
}

constexpr uint64_t kRootHash = 0;

}  // namespace

KvManager::KvManager(int n_blocks, int block_size, bool prefix_sharing)
    : block_size_(block_size), prefix_sharing_(prefix_sharing) {
  if (n_blocks <= 0) throw ParamError("n_blocks", fmt::format("must be positive, got {}", n_blocks));
  if (block_size <= 0) throw ParamError("block_size", fmt::format("must be positive, got {}", block_size));
  blocks_.resize(size_t(n_blocks));
  free_.reserve(size_t(n_blocks));
  for (int32_t b = n_blocks - 1; b >= 0; --b) free_.push_back(b);
}

const KvManager::Seq& KvManager::get(int32_t seq) const {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) throw Error(fmt::format("KV cache: no sequence {}", seq));
  return it->second;
}

KvManager::Seq& KvManager::get(int32_t seq) {
  return const_cast<Seq&>(std::as_const(*this).get(seq));
}

int32_t KvManager::find(uint64_t hash, int32_t parent, std::span<const int32_t> tokens) const {
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return -1;
  const Block& b = blocks_[size_t(it->second)];
  const bool parent_same = b.parent == parent && (parent < 0 || b.parent_gen == blocks_[size_t(parent)].gen);
  return parent_same && std::equal(tokens.begin(), tokens.end(), b.tokens.begin(), b.tokens.end()) ? it->second : -1;
}

int KvManager::start(int32_t seq, std::span<const int32_t> prompt) {
  if (seqs_.count(seq)) throw Error(fmt::format("KV cache: sequence {} already exists", seq));
  Seq s;
  if (prefix_sharing_ && !prompt.empty()) {
    const size_t B = size_t(block_size_), full = (prompt.size() - 1) / B;
    uint64_t hash = kRootHash;
    int32_t parent = -1;
    for (size_t i = 0; i < full; ++i) {
      const std::span<const int32_t> toks = prompt.subspan(i * B, B);
      hash = chain(hash, toks);
      const int32_t b = find(hash, parent, toks);
      if (b < 0) break;
      Block& blk = blocks_[size_t(b)];
      if (blk.refs++ == 0) lru_.erase(blk.lru);
      s.table.push_back(b);
      s.hashes.push_back(hash);
      parent = b;
    }
    s.tokens.assign(prompt.begin(), prompt.begin() + ptrdiff_t(s.table.size() * B));
  }
  const int cached = int(s.tokens.size());
  seqs_.emplace(seq, std::move(s));
  return cached;
}

bool KvManager::must_copy(const Seq& s, size_t pos) const {
  const size_t i = pos / size_t(block_size_);
  return i < s.table.size() && blocks_[size_t(s.table[i])].refs > 1;
}

int KvManager::blocks_needed(int32_t seq, int n_tokens) const {
  if (n_tokens < 0) throw ParamError("n_tokens", fmt::format("must not be negative, got {}", n_tokens));
  const Seq& s = get(seq);
  if (n_tokens == 0) return 0;
  const size_t B = size_t(block_size_), end = s.tokens.size() + size_t(n_tokens);
  const size_t have = s.table.size(), want = (end + B - 1) / B;
  // Only the block holding the first new token can be shared: every later one is new.
  return int(want - std::min(want, have)) + (must_copy(s, s.tokens.size()) ? 1 : 0);
}

bool KvManager::can_append(int32_t seq, int n_tokens) const { return blocks_needed(seq, n_tokens) <= free_blocks(); }

int32_t KvManager::take_block() {
  int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else {
    b = lru_.front();
    lru_.pop_front();
    unregister(b);
  }
  blocks_[size_t(b)].refs = 1;
  return b;
}

void KvManager::unregister(int32_t block) {
  Block& b = blocks_[size_t(block)];
  if (!b.hashed) return;
  by_hash_.erase(b.hash);
  b.hashed = false;
  b.tokens.clear();
  ++b.gen;  // blocks registered after this one no longer follow it
}

void KvManager::release(int32_t block) {
  Block& b = blocks_[size_t(block)];
  if (--b.refs > 0) return;
  if (b.hashed) b.lru = lru_.insert(lru_.end(), block);
  else free_.push_back(block);
}

void KvManager::append(int32_t seq, std::span<const int32_t> tokens, std::vector<int64_t>& slots,
                       std::vector<BlockCopy>& copies) {
  Seq& s = get(seq);
  const int need = blocks_needed(seq, int(tokens.size()));
  if (need > free_blocks())
    throw Error(fmt::format("KV cache full: sequence {} needs {} more blocks of {} tokens, {} are free", seq, need,
                            block_size_, free_blocks()));
  const size_t B = size_t(block_size_);
  for (int32_t t : tokens) {
    const size_t pos = s.tokens.size(), i = pos / B;
    if (i == s.table.size()) {
      s.table.push_back(take_block());
    } else if (must_copy(s, pos)) {
      const int32_t copy = take_block();
      copies.push_back({s.table[i], copy});
      --blocks_[size_t(s.table[i])].refs;  // still held by another sequence
      s.table[i] = copy;
    } else {
      // This sequence alone holds the block and is about to change it (it was cut back
      // by truncate): its tokens no longer match its registered hash.
      unregister(s.table[i]);
    }
    slots.push_back(int64_t(s.table[i]) * int64_t(B) + int64_t(pos % B));
    s.tokens.push_back(t);
  }
}

void KvManager::commit(int32_t seq, size_t max_tokens) {
  Seq& s = get(seq);
  if (!prefix_sharing_) return;
  const size_t B = size_t(block_size_), full = std::min(s.tokens.size(), max_tokens) / B;
  for (size_t i = s.hashes.size(); i < full; ++i) {
    const std::span<const int32_t> toks(s.tokens.data() + i * B, B);
    const uint64_t hash = chain(i == 0 ? kRootHash : s.hashes[i - 1], toks);
    s.hashes.push_back(hash);
    Block& b = blocks_[size_t(s.table[i])];
    // Another block may already hold the same prefix (two sequences computed it in
    // one step): that one stays the shared copy.
    if (b.hashed || by_hash_.count(hash)) continue;
    b.hashed = true;
    b.hash = hash;
    b.parent = i == 0 ? -1 : s.table[i - 1];
    b.parent_gen = i == 0 ? 0 : blocks_[size_t(b.parent)].gen;
    b.tokens.assign(toks.begin(), toks.end());
    by_hash_.emplace(hash, s.table[i]);
  }
}

void KvManager::truncate(int32_t seq, int n_tokens) {
  Seq& s = get(seq);
  if (n_tokens < 0 || size_t(n_tokens) > s.tokens.size())
    throw ParamError("n_tokens", fmt::format("{} is outside the sequence's 0..{} tokens", n_tokens, s.tokens.size()));
  const size_t B = size_t(block_size_), keep = (size_t(n_tokens) + B - 1) / B;
  // Released last block first, so the free stack hands them back in table order.
  while (s.table.size() > keep) {
    release(s.table.back());
    s.table.pop_back();
  }
  s.tokens.resize(size_t(n_tokens));
  s.hashes.resize(std::min(s.hashes.size(), size_t(n_tokens) / B));
}

void KvManager::fork(int32_t parent, int32_t child) {
  if (seqs_.count(child)) throw Error(fmt::format("KV cache: sequence {} already exists", child));
  Seq s = get(parent);
  for (int32_t b : s.table) ++blocks_[size_t(b)].refs;
  seqs_.emplace(child, std::move(s));
}

void KvManager::free(int32_t seq) {
  truncate(seq, 0);
  seqs_.erase(seq);
}

}  // namespace upg
