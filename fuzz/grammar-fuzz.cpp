// Grammar text and JSON Schemas: the first byte picks the kind (GBNF, JSON Schema, regex),
// the rest is the text, compiled by GrammarCompiler for a small byte-level vocabulary
// (src/grammar/test-vocab.h); a compiled grammar is then walked for a few tokens (mask,
// accept the first allowed token, roll one back). A bad grammar must be an upg::Error.
#include <cstdint>
#include <vector>

#include "fuzz-util.h"
#include "grammar/test-vocab.h"
#include "upg/grammar/grammar.h"

using namespace upg;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static Tokenizer tok = grammar_test::tiny_tokenizer();
  static GrammarCompiler compiler(tok, {.vocab_size = tok.vocab_size(), .stop_tokens = {tok.vocab_size() - 1},
                                        .cache_entries = 1});
  static const GrammarKind kinds[] = {GrammarKind::kGbnf, GrammarKind::kJsonSchema, GrammarKind::kRegex};
  GrammarSpec spec{kinds[data[0] % 3], std::string(upg::fuzz::as_text(data + 1, size - 1))};
  spec.any_whitespace = (data[0] & 4) != 0;
  spec.strict = (data[0] & 8) != 0;
  fuzz::accept_errors([&] {
    GrammarMatcher m(compiler.compile(spec));
    std::vector<uint32_t> mask(size_t(m.mask_words()));
    for (int step = 0; step < 8 && !m.terminated(); ++step) {
      m.fill_mask(mask);
      int32_t next = -1;
      for (size_t w = 0; w < mask.size() && next < 0; ++w)
        if (mask[w]) next = int32_t(w * 32 + size_t(__builtin_ctz(mask[w])));
      if (next < 0) break;
      if (!m.accept(next)) upg::fuzz::invariant_failed("the matcher refused a token its mask allowed");
      if (step == 3) {
        m.rollback(1);
        if (!m.accept(next)) upg::fuzz::invariant_failed("a rolled-back token was refused again");
      }
    }
  });
  return 0;
}
