#include "jinja/lexer.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>

#include "upg/core/utf8.h"

namespace upg::jinja {
namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

std::string normalize_newlines(std::string_view src) {
  std::string s;
  s.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      s += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      s += src[i];
    }
  }
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(normalize_newlines(source)) {}

  std::vector<Token> run() {
    bool line_starting = true;  // the previous tag ended a line (or this is the start)
    while (pos_ < src_.size()) {
      const size_t open = find_opener(pos_);
      std::string text = src_.substr(pos_, open - pos_);
      const Pos text_pos = where(pos_);
      if (open == src_.size()) {
        push_text(std::move(text), text_pos);
        break;
      }
      const char kind = src_[open + 1];  // '{', '%' or '#'
      const char sign = open + 2 < src_.size() ? src_[open + 2] : '\0';
      if (sign == '-') {
        size_t e = text.size();
        while (e > 0 && is_ws(text[e - 1])) --e;
        text.resize(e);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: spaces before a block or comment tag on its own line go.
        const size_t line_start = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if (line_start > 0 || line_starting) {
          bool blank = line_start < text.size();
          for (size_t k = line_start; k < text.size(); ++k) blank = blank && is_ws(text[k]);
          if (blank) text.resize(line_start);
        }
      }
      push_text(std::move(text), text_pos);
      pos_ = open + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (kind == '#') {
        line_starting = comment(open);
      } else {
        line_starting = tag(kind == '{', open);
      }
    }
    out_.push_back({Tok::kEnd, "", 0, 0, where(src_.size())});
    return std::move(out_);
  }

 private:
  size_t find_opener(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return src_.size();
  }

  Pos where(size_t offset) {
    // Positions are asked for in increasing order, so the line count advances.
    for (; line_scan_ < offset && line_scan_ < src_.size(); ++line_scan_) {
      if (src_[line_scan_] == '\n') {
        ++line_;
        line_start_ = line_scan_ + 1;
      }
    }
    return {line_, static_cast<int>(offset - line_start_) + 1};
  }

  void push_text(std::string text, Pos pos) {
    if (!text.empty()) out_.push_back({Tok::kText, std::move(text), 0, 0, pos});
  }

  // After a tag's closing delimiter at `end` (one past it): the trailing whitespace
  // rules. Returns whether the consumed text ended with a newline.
  bool after_close(size_t end, char sign, bool block) {
    pos_ = end;
    if (sign == '-') {
      while (pos_ < src_.size() && is_ws(src_[pos_])) ++pos_;
    } else if (sign != '+' && block && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;  // trim_blocks
    }
    return pos_ > 0 && src_[pos_ - 1] == '\n';
  }

  bool comment(size_t open) {
    const size_t close = src_.find("#}", pos_);
    if (close == std::string::npos) throw SyntaxError(where(open), "comment is not closed ('#}' missing)");
    char sign = '\0';
    if (close > pos_ && (src_[close - 1] == '-' || src_[close - 1] == '+')) sign = src_[close - 1];
    return after_close(close + 2, sign, true);
  }

  bool tag(bool variable, size_t open) {
    out_.push_back({variable ? Tok::kVarBegin : Tok::kBlockBegin, "", 0, 0, where(open)});
    const char closer = variable ? '}' : '%';
    int depth = 0;  // open brackets: a '}}' inside a dict literal does not end the tag
    for (;;) {
      while (pos_ < src_.size() && is_ws(src_[pos_])) ++pos_;
      if (pos_ >= src_.size())
        throw SyntaxError(where(open), fmt::format("tag is not closed ('{}}}' missing)", closer));
      if (depth == 0) {
        char sign = '\0';
        size_t at = pos_;
        if ((src_[at] == '-' || src_[at] == '+') && at + 1 < src_.size() && src_[at + 1] == closer &&
            at + 2 < src_.size() && src_[at + 2] == '}') {
          sign = src_[at];
          ++at;
        }
        if (src_[at] == closer && at + 1 < src_.size() && src_[at + 1] == '}') {
          out_.push_back({variable ? Tok::kVarEnd : Tok::kBlockEnd, "", 0, 0, where(pos_)});
          return after_close(at + 2, sign, !variable);
        }
      }
      const char c = src_[pos_];
      const Pos p = where(pos_);
      if (is_name_start(c)) {
        const size_t b = pos_;
        while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
        out_.push_back({Tok::kName, src_.substr(b, pos_ - b), 0, 0, p});
      } else if (is_digit(c)) {
        number(p);
      } else if (c == '\'' || c == '"') {
        string(p);
      } else {
        op(p, depth);
      }
    }
  }

  void number(Pos p) {
    const size_t b = pos_;
    while (pos_ < src_.size() && (is_digit(src_[pos_]) || src_[pos_] == '_')) ++pos_;
    bool is_float = false;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' && is_digit(src_[pos_ + 1])) {
      is_float = true;
      ++pos_;
      while (pos_ < src_.size() && (is_digit(src_[pos_]) || src_[pos_] == '_')) ++pos_;
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t k = pos_ + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && is_digit(src_[k])) {
        is_float = true;
        pos_ = k;
        while (pos_ < src_.size() && is_digit(src_[pos_])) ++pos_;
      }
    }
    std::string digits;
    for (size_t k = b; k < pos_; ++k)
      if (src_[k] != '_') digits += src_[k];
    Token t{is_float ? Tok::kFloat : Tok::kInt, digits, 0, 0, p};
    errno = 0;
    if (is_float) {
      t.float_value = std::strtod(digits.c_str(), nullptr);
    } else {
      t.int_value = std::strtoll(digits.c_str(), nullptr, 10);
      if (errno == ERANGE) throw SyntaxError(p, fmt::format("integer {} is too large", digits));
    }
    out_.push_back(std::move(t));
  }

  // Python string escapes (jinja2 decodes literals with "unicode-escape").
  void string(Pos p) {
    const char quote = src_[pos_++];
    std::string value;
    for (;;) {
      if (pos_ >= src_.size()) throw SyntaxError(p, "string is not closed");
      const char c = src_[pos_++];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (pos_ >= src_.size()) throw SyntaxError(p, "string is not closed");
      const char e = src_[pos_++];
      switch (e) {
        case 'n': value += '\n'; break;
        case 't': value += '\t'; break;
        case 'r': value += '\r'; break;
        case '0': value += '\0'; break;
        case 'a': value += '\a'; break;
        case 'b': value += '\b'; break;
        case 'f': value += '\f'; break;
        case 'v': value += '\v'; break;
        case '\\': value += '\\'; break;
        case '\'': value += '\''; break;
        case '"': value += '"'; break;
        case '\n': break;  // a line continuation
        case 'x': case 'u': case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (pos_ + n > src_.size()) throw SyntaxError(p, fmt::format("truncated \\{} escape", e));
          uint32_t cp = 0;
          for (size_t k = 0; k < n; ++k) {
            const char h = src_[pos_ + k];
            const int d = is_digit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
            if (d < 0) throw SyntaxError(p, fmt::format("bad \\{} escape", e));
            cp = cp * 16 + static_cast<uint32_t>(d);
          }
          if (cp > 0x10FFFF) throw SyntaxError(p, "escape past U+10FFFF");
          pos_ += n;
          append_utf8(value, cp);
          break;
        }
        default:
          value += '\\';
          value += e;
      }
    }
    out_.push_back({Tok::kString, std::move(value), 0, 0, p});
  }

  void op(Pos p, int& depth) {
    static constexpr std::string_view kTwo[] = {"**", "//", "==", "!=", "<=", ">="};
    for (std::string_view two : kTwo) {
      if (src_.compare(pos_, 2, two) == 0) {
        out_.push_back({Tok::kOp, std::string(two), 0, 0, p});
        pos_ += 2;
        return;
      }
    }
    const char c = src_[pos_];
    if (std::string_view("+-*/%~<>=()[]{},.:|").find(c) == std::string_view::npos)
      throw SyntaxError(p, fmt::format("unexpected character '{}'", c));
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') {
      if (depth == 0) throw SyntaxError(p, fmt::format("unexpected '{}'", c));
      --depth;
    }
    out_.push_back({Tok::kOp, std::string(1, c), 0, 0, p});
    ++pos_;
  }

  std::string src_;
  size_t pos_ = 0;
  std::vector<Token> out_;
  int line_ = 1;
  size_t line_start_ = 0, line_scan_ = 0;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(source).run(); }

}  // namespace upg::jinja
