#pragma once
// What a CompiledGrammar is: XGrammar's compiled grammar and the vocabulary size it was
// compiled for. Private to the layer: no XGrammar type leaves src/grammar.
#include <cstdint>
#include <vector>

#include <xgrammar/compiler.h>

#include "upg/grammar/grammar.h"

namespace upg {

class CompiledGrammar {
 public:
  CompiledGrammar(xgrammar::CompiledGrammar g, int vocab_size, std::vector<int32_t> stop_tokens)
      : xg(std::move(g)), vocab_size(vocab_size), stop_tokens(std::move(stop_tokens)) {}
  xgrammar::CompiledGrammar xg;
  int vocab_size;
  std::vector<int32_t> stop_tokens;
};

}  // namespace upg
