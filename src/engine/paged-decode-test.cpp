// The KV manager driving a real model (the tiny fixture, so this runs under the
// sanitizers too): sequences that share a prompt prefix, fork and diverge
// (copy-on-write), decode side by side in one batch and end, and every logit equals
// that of the same tokens run alone through a fresh cache.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/test-paths.h"
#include "engine/kv-manager.h"
#include "upg/model/model.h"

namespace upg {
namespace {

constexpr int kBlock = 4;

struct Paged {
  Model& model;
  KvManager kv;
  explicit Paged(Model& m) : model(m), kv(m.kv_blocks(), m.kv_block_size()) {}

  // One step: each sequence's new tokens (appended to its blocks) in one batch; returns
  // the logits of each sequence's last new token.
  std::map<int32_t, std::vector<float>> step(const std::map<int32_t, std::vector<int32_t>>& news) {
    Batch b;
    std::vector<int64_t> slots;
    std::vector<BlockCopy> copies;
    for (const auto& [seq, toks] : news) kv.append(seq, toks, slots, copies);
    model.copy_kv_blocks(copies);
    for (const auto& [seq, toks] : news) {
      const int32_t table = b.add_table(kv.block_table(seq));
      const int first = kv.n_tokens(seq) - int(toks.size());
      for (size_t i = 0; i < toks.size(); ++i) b.add(toks[i], first + int32_t(i), seq, i + 1 == toks.size(), table);
    }
    const std::span<const float> logits = model.decode(b);
    const size_t vocab = size_t(model.config().vocab_size);
    std::map<int32_t, std::vector<float>> out;
    size_t row = 0;
    for (const auto& [seq, toks] : news) {
      out[seq].assign(logits.begin() + ptrdiff_t(row * vocab), logits.begin() + ptrdiff_t((row + 1) * vocab));
      ++row;
      kv.commit(seq);
    }
    return out;
  }
};

void expect_close(const std::vector<float>& got, std::span<const float> want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4f) << what << " at " << i;
}

TEST(PagedDecode, SharedPrefixesForksAndFreesGiveTheLogitsOfEachSequenceAlone) {
  ModelOptions o;
  o.context_length = 64;
  o.n_threads = 2;
  o.kv_type = DType::F32;
  o.kv_block_size = kBlock;
  auto m = Model::from_file(test::fixture("tiny/llama"), o);
  const int vocab = m->config().vocab_size;
  auto tok = [&](int i) { return int32_t((i * 7919 + 13) % vocab); };
  std::vector<int32_t> system;
  for (int i = 0; i < 10; ++i) system.push_back(tok(i));
  std::vector<int32_t> a = system, b = system, a_more = {tok(40), tok(41), tok(42)}, b_more = {tok(50), tok(51)},
                       fork_more = {tok(60), tok(61), tok(62)};
  a.push_back(tok(20));
  b.insert(b.end(), {tok(30), tok(31), tok(32)});
  auto cat = [](std::vector<int32_t> x, const std::vector<int32_t>& y) {
    x.insert(x.end(), y.begin(), y.end());
    return x;
  };
  // Logits of every position of each sequence alone, through the default cache layout.
  const std::vector<int32_t> full_a = cat(a, a_more), full_b = cat(b, b_more), full_fork = cat(a, fork_more);
  std::map<std::string, std::vector<float>> alone;
  for (const auto& [name, toks] : std::map<std::string, std::vector<int32_t>>{
           {"a", full_a}, {"b", full_b}, {"fork", full_fork}})
    alone[name] = m->forward(toks);
  auto want = [&](const std::string& name, int pos) {
    return std::span<const float>(alone[name]).subspan(size_t(pos) * size_t(vocab), size_t(vocab));
  };

  Paged p(*m);
  const int total = p.kv.free_blocks();
  EXPECT_EQ(p.kv.start(1, a), 0);
  auto got = p.step({{1, a}});
  expect_close(got[1], want("a", int(a.size()) - 1), "a prompt");
  // b shares the system prompt's two full blocks with a.
  const int cached = p.kv.start(2, b);
  EXPECT_EQ(cached, 2 * kBlock);
  EXPECT_EQ(p.kv.block_table(2)[0], p.kv.block_table(1)[0]);
  got = p.step({{2, std::vector<int32_t>(b.begin() + cached, b.end())}});
  expect_close(got[2], want("b", int(b.size()) - 1), "b prompt after the shared prefix");
  // A fork of a writes into a's half-full last block: it gets a copy.
  p.kv.fork(1, 3);
  for (size_t i = 0; i < a_more.size(); ++i) {
    std::map<int32_t, std::vector<int32_t>> news = {{1, {a_more[i]}}, {3, {fork_more[i]}}};
    if (i < b_more.size()) news[2] = {b_more[i]};
    got = p.step(news);
    const int pos = int(a.size() + i);
    expect_close(got[1], want("a", pos), "a decode " + std::to_string(i));
    expect_close(got[3], want("fork", pos), "fork decode " + std::to_string(i));
    if (i < b_more.size()) expect_close(got[2], want("b", int(b.size() + i)), "b decode " + std::to_string(i));
    if (i + 1 == b_more.size()) {
      p.kv.free(2);  // b ends (or is cancelled): its own blocks return at once
      EXPECT_GT(p.kv.free_blocks(), 0);
    }
  }
  EXPECT_NE(p.kv.block_table(3).back(), p.kv.block_table(1).back());
  p.kv.free(1);
  p.kv.free(3);
  EXPECT_EQ(p.kv.free_blocks(), total);  // every block is free or only cached
  // The prompts are still cached after everyone ended.
  EXPECT_EQ(p.kv.start(4, b), 3 * kBlock);  // with the block b filled itself
}

}  // namespace
}  // namespace upg
