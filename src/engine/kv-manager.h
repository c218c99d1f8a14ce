#pragma once
// The paged KV cache's bookkeeping, as plain data: which blocks of the backend's pool
// each sequence owns (its block table), which full blocks hold a known token prefix
// (prefix sharing), and which cached blocks to reuse first when the pool runs low. It
// never touches a tensor: append() answers with the slots to write and the block copies
// to perform (copy-on-write), and the caller runs them on the backend (Model::decode,
// Model::copy_kv_blocks). A scheduler asks can_append() before it admits or extends a
// sequence, and preempts (free) when the answer is no.
#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

#include "upg/core/block-copy.h"

namespace upg {

class KvManager {
 public:
  // A pool of n_blocks blocks of block_size tokens. prefix_sharing off: blocks are never
  // found by their tokens, so start() always returns 0 and commit() does nothing.
  KvManager(int n_blocks, int block_size = 16, bool prefix_sharing = true);

  int n_blocks() const { return int(blocks_.size()); }
  int block_size() const { return block_size_; }
  // Blocks a sequence may still take: unused ones, and cached ones no sequence holds
  // (those are reused least recently used first).
  int free_blocks() const { return int(free_.size() + lru_.size()); }
  // Of which cached blocks no sequence holds (they keep a prefix for a later start()).
  int cached_blocks() const { return int(lru_.size()); }

  // Registers sequence `seq` (any id not in use) for `prompt`. With prefix sharing it
  // takes the committed blocks holding the prompt's leading full blocks and returns how
  // many tokens they cover: the caller computes only prompt[returned..]. At least the
  // last prompt token is left to compute, so that it yields logits. The sequence then
  // holds those tokens; append() the rest, or free() it when can_append() says no (a
  // scheduler keeping the request waiting).
  int start(int32_t seq, std::span<const int32_t> prompt);
  // Whether appending n_tokens to seq fits the free blocks (new blocks and any copy).
  bool can_append(int32_t seq, int n_tokens) const;
  // Blocks appending n_tokens to seq takes from the pool.
  int blocks_needed(int32_t seq, int n_tokens) const;
  // Appends tokens to seq and writes, per token, the cache slot its keys and values go
  // to (block * block_size + offset) into `slots`; where seq must write into a block it
  // shares, it gets a private copy, listed in `copies` (perform them before the forward
  // pass). Throws upg::Error, changing nothing, when the pool cannot hold them.
  void append(int32_t seq, std::span<const int32_t> tokens, std::vector<int64_t>& slots,
              std::vector<BlockCopy>& copies);
  // The keys and values of every token appended to seq so far are in the cache: its full
  // blocks within its first max_tokens tokens may now be shared with sequences that
  // start with the same tokens.
  void commit(int32_t seq, size_t max_tokens = SIZE_MAX);
  // Drops seq's tokens from n_tokens on (a rejected draft, a chat that diverged),
  // releasing the blocks it no longer needs.
  void truncate(int32_t seq, int n_tokens);
  // A new sequence `child` with parent's tokens, sharing all its blocks; whichever writes
  // into a shared block first copies it.
  void fork(int32_t parent, int32_t child);
  // Ends seq (finished, cancelled or preempted): its blocks go back to the pool; the
  // committed full ones stay findable by their tokens until they are reused.
  void free(int32_t seq);

  bool has(int32_t seq) const { return seqs_.count(seq) != 0; }
  // The sequence's block table: block i holds its tokens i * block_size .. + block_size.
  std::span<const int32_t> block_table(int32_t seq) const { return get(seq).table; }
  const std::vector<int32_t>& tokens(int32_t seq) const { return get(seq).tokens; }
  int n_tokens(int32_t seq) const { return int(get(seq).tokens.size()); }
  // Sequences holding `block` (0: free or only cached).
  int ref_count(int32_t block) const { return blocks_.at(size_t(block)).refs; }

 private:
  struct Block {
    int refs = 0;
    bool hashed = false;         // registered in by_hash_ (full, committed)
    uint64_t hash = 0;           // of every token up to this block's end
    int32_t parent = -1;         // the block before it in the table that registered it
    uint32_t parent_gen = 0;     // parent's generation then
    uint32_t gen = 0;            // bumped whenever its registered contents go away
    std::vector<int32_t> tokens;  // its tokens while hashed (checks a hash match)
    std::list<int32_t>::iterator lru;  // its place in lru_ while cached and unreferenced
  };
  struct Seq {
    std::vector<int32_t> table;
    std::vector<int32_t> tokens;
    std::vector<uint64_t> hashes;  // the prefix hash of each committed full block
  };

  const Seq& get(int32_t seq) const;
  Seq& get(int32_t seq);
  // The block to write seq's token at position pos into needs copying first.
  bool must_copy(const Seq& s, size_t pos) const;
  int32_t take_block();
  void release(int32_t block);
  void unregister(int32_t block);
  // The registered block whose tokens are `tokens` after `parent`, or -1.
  int32_t find(uint64_t hash, int32_t parent, std::span<const int32_t> tokens) const;

  int block_size_;
  bool prefix_sharing_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;      // a stack: the lowest ids come out first
  std::list<int32_t> lru_;         // cached, unreferenced blocks, least recently used first
  std::unordered_map<uint64_t, int32_t> by_hash_;
  std::unordered_map<int32_t, Seq> seqs_;
};

}  // namespace upg
