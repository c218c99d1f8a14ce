#include "jinja/interpreter.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_set>

#include "jinja/builtins.h"
#include "jinja/operators.h"
#include "upg/core/error.h"

namespace upg::jinja {
namespace {

// How deep a value stored into a namespace may nest: namespaces are the only values
// that change, so this bounds every value a render can build.
constexpr int kMaxValueNesting = 64;

using Frame = std::vector<std::pair<std::string, Value>>;

enum class Flow { kNormal, kBreak, kContinue };

// A problem already tied to a position (so outer nodes do not re-wrap it).
class Located : public std::runtime_error {
 public:
  Located(Pos pos, const std::string& what) : std::runtime_error(what), pos(pos) {}
  Pos pos;
};

class Interpreter {
 public:
  Interpreter(const RenderOptions& options) : opt_(options) {}

  std::string render(const Program& program, const nlohmann::ordered_json& context) {
    frames_.push_back(make_globals(opt_));
    Frame vars;
    if (!context.is_object() && !context.is_null()) throw Problem("the context must be a JSON object");
    if (context.is_object())
      for (const auto& [k, v] : context.items()) vars.emplace_back(k, from_json(v));
    frames_.push_back(std::move(vars));
    std::string out;
    out_ = &out;
    exec(program.body);
    return out;
  }

 private:
  struct Deeper {
    Deeper(Interpreter& in, Pos pos) : in(in) {
      if (++in.depth_ > in.opt_.max_depth)
        throw Located(pos, fmt::format("nesting deeper than {} levels (runaway recursion?)", in.opt_.max_depth));
    }
    ~Deeper() { --in.depth_; }
    Interpreter& in;
  };

  void charge(size_t units, Pos pos) {
    steps_ += units + 1;
    if (steps_ > opt_.max_steps)
      throw Located(pos, fmt::format("the template does more than {} steps of work", opt_.max_steps));
  }

  void emit(std::string_view text, Pos pos) {
    if (out_->size() + text.size() > opt_.max_output)
      throw Located(pos, fmt::format("output longer than the limit of {} bytes", opt_.max_output));
    out_->append(text);
  }

  // --- variables ---
  const Value* lookup(std::string_view name) const {
    for (size_t i = frames_.size(); i-- > floor_;)
      for (const auto& [k, v] : frames_[i])
        if (k == name) return &v;
    for (size_t i = std::min<size_t>(2, floor_); i-- > 0;)
      for (const auto& [k, v] : frames_[i])
        if (k == name) return &v;
    return nullptr;
  }

  void assign(std::string name, Value v) {
    for (auto& [k, old] : frames_.back()) {
      if (k == name) {
        old = std::move(v);
        return;
      }
    }
    frames_.back().emplace_back(std::move(name), std::move(v));
  }

  void assign_targets(const std::vector<std::string>& targets, const Value& v, Pos pos) {
    if (targets.size() == 1) {
      assign(targets[0], v);
      return;
    }
    const std::vector<Value> items = iterate(v);
    if (items.size() != targets.size())
      throw Located(pos, fmt::format("cannot unpack {} values into {} names", items.size(), targets.size()));
    for (size_t i = 0; i < targets.size(); ++i) assign(targets[i], items[i]);
  }

  // Refuses a value that would make `ns` contain itself or nest without bound.
  static void check_storable(const Value& v, const Dict* ns, int depth, std::unordered_set<const void*>& seen) {
    if (depth > kMaxValueNesting) throw Problem(fmt::format("value nests deeper than {} levels", kMaxValueNesting));
    if (v.is_list()) {
      if (!seen.insert(&v.list()).second) return;
      for (const Value& e : v.list()) check_storable(e, ns, depth + 1, seen);
    } else if (v.is_dict()) {
      if (&v.dict() == ns) throw Problem("a namespace cannot contain itself");
      if (!seen.insert(&v.dict()).second) return;
      for (const auto& [k, e] : v.dict().entries) check_storable(e, ns, depth + 1, seen);
    }
  }

  // --- statements ---
  Flow exec(const Body& body) {
    for (const auto& s : body) {
      const Flow f = exec(*s);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  Flow exec(const Stmt& s) {
    Deeper d(*this, s.pos);
    charge(0, s.pos);
    return located(s.pos, [&] { return exec_node(s); });
  }

  Flow exec_node(const Stmt& s) {
    switch (s.kind) {
      case Stmt::Kind::kText: emit(s.text, s.pos); break;
      case Stmt::Kind::kOutput: {
        const Value v = eval(*s.expr);
        emit(located(s.pos, [&] { return to_str(v, opt_.max_output); }), s.pos);
        break;
      }
      case Stmt::Kind::kIf:
        for (const auto& [cond, body] : s.branches)
          if (!cond || truthy(eval(*cond))) return exec(body);
        break;
      case Stmt::Kind::kFor: return exec_for(s);
      case Stmt::Kind::kSet: {
        Value v = eval(*s.expr);
        if (s.attr.empty()) {
          assign_targets(s.targets, v, s.pos);
          break;
        }
        const Value* ns = lookup(s.targets[0]);
        if (!ns || !ns->is_dict() || !ns->dict().is_namespace)
          throw Located(s.pos, fmt::format("cannot set '{}.{}': '{}' is not a namespace", s.targets[0], s.attr, s.targets[0]));
        std::unordered_set<const void*> seen;
        located(s.pos, [&] { check_storable(v, &ns->dict(), 0, seen); return 0; });
        ns->dict().set(s.attr, std::move(v));
        break;
      }
      case Stmt::Kind::kSetBlock: {
        Value v = capture(s.body, s.pos);
        if (s.filter) v = filter(*s.filter, v);
        assign(s.targets[0], std::move(v));
        break;
      }
      case Stmt::Kind::kMacro: define_macro(s); break;
      case Stmt::Kind::kFilterBlock: {
        const Value v = filter(*s.filter, capture(s.body, s.pos));
        emit(located(s.pos, [&] { return to_str(v, opt_.max_output); }), s.pos);
        break;
      }
      case Stmt::Kind::kScope: return exec(s.body);
      case Stmt::Kind::kBreak: return Flow::kBreak;
      case Stmt::Kind::kContinue: return Flow::kContinue;
    }
    return Flow::kNormal;
  }

  // Renders `body` into a string instead of the output.
  std::string capture(const Body& body, Pos pos) {
    std::string buf;
    std::string* saved = out_;
    out_ = &buf;
    try {
      exec(body);
    } catch (...) {
      out_ = saved;
      throw;
    }
    out_ = saved;
    charge(buf.size(), pos);
    return buf;
  }

  Flow exec_for(const Stmt& s) {
    const Value seq = eval(*s.expr);
    std::vector<Value> items = located(s.expr->pos, [&] { return iterate(seq); });
    // The loop's filter runs before the loop variables exist, as in jinja2.
    if (s.cond) {
      std::vector<Value> kept;
      for (const Value& item : items) {
        frames_.emplace_back();
        assign_targets(s.targets, item, s.pos);
        const bool keep = truthy(eval(*s.cond));
        frames_.pop_back();
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    const size_t n = items.size();
    for (size_t i = 0; i < n; ++i) {
      Frame f;
      std::vector<std::pair<std::string, Value>> loop = {
          {"index", i + 1},      {"index0", i},           {"revindex", n - i}, {"revindex0", n - i - 1},
          {"first", i == 0},     {"last", i + 1 == n},    {"length", n},       {"depth", 1},
          {"depth0", 0}};
      if (i > 0) loop.emplace_back("previtem", items[i - 1]);
      if (i + 1 < n) loop.emplace_back("nextitem", items[i + 1]);
      f.emplace_back("loop", make_dict(std::move(loop)));
      frames_.push_back(std::move(f));
      Flow flow = Flow::kNormal;
      try {
        assign_targets(s.targets, items[i], s.pos);
        flow = exec(s.body);
      } catch (...) {
        frames_.pop_back();
        throw;
      }
      frames_.pop_back();
      if (flow == Flow::kBreak) break;
    }
    if (n == 0) return exec(s.else_body);
    return Flow::kNormal;
  }

  void define_macro(const Stmt& s) {
    const Stmt* m = &s;
    assign(s.text, Value(Function([this, m](CallArgs& a) -> Value { return call_macro(*m, a); })));
  }

  Value call_macro(const Stmt& m, CallArgs& a) {
    if (a.positional.size() > m.params.size())
      throw Problem(fmt::format("macro '{}' takes {} argument(s), {} given", m.text, m.params.size(), a.positional.size()));
    Frame f;
    for (size_t i = 0; i < m.params.size(); ++i) {
      const MacroParam& p = m.params[i];
      Value v = i < a.positional.size() ? a.positional[i] : Value(Undefined{p.name});
      for (const auto& [k, val] : a.named)
        if (k == p.name) v = val;
      f.emplace_back(p.name, std::move(v));
    }
    for (const auto& arg : a.named) {
      const bool known =
          std::any_of(m.params.begin(), m.params.end(), [&](const MacroParam& p) { return p.name == arg.first; });
      if (!known) throw Problem(fmt::format("macro '{}' takes no argument '{}'", m.text, arg.first));
    }
    const size_t saved_floor = floor_;
    frames_.push_back(std::move(f));
    floor_ = frames_.size() - 1;
    std::string result;
    try {
      // Defaults are evaluated at call time, in the macro's scope.
      for (size_t i = 0; i < m.params.size(); ++i) {
        Value& slot = frames_.back()[i].second;
        if (slot.is_undefined() && m.params[i].fallback) slot = eval(*m.params[i].fallback);
      }
      result = capture(m.body, m.pos);
    } catch (...) {
      frames_.pop_back();
      floor_ = saved_floor;
      throw;
    }
    frames_.pop_back();
    floor_ = saved_floor;
    return result;
  }

  // --- expressions ---
  template <class F>
  auto located(Pos pos, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const RaisedError& e) {
      throw Located(pos, fmt::format("raise_exception: {}", e.what()));
    } catch (const Problem& e) {
      throw Located(pos, e.what());
    }
  }

  Value eval(const Expr& e) {
    Deeper d(*this, e.pos);
    Value v = located(e.pos, [&] { return eval_node(e); });
    charge(weight(v), e.pos);
    return v;
  }

  CallArgs arguments(const Expr& e, size_t first) {
    CallArgs a;
    for (size_t i = first; i < e.args.size(); ++i) a.positional.push_back(eval(*e.args[i]));
    for (const auto& [k, x] : e.named) a.named.emplace_back(k, eval(*x));
    return a;
  }

  // Unknown filter and test names fail when reached, as in jinja2 3.x, whose templates
  // may name a filter its environment lacks in a branch that never runs.
  Value filter(const Expr& f, const Value& subject) {
    CallArgs a = arguments(f, 1);
    return located(f.pos, [&] { return apply_filter(f.name, subject, a, opt_.max_output); });
  }

  Value eval_node(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral: return e.value;
      case Expr::Kind::kName: {
        const Value* v = lookup(e.name);
        return v ? *v : Value(Undefined{e.name});
      }
      case Expr::Kind::kList: {
        List l;
        for (const auto& x : e.args) l.push_back(eval(*x));
        return e.name == "tuple" ? Value::make_tuple(std::move(l)) : Value(std::move(l));
      }
      case Expr::Kind::kDict: {
        std::vector<std::pair<std::string, Value>> entries;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          const Value k = eval(*e.args[i]);
          if (!k.is_string()) throw Problem(fmt::format("dict keys must be strings here, not {}", type_name(k)));
          entries.emplace_back(k.str(), eval(*e.args[i + 1]));
        }
        return make_dict(std::move(entries));
      }
      case Expr::Kind::kAttr: return get_attr(eval(*e.args[0]), e.name);
      case Expr::Kind::kItem: {
        const Value obj = eval(*e.args[0]);
        return get_item(obj, eval(*e.args[1]));
      }
      case Expr::Kind::kSlice: {
        const Value obj = eval(*e.args[0]);
        std::optional<int64_t> parts[3];
        for (int i = 0; i < 3; ++i) {
          if (!e.args[i + 1]) continue;
          const Value p = eval(*e.args[i + 1]);
          if (p.is_none()) continue;
          if (!p.is_int() && !p.is_bool()) throw Problem("slice indices must be integers or None");
          parts[i] = p.as_int();
        }
        return slice(obj, parts[0], parts[1], parts[2]);
      }
      case Expr::Kind::kCall: return call(e);
      case Expr::Kind::kFilter: return filter(e, eval(*e.args[0]));
      case Expr::Kind::kTest: {
        const Value subject = eval(*e.args[0]);
        CallArgs a = arguments(e, 1);
        return apply_test(e.name, subject, a) != e.negated;
      }
      case Expr::Kind::kNeg: {
        const Value v = eval(*e.args[0]);
        if (e.name == "-") return negate(v);
        if (!v.is_number()) throw Problem(fmt::format("bad operand type for unary +: '{}'", type_name(v)));
        return v;
      }
      case Expr::Kind::kBinary: {
        const Value a = eval(*e.args[0]);
        const Value b = eval(*e.args[1]);
        const Value r = binary_op(e.name, a, b, opt_.max_output);
        return e.negated ? Value(!truthy(r)) : r;
      }
      // Python's and/or return an operand, not a bool.
      case Expr::Kind::kAnd: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? eval(*e.args[1]) : a;
      }
      case Expr::Kind::kOr: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? a : eval(*e.args[1]);
      }
      case Expr::Kind::kNot: return !truthy(eval(*e.args[0]));
      case Expr::Kind::kCond:
        if (truthy(eval(*e.args[0]))) return eval(*e.args[1]);
        return e.args[2] ? eval(*e.args[2]) : Value(Undefined{"else"});
    }
    return {};
  }

  Value call(const Expr& e) {
    const Expr& callee = *e.args[0];
    Value fn;
    std::string what;
    if (callee.kind == Expr::Kind::kAttr) {
      const Value obj = eval(*callee.args[0]);
      CallArgs a = arguments(e, 1);
      if (auto r = call_method(obj, callee.name, a, opt_.max_output)) return *r;
      fn = get_attr(obj, callee.name);
      what = callee.name;
      if (!fn.is_function()) throw Problem(fmt::format("'{}' object has no method '{}'", type_name(obj), callee.name));
      return (*std::get<Value::FunctionPtr>(fn.v))(a);
    }
    fn = eval(callee);
    what = callee.kind == Expr::Kind::kName ? callee.name : "value";
    if (fn.is_undefined()) throw Problem(fmt::format("'{}' is undefined", what));
    if (!fn.is_function()) throw Problem(fmt::format("'{}' is not callable ({})", what, type_name(fn)));
    CallArgs a = arguments(e, 1);
    return (*std::get<Value::FunctionPtr>(fn.v))(a);
  }

  const RenderOptions& opt_;
  std::vector<Frame> frames_;  // 0: globals, 1: the context and top-level sets
  size_t floor_ = 2;           // frames below this (but 0 and 1) are hidden: a macro's caller
  std::string* out_ = nullptr;
  int depth_ = 0;
  size_t steps_ = 0;
};

}  // namespace

std::string run(const Program& program, std::string_view name, const nlohmann::ordered_json& context,
                const RenderOptions& options) {
  try {
    return Interpreter(options).render(program, context);
  } catch (const Located& e) {
    throw Error(fmt::format("{}:{}:{}: {}", name, e.pos.line, e.pos.column, e.what()));
  } catch (const Problem& e) {
    throw Error(fmt::format("{}: {}", name, e.what()));
  }
}

}  // namespace upg::jinja
