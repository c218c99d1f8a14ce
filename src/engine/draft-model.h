#pragma once
// Draft tokens from a second, smaller model with the same vocabulary (a more strongly
// compressed file of the same model, say) for speculative decoding. Each sequence keeps
// its keys and values in the draft model's own pool, so a round feeds only what the
// draft has not seen yet; every round is one batched forward over all the sequences
// drafting this step. The target's verification (Sampler::verify_draft) needs each
// draft token's distribution, so those are kept with the tokens.
#include <cstdint>
#include <span>
#include <vector>

#include "engine/kv-manager.h"
#include "upg/model/model.h"
#include "upg/sampling/sampling.h"

namespace upg {

class DraftModel {
 public:
  // Throws ParamError("draft", ...) when the vocabularies differ.
  DraftModel(Model& draft, const Model& target, int max_draft);

  struct Job {
    int32_t seq = 0;
    std::span<const int32_t> context;  // the target sequence's tokens, its pending one last
    int room = 0;                      // drafts at most (the context's and the request's room)
    Sampler* sampler = nullptr;        // draws the drafts (the request's settings, its own stream)
    std::vector<int32_t>* tokens = nullptr;      // out: the drafts
    std::vector<CandidateList>* dists = nullptr;  // out: the distribution each was drawn from
  };
  // Fills every job's drafts (possibly none: a sequence the draft's pool or context
  // cannot hold).
  void propose(std::span<Job> jobs);
  // The sequence ended: its blocks in the draft's pool go back.
  void free(int32_t seq);

 private:
  Model& model_;
  KvManager kv_;
  int max_draft_;
  Batch batch_;
  std::vector<int64_t> slots_;
  std::vector<BlockCopy> copies_;
  std::vector<size_t> active_;             // jobs still drafting this round
  std::vector<std::vector<int32_t>> hist_;  // per job: context and drafts so far
};

}  // namespace upg
