// The KV manager against a simulated cache: every slot it hands out is "written" with
// the token that goes there, every copy it asks for is performed, and each sequence's
// tokens must then read back through its block table, whatever the mix of prompts
// sharing prefixes, appends, forks, truncations and frees.
#include "engine/kv-manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "upg/core/error.h"

namespace upg {
namespace {

// The cache as a caller keeps it: one token per slot, -1 where nothing was written.
struct Cache {
  KvManager kv;
  std::vector<int32_t> slot_token;
  Cache(int n_blocks, int block_size, bool sharing = true)
      : kv(n_blocks, block_size, sharing), slot_token(size_t(n_blocks * block_size), -1) {}

  // start + append + commit, as a scheduler runs a prompt; returns the cached count.
  int run(int32_t seq, const std::vector<int32_t>& prompt) {
    const int cached = kv.start(seq, prompt);
    append(seq, std::span<const int32_t>(prompt).subspan(size_t(cached)));
    return cached;
  }
  void append(int32_t seq, std::span<const int32_t> toks) {
    std::vector<int64_t> slots;
    std::vector<BlockCopy> copies;
    kv.append(seq, toks, slots, copies);
    const int B = kv.block_size();
    for (const BlockCopy& c : copies) {
      ASSERT_NE(c.src, c.dst);
      std::copy_n(slot_token.begin() + c.src * B, B, slot_token.begin() + c.dst * B);
    }
    ASSERT_EQ(slots.size(), toks.size());
    for (size_t i = 0; i < toks.size(); ++i) slot_token[size_t(slots[i])] = toks[i];
    kv.commit(seq);
  }
  // What the sequence reads through its table.
  std::vector<int32_t> read(int32_t seq) const {
    std::vector<int32_t> out;
    const auto table = kv.block_table(seq);
    const int B = kv.block_size();
    for (int p = 0; p < kv.n_tokens(seq); ++p)
      out.push_back(slot_token[size_t(table[size_t(p / B)] * B + p % B)]);
    return out;
  }
};

// Reference counts are the tables' references, tables cover their tokens exactly, every
// block is either held, free or cached (the counts add up), and every sequence reads
// back its own tokens.
void check_invariants(const Cache& c, const std::set<int32_t>& live) {
  std::map<int32_t, int> refs;
  for (int32_t s : live) {
    const auto table = c.kv.block_table(s);
    const int B = c.kv.block_size(), n = c.kv.n_tokens(s);
    ASSERT_EQ(int(table.size()), (n + B - 1) / B) << "sequence " << s;
    std::set<int32_t> own(table.begin(), table.end());
    ASSERT_EQ(own.size(), table.size()) << "a block twice in one table";
    for (int32_t b : table) ++refs[b];
    ASSERT_EQ(c.read(s), c.kv.tokens(s)) << "sequence " << s << " reads other tokens than it wrote";
  }
  for (int b = 0; b < c.kv.n_blocks(); ++b) ASSERT_EQ(c.kv.ref_count(b), refs.count(b) ? refs[b] : 0) << "block " << b;
  ASSERT_EQ(int(refs.size()) + c.kv.free_blocks(), c.kv.n_blocks());
}

TEST(KvManager, SlotsFollowTheBlockTable) {
  Cache c(8, 4, false);
  EXPECT_EQ(c.run(0, {1, 2, 3, 4, 5, 6}), 0);
  EXPECT_EQ(c.kv.block_table(0).size(), 2u);
  EXPECT_EQ(c.kv.free_blocks(), 6);
  std::vector<int64_t> slots;
  std::vector<BlockCopy> copies;
  c.kv.append(0, std::vector<int32_t>{7, 8, 9}, slots, copies);
  const auto t = c.kv.block_table(0);
  EXPECT_EQ(slots, (std::vector<int64_t>{t[1] * 4 + 2, t[1] * 4 + 3, t[2] * 4 + 0}));
  EXPECT_TRUE(copies.empty());
  // A fresh pool hands out blocks in order: one sequence's table is contiguous.
  EXPECT_EQ(std::vector<int32_t>(t.begin(), t.end()), (std::vector<int32_t>{0, 1, 2}));
}

TEST(KvManager, SharesCommittedPrefixBlocks) {
  Cache c(16, 4);
  const std::vector<int32_t> sys = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  std::vector<int32_t> a = sys, b = sys;
  a.insert(a.end(), {20, 21});
  b.insert(b.end(), {30, 31, 32});
  EXPECT_EQ(c.run(0, a), 0);
  EXPECT_EQ(c.run(1, b), 8);  // two full blocks of the system prompt
  EXPECT_EQ(c.kv.block_table(1)[0], c.kv.block_table(0)[0]);
  EXPECT_EQ(c.kv.block_table(1)[1], c.kv.block_table(0)[1]);
  EXPECT_NE(c.kv.block_table(1)[2], c.kv.block_table(0)[2]);
  EXPECT_EQ(c.kv.ref_count(c.kv.block_table(0)[0]), 2);
  check_invariants(c, {0, 1});
  // A prompt of exactly the cached blocks still computes its last token.
  EXPECT_EQ(c.run(2, {1, 2, 3, 4, 5, 6, 7, 8}), 4);
  // Another first block: nothing after it matches either.
  EXPECT_EQ(c.run(3, {9, 2, 3, 4, 5, 6, 7, 8, 9}), 0);
  check_invariants(c, {0, 1, 2, 3});
}

TEST(KvManager, FreedBlocksStayCachedUntilReused) {
  Cache c(4, 2);
  c.run(0, {1, 2, 3, 4, 5});
  c.kv.free(0);
  EXPECT_EQ(c.kv.free_blocks(), 4);
  EXPECT_EQ(c.kv.cached_blocks(), 2);  // {1,2} and {3,4}; {5} was never full
  EXPECT_EQ(c.run(1, {1, 2, 3, 4, 9}), 4);
  c.kv.free(1);
  // Filling the pool with other tokens evicts them, least recently used first.
  c.run(2, {7, 7, 7, 7, 7, 7, 7, 7});
  EXPECT_EQ(c.kv.cached_blocks(), 0);
  c.kv.free(2);
  EXPECT_EQ(c.run(3, {1, 2, 3, 4, 9}), 0);
}

TEST(KvManager, CopyOnWriteWhereForksDiverge) {
  Cache c(8, 4);
  c.run(0, {1, 2, 3, 4, 5, 6});
  c.kv.fork(0, 1);
  EXPECT_EQ(c.kv.ref_count(c.kv.block_table(0)[1]), 2);
  EXPECT_EQ(c.kv.blocks_needed(1, 1), 1);  // a private copy of the shared half block
  std::vector<int64_t> slots;
  std::vector<BlockCopy> copies;
  c.kv.append(1, std::vector<int32_t>{70}, slots, copies);
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].src, c.kv.block_table(0)[1]);
  EXPECT_EQ(copies[0].dst, c.kv.block_table(1)[1]);
  EXPECT_EQ(c.kv.block_table(1)[0], c.kv.block_table(0)[0]);  // the full block stays shared
  EXPECT_EQ(c.kv.ref_count(c.kv.block_table(0)[1]), 1);
  // The parent now writes in place: the block is its own again.
  EXPECT_EQ(c.kv.blocks_needed(0, 1), 0);
}

TEST(KvManager, TruncateThenRewriteUnsharesTheCutBlock) {
  Cache c(8, 4);
  c.run(0, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  c.run(1, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});  // shares {1..4} and {5..8}
  c.kv.truncate(0, 6);
  EXPECT_EQ(c.kv.block_table(0).size(), 2u);
  c.append(0, std::vector<int32_t>{60, 61});
  check_invariants(c, {0, 1});
  // The one sequence holding a cut block rewrites it in place; it is no longer found.
  c.kv.free(1);
  c.kv.truncate(0, 5);
  c.append(0, std::vector<int32_t>{50, 51, 52});
  EXPECT_EQ(c.run(2, {1, 2, 3, 4, 5, 6, 60, 61, 9}), 4);
  // The original block of sequence 1 was cached when it ended, and is found.
  EXPECT_EQ(c.run(3, {1, 2, 3, 4, 5, 6, 7, 8, 9}), 8);
  check_invariants(c, {0, 2, 3});
}

TEST(KvManager, FullPoolIsAnErrorThatChangesNothing) {
  Cache c(2, 4);
  c.run(0, {1, 2, 3, 4, 5});
  EXPECT_TRUE(c.kv.can_append(0, 3));
  EXPECT_FALSE(c.kv.can_append(0, 4));
  std::vector<int64_t> slots;
  std::vector<BlockCopy> copies;
  EXPECT_THROW(c.kv.append(0, std::vector<int32_t>{1, 2, 3, 4}, slots, copies), Error);
  EXPECT_TRUE(slots.empty());
  EXPECT_EQ(c.kv.n_tokens(0), 5);
  check_invariants(c, {0});
  c.kv.free(0);
  EXPECT_EQ(c.kv.free_blocks(), 2);
}

TEST(KvManager, BadArgumentsAreErrors) {
  EXPECT_THROW(KvManager(0, 16), ParamError);
  EXPECT_THROW(KvManager(4, 0), ParamError);
  KvManager kv(4, 4);
  EXPECT_THROW(kv.free(3), Error);
  EXPECT_THROW(kv.block_table(3), Error);
  kv.start(1, std::vector<int32_t>{1, 2});
  EXPECT_THROW(kv.start(1, std::vector<int32_t>{1}), Error);
  EXPECT_THROW(kv.fork(1, 1), Error);
  EXPECT_THROW(kv.truncate(1, 1), ParamError);  // start() leaves uncached tokens to append
  EXPECT_THROW(kv.blocks_needed(1, -1), ParamError);
}

// Random arrivals (prompts from a few shared system prompts), appends, forks,
// truncations and frees on a small pool, invariants checked after every operation.
TEST(KvManager, RandomOperationsKeepEverySequenceIntact) {
  for (bool sharing : {true, false}) {
    std::mt19937 rng(sharing ? 5 : 6);
    Cache c(40, 4, sharing);
    std::set<int32_t> live;
    int32_t next_id = 0;
    std::vector<std::vector<int32_t>> systems(3);
    for (auto& s : systems)
      for (int i = 0; i < 11; ++i) s.push_back(int32_t(rng() % 5));
    auto pick = [&]() {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      return *it;
    };
    int shared_hits = 0, copies_seen = 0;
    for (int step = 0; step < 3000; ++step) {
      const int op = int(rng() % 10);
      if (op < 3 || live.empty()) {
        std::vector<int32_t> prompt = systems[rng() % systems.size()];
        prompt.resize(rng() % (prompt.size() + 1));
        for (int i = int(rng() % 6); i-- > 0;) prompt.push_back(int32_t(rng() % 5));
        if (prompt.empty()) prompt.push_back(1);
        const int32_t id = next_id++;
        const int cached = c.kv.start(id, prompt);
        const int rest = int(prompt.size()) - cached;
        if (!c.kv.can_append(id, rest)) {
          c.kv.free(id);
          continue;
        }
        shared_hits += cached > 0;
        c.append(id, std::span<const int32_t>(prompt).subspan(size_t(cached)));
        live.insert(id);
      } else if (op < 6) {
        const int32_t s = pick();
        std::vector<int32_t> toks(rng() % 7 + 1);
        for (int32_t& t : toks) t = int32_t(rng() % 5);
        if (!c.kv.can_append(s, int(toks.size()))) continue;
        const int before = c.kv.free_blocks(), need = c.kv.blocks_needed(s, int(toks.size()));
        std::vector<int64_t> slots;
        std::vector<BlockCopy> copies;
        c.kv.append(s, toks, slots, copies);
        copies_seen += int(copies.size());
        ASSERT_EQ(c.kv.free_blocks(), before - need);
        for (const BlockCopy& cp : copies)
          std::copy_n(c.slot_token.begin() + cp.src * 4, 4, c.slot_token.begin() + cp.dst * 4);
        for (size_t i = 0; i < toks.size(); ++i) c.slot_token[size_t(slots[i])] = toks[i];
        c.kv.commit(s);
      } else if (op == 6) {
        const int32_t child = next_id++;
        c.kv.fork(pick(), child);
        live.insert(child);
      } else if (op == 7) {
        const int32_t s = pick();
        c.kv.truncate(s, int(rng() % size_t(c.kv.n_tokens(s) + 1)));
      } else {
        const int32_t s = pick();
        c.kv.free(s);
        live.erase(s);
      }
      check_invariants(c, live);
      if (HasFatalFailure()) return;
    }
    if (sharing) {
      EXPECT_GT(shared_hits, 50);  // the test exercised sharing and copying
      EXPECT_GT(copies_seen, 20);
    } else {
      EXPECT_EQ(shared_hits, 0);
    }
  }
}

}  // namespace
}  // namespace upg
