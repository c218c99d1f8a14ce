#pragma once
// Lazy sorting and normalisation shared by the steps: each step asks for the state it
// needs and the flags on the list say whether the work has already been done.
#include "upg/sampling/sampling.h"

namespace upg::sampling {

// Logit descending, then id ascending, so equal logits always come out in the same
// order and every later choice (top-k cut, draw walk, argmax) is deterministic.
inline bool better(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

void ensure_sorted(CandidateList& c);
// Fills p with the softmax of the logits over the current items. Degenerate inputs keep
// p finite: all -inf gives a uniform p (nothing is more likely than anything else), and
// +inf logits share all the mass between them.
void ensure_normalized(CandidateList& c);

// Index of the best item (highest logit, lowest id on ties); the list must be non-empty.
size_t best_index(const CandidateList& c);
// Index of the item with the highest p, the first among equals; the list must be non-empty.
size_t most_likely(const CandidateList& c);

}  // namespace upg::sampling
