#include "engine/draft-model.h"

#include <algorithm>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg {

DraftModel::DraftModel(Model& draft, const Model& target, int max_draft)
    : model_(draft), kv_(draft.kv_blocks(), draft.kv_block_size(), false), max_draft_(max_draft) {
  if (draft.config().vocab_size != target.config().vocab_size)
    throw ParamError("draft", fmt::format("the draft model's vocabulary ({} tokens) is not the target's ({})",
                                          draft.config().vocab_size, target.config().vocab_size));
  if (max_draft < 1) throw ParamError("draft_max", fmt::format("must be 1 or more, got {}", max_draft));
}

void DraftModel::free(int32_t seq) {
  if (kv_.has(seq)) kv_.free(seq);
}

void DraftModel::propose(std::span<Job> jobs) {
  const size_t vocab = size_t(model_.config().vocab_size);
  hist_.resize(jobs.size());
  active_.clear();
  // Round 0 feeds what the draft has not seen of each context (all of it the first time;
  // after a step, the target's tokens since its last draft) and yields the first draft.
  batch_.clear();
  for (size_t j = 0; j < jobs.size(); ++j) {
    Job& job = jobs[j];
    job.tokens->clear();
    job.dists->clear();
    const int n = int(job.context.size());
    const int room = std::min({job.room, max_draft_, model_.context_length() - n});
    if (room <= 0) continue;
    if (!kv_.has(job.seq)) kv_.start(job.seq, {});
    // Its tokens are a prefix of the context up to where a draft was rejected.
    const std::vector<int32_t>& seen = kv_.tokens(job.seq);
    int keep = 0;
    while (keep < int(seen.size()) && keep < n - 1 && seen[size_t(keep)] == job.context[size_t(keep)]) ++keep;
    kv_.truncate(job.seq, keep);
    if (!kv_.can_append(job.seq, n - keep + room)) {
      kv_.free(job.seq);  // the draft's pool is short: this sequence does without drafts
      continue;
    }
    slots_.clear();
    copies_.clear();
    kv_.append(job.seq, job.context.subspan(size_t(keep)), slots_, copies_);
    const int32_t table = batch_.add_table(kv_.block_table(job.seq));
    for (int p = keep; p < n; ++p) batch_.add(job.context[size_t(p)], p, job.seq, p + 1 == n, table);
    hist_[j].assign(job.context.begin(), job.context.end());
    job.tokens->reserve(size_t(room));
    active_.push_back(j);
  }
  for (int round = 0; !active_.empty(); ++round) {
    const std::span<const float> logits = model_.decode(batch_);
    batch_.clear();
    size_t row = 0, kept = 0;
    for (size_t j : active_) {
      Job& job = jobs[j];
      const CandidateList& q = job.sampler->distribution(logits.subspan(row++ * vocab, vocab), hist_[j]);
      const int32_t t = job.sampler->draw(q);
      job.tokens->push_back(t);
      job.dists->push_back(q);
      hist_[j].push_back(t);
      const int room = std::min({job.room, max_draft_, model_.context_length() - int(job.context.size())});
      if (int(job.tokens->size()) >= room) continue;
      // The next round feeds this draft to get the one after it.
      slots_.clear();
      copies_.clear();
      kv_.append(job.seq, std::span<const int32_t>(&hist_[j].back(), 1), slots_, copies_);
      batch_.add(t, int32_t(hist_[j].size() - 1), job.seq, true, batch_.add_table(kv_.block_table(job.seq)));
      active_[kept++] = j;
    }
    active_.resize(kept);
    if (batch_.tokens.empty()) break;
  }
}

}  // namespace upg
