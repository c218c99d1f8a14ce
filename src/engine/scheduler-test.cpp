#include "engine/scheduler.h"

#include <map>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "upg/core/error.h"

namespace upg {
namespace {

std::vector<int32_t> range(int n, int32_t base = 100) {
  std::vector<int32_t> v;
  for (int i = 0; i < n; ++i) v.push_back(base + i);
  return v;
}

void expect_chunk(const ScheduledSeq& c, int32_t seq, int first, int count, bool logits) {
  EXPECT_EQ(c.seq, seq);
  EXPECT_EQ(c.first, first);
  EXPECT_EQ(c.count, count);
  EXPECT_EQ(c.wants_logits, logits);
}

TEST(Scheduler, ChunksPromptsFirstComeFirstServed) {
  KvManager kv(64, 16);
  Scheduler s(kv, {64, 8});
  s.add(1, range(100));
  s.add(2, range(50, 500));
  StepPlan p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 1u);  // the budget goes to the first prompt
  expect_chunk(p.seqs[0], 1, 0, 64, false);
  s.commit(p);
  p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 2u);  // the rest of 1, then a chunk of 2
  expect_chunk(p.seqs[0], 1, 64, 36, true);
  expect_chunk(p.seqs[1], 2, 0, 28, false);
  EXPECT_EQ(p.n_tokens(), 64);
  s.commit(p);
  s.append_token(1, 7);
  p = s.schedule();  // 1's decode token first, then the rest of 2
  ASSERT_EQ(p.seqs.size(), 2u);
  expect_chunk(p.seqs[0], 1, 100, 1, true);
  expect_chunk(p.seqs[1], 2, 28, 22, true);
}

TEST(Scheduler, RunningLimitAndFinish) {
  KvManager kv(64, 16);
  Scheduler s(kv, {512, 2});
  for (int32_t q = 1; q <= 3; ++q) s.add(q, range(10, 100 * q));
  StepPlan p = s.schedule();
  EXPECT_EQ(p.seqs.size(), 2u);
  EXPECT_EQ(s.n_waiting(), 1);
  s.commit(p);
  s.finish(1);
  const int free_before = kv.free_blocks();
  p = s.schedule();  // 2 waits for its sampled token; 3 takes 1's place
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].seq, 3);
  EXPECT_LT(kv.free_blocks(), free_before);
  s.finish(3);
  s.finish(2);
  EXPECT_EQ(kv.free_blocks(), 64);
  EXPECT_TRUE(s.schedule().seqs.empty());
}

TEST(Scheduler, PromptLargerThanThePoolIsAnError) {
  KvManager kv(4, 16);
  Scheduler s(kv, {});
  EXPECT_THROW(s.add(1, range(65)), ParamError);
  EXPECT_NO_THROW(s.add(2, range(64)));
  EXPECT_THROW(Scheduler(kv, {0, 4}), ParamError);
}

TEST(Scheduler, SharedPrefixIsNotRecomputed) {
  KvManager kv(64, 16);
  Scheduler s(kv, {});
  std::vector<int32_t> a = range(40), b = range(40);
  b.push_back(999);
  s.add(1, a);
  StepPlan p = s.schedule();
  s.commit(p);
  s.add(2, b);
  s.append_token(1, 5);
  p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 2u);
  expect_chunk(p.seqs[1], 2, 32, 9, true);  // two full blocks of 16 came from sequence 1
}

TEST(Scheduler, PreemptsTheNewestAndRecomputesItFirst) {
  KvManager kv(4, 4, false);
  Scheduler s(kv, {64, 8});
  s.add(1, range(6));
  s.add(2, range(6, 200));
  StepPlan p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 2u);  // 2 blocks each: the pool is full
  s.commit(p);
  s.append_token(1, 1);
  s.append_token(2, 2);
  p = s.schedule();  // positions 6 fit in the second blocks
  EXPECT_TRUE(p.preempted.empty());
  s.commit(p);
  s.append_token(1, 1);
  s.append_token(2, 2);
  s.add(3, range(3, 300));
  p = s.schedule();  // position 7 still fits; 3 waits for blocks
  EXPECT_EQ(p.seqs.size(), 2u);
  s.commit(p);
  s.append_token(1, 1);
  s.append_token(2, 2);
  p = s.schedule();  // position 8 needs a third block for 1: the newest (2) gives way
  ASSERT_EQ(p.preempted, std::vector<int32_t>{2});
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].seq, 1);
  EXPECT_EQ(s.n_waiting(), 2);
  s.commit(p);
  s.finish(1);
  p = s.schedule();  // 2 comes back before 3 and recomputes its 9 tokens
  ASSERT_GE(p.seqs.size(), 1u);
  expect_chunk(p.seqs[0], 2, 0, 9, true);
}

// A model stand-in: the next token is a pure function of the sequence so far.
int32_t next_token(const std::vector<int32_t>& toks) {
  uint32_t h = uint32_t(toks.size());
  for (size_t i = toks.size() >= 3 ? toks.size() - 3 : 0; i < toks.size(); ++i) h = h * 31 + uint32_t(toks[i]);
  return int32_t(h % 97);
}

// Random arrivals (prompts sharing system prefixes), decode, cancellations and a pool
// small enough to preempt. A simulated cache holds each slot's token; after every step
// every scheduled token's whole history must read back through its block table, so
// sharing, copy-on-write, preemption and frees never corrupt another sequence. Each
// finished sequence must hold what it would alone.
void simulate(bool sharing, uint64_t seed) {
  constexpr int kBlocks = 24, kB = 8;
  KvManager kv(kBlocks, kB, sharing);
  Scheduler s(kv, {48, 6});
  std::vector<int32_t> cache(size_t(kBlocks * kB), -1);
  std::mt19937_64 rng(seed);
  const std::vector<int32_t> systems[2] = {range(20, 1000), range(13, 2000)};
  std::map<int32_t, int> target_len;  // running or waiting sequences and their final length
  std::map<int32_t, std::vector<int32_t>> prompts;
  int32_t next_id = 0;
  int finished = 0, preempted = 0;
  for (int step = 0; step < 400; ++step) {
    if (rng() % 3 == 0 && target_len.size() < 10) {
      std::vector<int32_t> p = systems[rng() % 2];
      for (int i = int(rng() % 12); i >= 0; --i) p.push_back(int32_t(rng() % 50));
      s.add(next_id, p);
      prompts[next_id] = p;
      target_len[next_id] = int(p.size()) + 1 + int(rng() % 30);
      ++next_id;
    }
    if (!target_len.empty() && rng() % 17 == 0) {  // a cancellation
      auto it = std::next(target_len.begin(), ptrdiff_t(rng() % target_len.size()));
      s.finish(it->first);
      prompts.erase(it->first);
      target_len.erase(it);
    }
    StepPlan plan = s.schedule();
    preempted += int(plan.preempted.size());
    for (const BlockCopy& c : plan.copies)
      std::copy_n(cache.begin() + c.src * kB, kB, cache.begin() + c.dst * kB);
    size_t t = 0;
    for (const ScheduledSeq& c : plan.seqs) {
      const std::vector<int32_t>& toks = s.tokens(c.seq);
      for (int i = 0; i < c.count; ++i) cache[size_t(plan.slots[t++])] = toks[size_t(c.first + i)];
    }
    ASSERT_EQ(t, plan.slots.size());
    for (const ScheduledSeq& c : plan.seqs) {
      const std::vector<int32_t>& toks = s.tokens(c.seq);
      const std::span<const int32_t> table = kv.block_table(c.seq);
      for (int j = 0; j < c.first + c.count; ++j)
        ASSERT_EQ(cache[size_t(table[size_t(j / kB)] * kB + j % kB)], toks[size_t(j)])
            << "sequence " << c.seq << " position " << j << " step " << step;
    }
    s.commit(plan);
    for (const ScheduledSeq& c : plan.seqs) {
      if (!c.wants_logits) continue;
      std::vector<int32_t> toks = s.tokens(c.seq);
      if (int(toks.size()) >= target_len[c.seq]) {
        // Finished: the tokens are the prompt and what the stand-in model gives alone.
        std::vector<int32_t> alone = prompts[c.seq];
        while (alone.size() < toks.size()) alone.push_back(next_token(alone));
        ASSERT_EQ(toks, alone) << "sequence " << c.seq;
        s.finish(c.seq);
        target_len.erase(c.seq);
        prompts.erase(c.seq);
        ++finished;
        continue;
      }
      s.append_token(c.seq, next_token(toks));
    }
  }
  EXPECT_GT(finished, 20);
  EXPECT_GT(preempted, 0) << "the pool never ran short: the test does not exercise preemption";
}

TEST(Scheduler, RandomTrafficNeverCorruptsTheCache) {
  simulate(true, 1);
  simulate(true, 2);
  simulate(false, 3);
}

}  // namespace
}  // namespace upg
