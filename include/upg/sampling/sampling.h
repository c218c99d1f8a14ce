#pragma once
// Sampling as a chain of small steps over a candidate list (vLLM/llama.cpp style): each
// step narrows or reweights the candidates; the last one picks a token.
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace upg {

struct SamplingParams {
  float temperature = 0.8f;  // <= 0: greedy
  int top_k = 40;            // 0: off
  float top_p = 0.95f;       // >= 1: off
  float min_p = 0.05f;       // <= 0: off
  float repeat_penalty = 1.0f;     // 1: off (llama.cpp / CTRL-style, divides positive logits)
  float frequency_penalty = 0.0f;  // OpenAI style, subtracts count * penalty
  float presence_penalty = 0.0f;   // OpenAI style, subtracts penalty once if present
  int penalty_last_n = 64;         // window of recent tokens the penalties look at; -1 all
  uint64_t seed = 0xFFFFFFFFFFFFFFFFull;  // default: random seed
};

struct Candidate {
  int32_t id;
  float logit;
  float p;  // filled by steps that normalise
};

// The working set the steps operate on.
struct CandidateList {
  std::vector<Candidate> items;
  bool sorted = false;      // by logit, descending
  bool normalized = false;  // p holds softmax of logit over items
};

class SamplerStep {
 public:
  virtual ~SamplerStep() = default;
  virtual const char* name() const = 0;
  // Name plus settings, e.g. "top-k(40)"; what Sampler::describe() chains together.
  virtual std::string describe() const { return name(); }
  // history: tokens so far (prompt + generated), most recent last.
  virtual void apply(CandidateList& c, std::span<const int32_t> history) = 0;
};

// Individual steps, each unit-tested on hand-made logits.
std::unique_ptr<SamplerStep> make_penalties(float repeat, float frequency, float presence, int last_n);
std::unique_ptr<SamplerStep> make_temperature(float t);
std::unique_ptr<SamplerStep> make_top_k(int k);
std::unique_ptr<SamplerStep> make_top_p(float p);
std::unique_ptr<SamplerStep> make_min_p(float p);

// What verify_draft decided for one drafted token.
struct DraftVerdict {
  bool accepted = false;
  int32_t token = -1;  // the drafted token when accepted, else the replacement drawn
};

class Sampler {
 public:
  // Builds penalties -> top-k -> temperature -> top-p -> min-p -> draw (or greedy when
  // temperature <= 0). Steps that are off are left out of the chain.
  explicit Sampler(const SamplingParams& p);
  // A copy continues the same random stream from where this one is: a sequence forked
  // (several completions of one prompt), or a snapshot to roll back to.
  Sampler(const Sampler& other);
  Sampler& operator=(const Sampler& other) { return *this = Sampler(other); }
  Sampler(Sampler&&) = default;
  Sampler& operator=(Sampler&&) = default;
  ~Sampler();
  // Picks the next token from raw logits [vocab]. Allocation-free after the first call.
  // The same as draw(distribution(logits, history, allowed)).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history,
                 std::span<const uint32_t> allowed = {});
  // The distribution the chain leaves for these logits: candidates whose p sum to 1 (at
  // temperature <= 0, the argmax alone with p = 1). Valid until the next call.
  // `allowed`, when not empty, is a token mask (a grammar's; upg/grammar/grammar.h): bit
  // (id % 32) of word (id / 32) set lets token id through. The mask is the chain's first
  // step: the other tokens are gone before penalties, top-k and the rest, so those act
  // on what the grammar allows. A mask that allows nothing is an Error.
  const CandidateList& distribution(std::span<const float> logits, std::span<const int32_t> history,
                                    std::span<const uint32_t> allowed = {});
  // One token drawn from a distribution (items with p summing to 1) with this sampler's
  // random stream; at temperature <= 0 the most likely item, without a draw.
  int32_t draw(const CandidateList& dist);
  // Speculative sampling (Leviathan et al. 2023, Chen et al. 2023): `drafted` was drawn
  // from `draft`; it is accepted with probability min(1, target(x) / draft(x)), otherwise
  // a replacement is drawn from max(0, target - draft), normalised. The tokens that come
  // out follow `target` exactly, whatever the draft. A deterministic draft (prompt
  // lookup) is a one-item list with p = 1. At temperature <= 0 this draws nothing: the
  // draft is accepted if it is the argmax, else replaced by it.
  DraftVerdict verify_draft(const CandidateList& target, const CandidateList& draft, int32_t drafted);
  void reseed(uint64_t seed);
  std::string describe() const;  // "penalties -> top-k(40) -> ..." for --verbose
  // Greedy with no step before the pick (no penalties): the token is the logits' argmax
  // (the lowest id among equals), which a backend can pick where the logits are
  // (Batch::kGreedy) without sending them back.
  bool plain_greedy() const { return greedy_ && steps_.empty(); }

 private:
  double uniform();  // [0, 1) from the random stream, the same on every standard library
  void build_chain();

  SamplingParams params_;
  std::vector<std::unique_ptr<SamplerStep>> steps_;
  bool greedy_;
  std::mt19937_64 rng_;
  uint64_t seed_ = 0;  // the seed actually in use (drawn from random_device for the default)
  CandidateList work_;
  std::vector<Candidate> scratch_;  // verify_draft's residual
  std::vector<float> draft_p_;      // verify_draft: the draft's p by token id, zero between calls
};

}  // namespace upg
