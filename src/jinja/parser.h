#pragma once
// Builds the statement and expression tree from tokens, with jinja2's grammar and
// operator precedence. Nesting is bounded so that a hostile template cannot exhaust the
// stack here or in the interpreter.
#include <string_view>

#include "jinja/ast.h"

namespace upg::jinja {

inline constexpr int kMaxParseDepth = 100;    // nested blocks, brackets and operands
inline constexpr int kMaxExprHeight = 128;   // one expression tree

// Throws SyntaxError.
Program parse(std::string_view source);

}  // namespace upg::jinja
