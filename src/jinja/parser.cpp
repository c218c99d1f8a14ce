#include "jinja/parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>


namespace upg::jinja {
namespace {

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  Program program() {
    Program p;
    std::string end;
    p.body = body({}, end);
    return p;
  }

 private:
  // --- tokens ---
  const Token& cur() const { return t_[i_]; }
  const Token& next() { return t_[i_ < t_.size() - 1 ? i_++ : i_]; }
  bool is_op(std::string_view op) const { return cur().type == Tok::kOp && cur().text == op; }
  bool is_name(std::string_view n) const { return cur().type == Tok::kName && cur().text == n; }
  bool accept_op(std::string_view op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool accept_name(std::string_view n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  [[noreturn]] void fail(const std::string& what) const { throw SyntaxError(cur().pos, what); }
  std::string describe() const {
    switch (cur().type) {
      case Tok::kEnd: return "end of template";
      case Tok::kVarEnd: return "'}}'";
      case Tok::kBlockEnd: return "'%}'";
      case Tok::kText: return "text";
      default: return fmt::format("'{}'", cur().text);
    }
  }
  void expect_op(std::string_view op) {
    if (!accept_op(op)) fail(fmt::format("expected '{}', found {}", op, describe()));
  }
  std::string expect_name() {
    if (cur().type != Tok::kName) fail(fmt::format("expected a name, found {}", describe()));
    return next().text;
  }
  void expect_block_end() {
    if (cur().type != Tok::kBlockEnd) fail(fmt::format("expected '%}}', found {}", describe()));
    next();
  }

  struct Deeper {
    explicit Deeper(Parser& p) : p(p) {
      if (++p.depth_ > kMaxParseDepth) p.fail(fmt::format("nesting deeper than {} levels", kMaxParseDepth));
    }
    ~Deeper() { --p.depth_; }
    Parser& p;
  };

  // A node whose children are all in place: its height is checked, so that evaluating
  // and destroying the tree stay within the stack even for long operator chains.
  ExprPtr seal(ExprPtr e) const {
    int h = 0;
    for (const ExprPtr& a : e->args)
      if (a) h = std::max(h, a->height);
    for (const auto& [n, a] : e->named) h = std::max(h, a->height);
    e->height = h + 1;
    if (e->height > kMaxExprHeight) throw SyntaxError(e->pos, fmt::format("expression nests deeper than {} levels", kMaxExprHeight));
    return e;
  }

  static ExprPtr node(Expr::Kind kind, Pos pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    return e;
  }

  // --- statements ---
  // Statements up to a block tag named in `ends` (consumed up to its name; the name
  // goes to `end`). With no ends, up to the end of the template.
  Body body(std::initializer_list<std::string_view> ends, std::string& end) {
    Deeper d(*this);
    Body out;
    for (;;) {
      const Token& tk = cur();
      if (tk.type == Tok::kEnd) {
        if (ends.size() == 0) return out;
        fail(fmt::format("template ended inside a block (expected {{% {} %}})", *(ends.end() - 1)));
      }
      if (tk.type == Tok::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->pos = tk.pos;
        s->text = tk.text;
        out.push_back(std::move(s));
        next();
      } else if (tk.type == Tok::kVarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->pos = tk.pos;
        next();
        s->expr = tuple(true);
        if (cur().type != Tok::kVarEnd) fail(fmt::format("expected '}}}}', found {}", describe()));
        next();
        out.push_back(std::move(s));
      } else if (tk.type == Tok::kBlockBegin) {
        next();
        if (cur().type != Tok::kName) fail(fmt::format("expected a statement name, found {}", describe()));
        for (std::string_view e : ends) {
          if (cur().text == e) {
            end = next().text;
            return out;
          }
        }
        out.push_back(statement());
      } else {
        fail(fmt::format("unexpected {}", describe()));
      }
    }
  }

  std::unique_ptr<Stmt> statement() {
    auto s = std::make_unique<Stmt>();
    s->pos = cur().pos;
    const std::string kw = next().text;
    std::string end;
    if (kw == "if") {
      s->kind = Stmt::Kind::kIf;
      ExprPtr cond = expression(false);
      for (;;) {
        expect_block_end();
        Body b = body({"elif", "else", "endif"}, end);
        s->branches.emplace_back(std::move(cond), std::move(b));
        if (end == "elif") {
          cond = expression(false);
          continue;
        }
        if (end == "else") {
          expect_block_end();
          s->branches.emplace_back(nullptr, body({"endif"}, end));
        }
        break;
      }
    } else if (kw == "for") {
      s->kind = Stmt::Kind::kFor;
      ++loop_depth_;
      s->targets = targets();
      if (!accept_name("in")) fail(fmt::format("expected 'in', found {}", describe()));
      s->expr = tuple(false);
      if (accept_name("if")) s->cond = expression(false);
      if (is_name("recursive")) fail("recursive loops are not supported");
      expect_block_end();
      s->body = body({"else", "endfor"}, end);
      if (end == "else") {
        expect_block_end();
        s->else_body = body({"endfor"}, end);
      }
    } else if (kw == "set") {
      s->targets = targets();
      if (s->targets.size() == 1 && accept_op(".")) s->attr = expect_name();
      if (accept_op("=")) {
        s->kind = Stmt::Kind::kSet;
        s->expr = tuple(true);
      } else {
        if (s->targets.size() != 1 || !s->attr.empty()) fail("a block set takes one plain name");
        s->kind = Stmt::Kind::kSetBlock;
        if (accept_op("|")) s->filter = filter_chain(nullptr);
        expect_block_end();
        s->body = body({"endset"}, end);
      }
    } else if (kw == "macro") {
      s->kind = Stmt::Kind::kMacro;
      s->text = expect_name();
      expect_op("(");
      while (!accept_op(")")) {
        if (!s->params.empty()) expect_op(",");
        if (accept_op(")")) break;
        MacroParam p{expect_name(), nullptr};
        if (accept_op("=")) p.fallback = expression(true);
        s->params.push_back(std::move(p));
      }
      expect_block_end();
      s->body = body({"endmacro"}, end);
    } else if (kw == "filter") {
      s->kind = Stmt::Kind::kFilterBlock;
      s->filter = filter_chain(nullptr);
      expect_block_end();
      s->body = body({"endfilter"}, end);
    } else if (kw == "generation") {
      // transformers' {% generation %} marks assistant text for masks; it renders its body.
      s->kind = Stmt::Kind::kScope;
      expect_block_end();
      s->body = body({"endgeneration"}, end);
    } else if (kw == "break" || kw == "continue") {
      if (loop_depth_ == 0) fail(fmt::format("'{}' outside a loop", kw));
      s->kind = kw == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
    } else {
      throw SyntaxError(s->pos, fmt::format("unknown statement '{}'", kw));
    }
    if (kw == "for") --loop_depth_;
    expect_block_end();
    return s;
  }

  std::vector<std::string> targets() {
    if (is_name("for")) return {};
    std::vector<std::string> names{expect_name()};
    while (accept_op(",")) names.push_back(expect_name());
    if (names.size() > 1 && is_op(".")) fail("a namespace attribute cannot be one of several targets");
    return names;
  }

  // --- expressions ---
  // An expression, or several separated by commas (a tuple, here a list).
  ExprPtr tuple(bool with_cond) {
    const Pos p = cur().pos;
    ExprPtr first = expression(with_cond);
    if (!is_op(",")) return first;
    auto list = node(Expr::Kind::kList, p);
    list->name = "tuple";
    list->args.push_back(std::move(first));
    while (accept_op(",")) {
      if (cur().type == Tok::kBlockEnd || cur().type == Tok::kVarEnd) break;
      list->args.push_back(expression(with_cond));
    }
    return seal(std::move(list));
  }

  ExprPtr expression(bool with_cond) {
    Deeper d(*this);
    ExprPtr e = or_expr();
    if (!with_cond) return e;
    while (is_name("if")) {
      const Pos p = next().pos;
      auto c = node(Expr::Kind::kCond, p);
      c->args.push_back(or_expr());
      c->args.push_back(std::move(e));
      c->args.push_back(accept_name("else") ? expression(true) : nullptr);
      e = seal(std::move(c));
    }
    return e;
  }

  ExprPtr binary(Expr::Kind kind, std::string op, ExprPtr a, ExprPtr b, Pos p) {
    auto e = node(kind, p);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return seal(std::move(e));
  }

  ExprPtr or_expr() {
    ExprPtr e = and_expr();
    while (is_name("or")) {
      const Pos p = next().pos;
      e = binary(Expr::Kind::kOr, "or", std::move(e), and_expr(), p);
    }
    return e;
  }

  ExprPtr and_expr() {
    ExprPtr e = not_expr();
    while (is_name("and")) {
      const Pos p = next().pos;
      e = binary(Expr::Kind::kAnd, "and", std::move(e), not_expr(), p);
    }
    return e;
  }

  ExprPtr not_expr() {
    if (is_name("not")) {
      Deeper d(*this);
      auto e = node(Expr::Kind::kNot, next().pos);
      e->args.push_back(not_expr());
      return seal(std::move(e));
    }
    return compare();
  }

  ExprPtr compare() {
    ExprPtr e = math1();
    // Chains (a < b < c) compare pairwise and join with 'and', as Python does; the middle
    // operand is parsed once per pair, which is only a cost.
    for (;;) {
      const Pos p = cur().pos;
      std::string op;
      bool negated = false;
      if (cur().type == Tok::kOp && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                     cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && i_ + 1 < t_.size() && t_[i_ + 1].type == Tok::kName && t_[i_ + 1].text == "in") {
        next();
        next();
        op = "in";
        negated = true;
      } else {
        return e;
      }
      e = binary(Expr::Kind::kBinary, op, std::move(e), math1(), p);
      e->negated = negated;
    }
  }

  ExprPtr math1() {
    ExprPtr e = concat();
    while (is_op("+") || is_op("-")) {
      const Token& op = next();
      e = binary(Expr::Kind::kBinary, op.text, std::move(e), concat(), op.pos);
    }
    return e;
  }

  ExprPtr concat() {
    ExprPtr e = math2();
    while (is_op("~")) {
      const Pos p = next().pos;
      e = binary(Expr::Kind::kBinary, "~", std::move(e), math2(), p);
    }
    return e;
  }

  ExprPtr math2() {
    ExprPtr e = power();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& op = next();
      e = binary(Expr::Kind::kBinary, op.text, std::move(e), power(), op.pos);
    }
    return e;
  }

  ExprPtr power() {
    ExprPtr e = unary(true);
    while (is_op("**")) {
      const Pos p = next().pos;
      e = binary(Expr::Kind::kBinary, "**", std::move(e), unary(true), p);
    }
    return e;
  }

  ExprPtr unary(bool with_filter) {
    Deeper d(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      const Token& op = next();
      e = node(Expr::Kind::kNeg, op.pos);
      e->name = op.text;
      e->args.push_back(unary(false));
      e = seal(std::move(e));
    } else {
      e = primary();
    }
    e = postfix(std::move(e));
    if (with_filter) e = filters(std::move(e));
    return e;
  }

  ExprPtr primary() {
    const Token& tk = cur();
    const Pos p = tk.pos;
    if (tk.type == Tok::kName) {
      const std::string& n = next().text;
      auto e = node(Expr::Kind::kLiteral, p);
      if (n == "true" || n == "True") {
        e->value = true;
      } else if (n == "false" || n == "False") {
        e->value = false;
      } else if (n == "none" || n == "None") {
        e->value = None{};
      } else {
        e->kind = Expr::Kind::kName;
        e->name = n;
      }
      return e;
    }
    if (tk.type == Tok::kString) {
      std::string s = next().text;
      while (cur().type == Tok::kString) s += next().text;  // adjacent literals join
      auto e = node(Expr::Kind::kLiteral, p);
      e->value = std::move(s);
      return e;
    }
    if (tk.type == Tok::kInt || tk.type == Tok::kFloat) {
      auto e = node(Expr::Kind::kLiteral, p);
      if (tk.type == Tok::kInt) {
        e->value = tk.int_value;
      } else {
        e->value = tk.float_value;
      }
      next();
      return e;
    }
    if (accept_op("(")) {
      if (accept_op(")")) {
        auto empty = node(Expr::Kind::kList, p);
        empty->name = "tuple";
        return empty;
      }
      ExprPtr first = expression(true);
      if (accept_op(")")) return first;
      auto list = node(Expr::Kind::kList, p);
      list->name = "tuple";
      list->args.push_back(std::move(first));
      while (accept_op(",")) {
        if (is_op(")")) break;
        list->args.push_back(expression(true));
      }
      expect_op(")");
      return seal(std::move(list));
    }
    if (accept_op("[")) {
      auto list = node(Expr::Kind::kList, p);
      while (!accept_op("]")) {
        if (!list->args.empty()) expect_op(",");
        if (accept_op("]")) break;
        list->args.push_back(expression(true));
      }
      return seal(std::move(list));
    }
    if (accept_op("{")) {
      auto dict = node(Expr::Kind::kDict, p);
      while (!accept_op("}")) {
        if (!dict->args.empty()) expect_op(",");
        if (accept_op("}")) break;
        dict->args.push_back(expression(true));
        expect_op(":");
        dict->args.push_back(expression(true));
      }
      return seal(std::move(dict));
    }
    fail(fmt::format("unexpected {}", describe()));
  }

  ExprPtr postfix(ExprPtr e) {
    for (;;) {
      const Pos p = cur().pos;
      if (accept_op(".")) {
        if (cur().type == Tok::kInt) {
          auto item = node(Expr::Kind::kItem, p);
          auto index = node(Expr::Kind::kLiteral, p);
          index->value = next().int_value;
          item->args.push_back(std::move(e));
          item->args.push_back(std::move(index));
          e = seal(std::move(item));
          continue;
        }
        auto attr = node(Expr::Kind::kAttr, p);
        attr->name = expect_name();
        attr->args.push_back(std::move(e));
        e = seal(std::move(attr));
      } else if (accept_op("[")) {
        e = subscript(std::move(e), p);
      } else if (is_op("(")) {
        auto call = node(Expr::Kind::kCall, e->pos);
        call->args.push_back(std::move(e));
        arguments(*call);
        e = seal(std::move(call));
      } else {
        return e;
      }
    }
  }

  ExprPtr subscript(ExprPtr subject, Pos p) {
    ExprPtr parts[3];
    int n = 0;
    bool slice = false;
    for (;;) {
      if (!is_op(":") && !is_op("]")) parts[n] = expression(true);
      if (accept_op(":")) {
        slice = true;
        if (++n > 2) fail("a slice takes at most three parts");
        continue;
      }
      expect_op("]");
      break;
    }
    if (!slice) {
      if (!parts[0]) fail("empty subscript");
      auto item = node(Expr::Kind::kItem, p);
      item->args.push_back(std::move(subject));
      item->args.push_back(std::move(parts[0]));
      return seal(std::move(item));
    }
    auto s = node(Expr::Kind::kSlice, p);
    s->args.push_back(std::move(subject));
    for (auto& part : parts) s->args.push_back(std::move(part));
    return seal(std::move(s));
  }

  // "(a, b, name=c)" into e.args (after what is there) and e.named.
  void arguments(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!accept_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (accept_op(")")) break;
      if (cur().type == Tok::kName && i_ + 1 < t_.size() && t_[i_ + 1].type == Tok::kOp && t_[i_ + 1].text == "=") {
        std::string n = next().text;
        next();
        e.named.emplace_back(std::move(n), expression(true));
      } else {
        if (!e.named.empty()) fail("positional argument after a named one");
        e.args.push_back(expression(true));
      }
    }
  }

  // "| f(args) | g" and "is [not] test args" after an operand (null for a filter block).
  ExprPtr filters(ExprPtr e) {
    for (;;) {
      if (is_op("|")) {
        next();
        e = filter_chain(std::move(e), true);
      } else if (is_name("is")) {
        const Pos p = next().pos;
        auto t = node(Expr::Kind::kTest, p);
        t->negated = accept_name("not");
        t->name = expect_name();
        t->args.push_back(std::move(e));
        if (is_op("(")) {
          arguments(*t);
        } else if ((cur().type == Tok::kName || cur().type == Tok::kString || cur().type == Tok::kInt ||
                    cur().type == Tok::kFloat || is_op("(") || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          if (is_name("is")) fail("tests cannot be chained with 'is'");
          t->args.push_back(primary());
        }
        e = seal(std::move(t));
      } else {
        return e;
      }
    }
  }

  // One filter "name(args)" applied to `e`, and with `single` false the ones piped after it.
  ExprPtr filter_chain(ExprPtr e, bool single = false) {
    const Pos p = cur().pos;
    auto f = node(Expr::Kind::kFilter, p);
    f->name = expect_name();
    f->args.push_back(std::move(e));
    if (is_op("(")) arguments(*f);
    f = seal(std::move(f));
    if (!single && is_op("|")) {
      next();
      return filter_chain(std::move(f));
    }
    return f;
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Program parse(std::string_view source) { return Parser(tokenize(source)).program(); }

}  // namespace upg::jinja
