#include "engine/prompt-lookup.h"

#include <algorithm>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg {

void check_lookup_params(const LookupParams& p) {
  if (p.ngram_min < 1) throw ParamError("lookup_ngram_min", fmt::format("must be 1 or more, got {}", p.ngram_min));
  if (p.ngram_max < p.ngram_min)
    throw ParamError("lookup_ngram_max",
                     fmt::format("{} is below the shortest n-gram ({})", p.ngram_max, p.ngram_min));
  if (p.max_draft < 0) throw ParamError("lookup_max_draft", fmt::format("must be 0 or more, got {}", p.max_draft));
}

void propose_lookup(std::span<const int32_t> context, const LookupParams& p, std::vector<int32_t>& draft) {
  draft.clear();
  const int64_t len = int64_t(context.size());
  if (p.max_draft <= 0) return;
  for (int n = std::min<int64_t>(p.ngram_max, len - 1); n >= p.ngram_min; --n) {
    const auto suffix = context.subspan(size_t(len - n));
    // The most recent earlier match: the nearest text is the likeliest to continue alike.
    for (int64_t start = len - n - 1; start >= 0; --start) {
      if (!std::equal(suffix.begin(), suffix.end(), context.begin() + start)) continue;
      // Copied as LZ77 does, so a continuation that runs into the end of the context
      // goes on with the tokens just proposed: a repeating run or cycle is extended
      // with its period instead of being cut short.
      const int64_t from = start + n;
      for (int64_t i = 0; i < p.max_draft; ++i) {
        const int64_t at = from + i;
        draft.push_back(at < len ? context[size_t(at)] : draft[size_t(at - len)]);
      }
      return;
    }
  }
}

}  // namespace upg
