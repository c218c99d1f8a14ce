// GrammarMatcher over XGrammar's matcher: masks as our bitsets (the same 32-bit words
// XGrammar writes), rollback for rejected speculative tokens.
#include <fmt/format.h>
#include <xgrammar/matcher.h>

#include "grammar/compiled.h"
#include "upg/core/error.h"

namespace upg {

struct GrammarMatcher::Impl {
  Impl(std::shared_ptr<const CompiledGrammar> g, std::vector<int32_t> stops)
      : grammar(std::move(g)),
        m(grammar->xg, stops.empty() ? std::optional<std::vector<int>>()
                                     : std::optional<std::vector<int>>(std::vector<int>(stops.begin(), stops.end()))) {}
  std::shared_ptr<const CompiledGrammar> grammar;
  xgrammar::GrammarMatcher m;
};

GrammarMatcher::GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar, std::vector<int32_t> stop_tokens) {
  if (!grammar) throw Error("grammar matcher: no compiled grammar");
  impl_ = std::make_unique<Impl>(std::move(grammar), std::move(stop_tokens));
}
GrammarMatcher::~GrammarMatcher() = default;
GrammarMatcher::GrammarMatcher(GrammarMatcher&&) noexcept = default;
GrammarMatcher& GrammarMatcher::operator=(GrammarMatcher&&) noexcept = default;

int GrammarMatcher::mask_words() const { return xgrammar::GetBitmaskSize(impl_->grammar->vocab_size); }

void GrammarMatcher::fill_mask(std::span<uint32_t> mask) {
  const int words = mask_words();
  if (mask.size() < size_t(words))
    throw Error(fmt::format("grammar matcher: mask of {} words, {} needed", mask.size(), words));
  int64_t shape[1] = {words};
  DLTensor t{};
  t.data = mask.data();
  t.device = DLDevice{kDLCPU, 0};
  t.ndim = 1;
  t.dtype = xgrammar::GetBitmaskDLType();
  t.shape = shape;
  impl_->m.FillNextTokenBitmask(&t);
}

bool GrammarMatcher::accept(int32_t token) {
  if (token < 0 || token >= impl_->grammar->vocab_size) return false;
  return impl_->m.AcceptToken(token);
}

void GrammarMatcher::rollback(int n) {
  if (n > 0) impl_->m.Rollback(n);
}

bool GrammarMatcher::terminated() const { return impl_->m.IsTerminated(); }
bool GrammarMatcher::complete() const { return impl_->m.IsCompleted(); }

}  // namespace upg
