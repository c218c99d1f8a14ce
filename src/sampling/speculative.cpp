// The accept/reject rule of speculative sampling. Why it keeps the target distribution:
// P(out = x) = q(x) min(1, p(x)/q(x)) + P(reject) r(x) = min(q(x), p(x)) + max(0, p(x) - q(x))
// = p(x), where r is the normalised residual max(0, p - q) and P(reject) is its mass.
#include <algorithm>

#include <fmt/format.h>

#include "sampling/candidates.h"
#include "upg/core/error.h"
#include "upg/sampling/sampling.h"

namespace upg {
namespace {

float prob_of(const CandidateList& dist, int32_t id) {
  for (const Candidate& c : dist.items)
    if (c.id == id) return c.p;
  return 0.0f;
}

}  // namespace

DraftVerdict Sampler::verify_draft(const CandidateList& target, const CandidateList& draft, int32_t drafted) {
  if (target.items.empty()) throw Error("sampler: verifying a draft against an empty distribution");
  for (const Candidate& c : draft.items)
    if (c.id < 0) throw Error(fmt::format("sampler: draft candidate with token id {}", c.id));
  if (greedy_) {
    const int32_t best = target.items[sampling::most_likely(target)].id;
    return {best == drafted, best};
  }
  const double p = prob_of(target, drafted), q = prob_of(draft, drafted);
  // q = 0 cannot come from a draw of the draft; read it as "the draft is sure of nothing
  // else", which accepts whatever the target allows.
  if (p > 0 && (q <= 0 || uniform() * q < p)) return {true, drafted};

  // The residual max(0, p - q) over the target's support (where p = 0 it is 0 anyway).
  // The draft's p by id in a dense table, so this is linear in the two lists' sizes.
  int32_t max_id = 0;
  for (const Candidate& c : draft.items) max_id = std::max(max_id, c.id);
  if (draft_p_.size() <= size_t(max_id)) draft_p_.resize(size_t(max_id) + 1, 0.0f);
  for (const Candidate& c : draft.items) draft_p_[size_t(c.id)] = c.p;
  auto draft_p = [&](int32_t id) { return id >= 0 && size_t(id) < draft_p_.size() ? draft_p_[size_t(id)] : 0.0f; };
  scratch_.clear();
  double mass = 0;
  for (const Candidate& c : target.items) {
    const float r = std::max(0.0f, c.p - draft_p(c.id));
    if (r > 0) {
      scratch_.push_back({c.id, c.logit, r});
      mass += r;
    }
  }
  for (const Candidate& c : draft.items) draft_p_[size_t(c.id)] = 0.0f;
  // p == q up to rounding leaves no residual: the target itself is the right fallback.
  if (scratch_.empty() || !(mass > 0)) return {false, draw(target)};
  for (Candidate& c : scratch_) c.p = float(c.p / mass);
  CandidateList residual;
  residual.items.swap(scratch_);
  const int32_t token = draw(residual);
  scratch_.swap(residual.items);
  return {false, token};
}

}  // namespace upg
