#pragma once
// Splits a template into text and the tokens inside {{ }} and {% %}, applying jinja2's
// whitespace rules as transformers sets them: trim_blocks (drop the newline after a
// block or comment tag), lstrip_blocks (drop spaces and tabs before one on its line),
// '-' strips all whitespace on that side, '+' keeps it. Newlines are normalized to \n
// and one trailing newline of the template is dropped (keep_trailing_newline=False).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "jinja/value.h"

namespace upg::jinja {

struct Pos {
  int line = 1, column = 1;
};

// A syntax error at `pos`.
class SyntaxError : public Problem {
 public:
  SyntaxError(Pos pos, const std::string& what) : Problem(what), pos(pos) {}
  Pos pos;
};

enum class Tok { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEnd };

struct Token {
  Tok type;
  std::string text;  // text, name, string value or operator
  int64_t int_value = 0;
  double float_value = 0;
  Pos pos;
};

std::vector<Token> tokenize(std::string_view source);

}  // namespace upg::jinja
