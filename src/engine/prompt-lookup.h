#pragma once
// Prompt lookup (n-gram) drafting for speculative decoding: the tokens that followed the
// most recent earlier occurrence of the sequence's last n tokens are proposed as the
// next ones. Rewrites, extractions and code edits repeat their input, so the proposals
// are often right, and they cost no model at all. A draft is only a proposal: the target
// model verifies it (Sampler::verify_draft), so a wrong one costs time, never output.
#include <cstdint>
#include <span>
#include <vector>

namespace upg {

struct LookupParams {
  int ngram_max = 3;  // longest suffix tried first: a longer match predicts better
  int ngram_min = 1;
  int max_draft = 8;  // tokens proposed at most
};

// Throws ParamError when the sizes are out of range (ngram_min >= 1, ngram_max >=
// ngram_min, max_draft >= 0).
void check_lookup_params(const LookupParams& p);

// Fills `draft` (cleared first; its capacity is reused) with max_draft tokens
// proposed from `context` (prompt and generated tokens, most recent last); empty when no
// suffix of ngram_max down to ngram_min tokens occurs earlier. The longest suffix that
// occurs decides, and its most recent occurrence; a continuation that reaches the end of
// the context repeats with its period (a run of one token proposes more of it).
void propose_lookup(std::span<const int32_t> context, const LookupParams& p, std::vector<int32_t>& draft);

}  // namespace upg
