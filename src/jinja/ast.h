#pragma once
// The parsed template: expressions and statements as plain tagged nodes.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "jinja/lexer.h"
#include "jinja/value.h"

namespace upg::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,  // value
    kName,     // name
    kList,     // args: items (a tuple when name is "tuple")
    kDict,     // args: key, value, key, value, ...
    kAttr,     // args[0].name
    kItem,     // args[0][args[1]]
    kSlice,    // args[0][args[1]:args[2]:args[3]] (null parts absent)
    kCall,     // args[0](args[1..], named)
    kFilter,   // args[0] | name(args[1..], named)
    kTest,     // args[0] is [not] name(args[1..], named)
    kNeg,      // -args[0] (name "-") or +args[0] (name "+")
    kBinary,   // args[0] <name> args[1]: + - * / // % ** ~ == != < <= > >= in
    kAnd,
    kOr,
    kNot,
    kCond,     // args[1] if args[0] else args[2] (args[2] may be null)
  };
  Kind kind;
  Pos pos;
  Value value;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> named;
  bool negated = false;  // "is not", "not in"
  int height = 1;        // longest path to a leaf (bounded by the parser)
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct MacroParam {
  std::string name;
  ExprPtr fallback;  // may be null
};

struct Stmt {
  enum class Kind {
    kText,       // text
    kOutput,     // {{ expr }}
    kIf,         // branches (a null condition is else)
    kFor,        // targets in expr [if cond] body [else else_body]
    kSet,        // targets = expr, or targets[0].attr = expr when attr is set
    kSetBlock,   // targets[0] = body rendered, through filter (kFilter with a null subject) if set
    kMacro,      // name(params) body
    kFilterBlock,// body rendered through filter
    kScope,      // body (generation blocks)
    kBreak,
    kContinue,
  };
  Kind kind;
  Pos pos;
  std::string text;  // text; macro name
  std::string attr;  // namespace attribute of kSet
  ExprPtr expr;      // output, for iterable, set value
  ExprPtr cond;      // for's filter
  ExprPtr filter;    // kSetBlock / kFilterBlock
  std::vector<std::string> targets;
  std::vector<std::pair<ExprPtr, Body>> branches;
  std::vector<MacroParam> params;
  Body body, else_body;
};

struct Program {
  Body body;
};

}  // namespace upg::jinja
