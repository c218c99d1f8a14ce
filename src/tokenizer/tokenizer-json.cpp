// parse_tokenizer_json: Hugging Face tokenizer.json + tokenizer_config.json -> TokenizerSpec.
#include <fmt/format.h>

#include <cctype>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>

#include "upg/core/json.h"
#include "tokenizer/pre-tokenizer.h"
#include "upg/core/error.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg {
namespace {

using json = nlohmann::json;

class Parser {
 public:
  explicit Parser(std::string_view origin) : origin_(origin) {}

  [[noreturn]] void fail(std::string_view field, std::string_view what) const {
    throw Error(fmt::format("{}: {}: {}", origin_, field, what));
  }

  json parse(std::string_view text, std::string_view what) const {
    return parse_json(text, fmt::format("{}: {}", origin_, what));
  }

  // obj[key] as a string; nullopt when absent or null.
  std::optional<std::string> opt_string(const json& obj, const char* key, const std::string& field) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) fail(field + "." + key, "expected a string");
    return it->get<std::string>();
  }
  bool opt_bool(const json& obj, const char* key, const std::string& field, bool dflt) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return dflt;
    if (!it->is_boolean()) fail(field + "." + key, "expected true or false");
    return it->get<bool>();
  }
  std::string type_of(const json& obj, const std::string& field) const {
    if (!obj.is_object()) fail(field, "expected an object");
    auto t = opt_string(obj, "type", field);
    if (!t) fail(field + ".type", "missing");
    return *t;
  }

  void model(const json& root, TokenizerSpec& spec, std::optional<std::string>& unk) const {
    auto it = root.find("model");
    if (it == root.end() || !it->is_object()) fail("model", "missing or not an object");
    const json& m = *it;
    // Older files omit model.type; vocab + merges can only be BPE then.
    if (auto type = opt_string(m, "type", "model"); type && *type != "BPE")
      fail("model.type", fmt::format("'{}' is not supported (only byte-level BPE)", *type));
    if (opt_bool(m, "byte_fallback", "model", false)) fail("model.byte_fallback", "byte fallback BPE is not supported");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (auto v = opt_string(m, key, "model"); v && !v->empty())
        fail(std::string("model.") + key, fmt::format("'{}' is not supported", *v));
    }
    if (auto d = m.find("dropout"); d != m.end() && !d->is_null() && !(d->is_number() && d->get<double>() == 0.0))
      fail("model.dropout", "BPE dropout is not supported");
    spec.ignore_merges = opt_bool(m, "ignore_merges", "model", false);
    unk = opt_string(m, "unk_token", "model");

    auto v = m.find("vocab");
    if (v == m.end() || !v->is_object()) fail("model.vocab", "missing or not an object of token -> id");
    // Ids are contiguous, so none can reach the number of entries; checking that first
    // keeps a corrupt id from sizing a huge table.
    auto added = root.find("added_tokens");
    id_limit_ = v->size() + (added != root.end() && added->is_array() ? added->size() : 0);
    for (auto e = v->begin(); e != v->end(); ++e) {
      if (!e.value().is_number_integer() || e.value().get<int64_t>() < 0 || e.value().get<int64_t>() > INT32_MAX)
        fail("model.vocab", fmt::format("token '{}' has an id that is not a non-negative integer", e.key()));
      put(spec, e.value().get<int32_t>(), e.key(), "model.vocab");
    }

    auto mg = m.find("merges");
    if (mg == m.end() || !mg->is_array()) fail("model.merges", "missing or not an array");
    spec.merges.reserve(mg->size());
    for (size_t i = 0; i < mg->size(); ++i) {
      const json& e = (*mg)[i];
      const std::string field = fmt::format("model.merges[{}]", i);
      if (e.is_string()) {
        const std::string s = e.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || sp == 0 || sp + 1 == s.size() || s.find(' ', sp + 1) != std::string::npos)
          fail(field, fmt::format("'{}' is not two space-separated tokens", s));
        spec.merges.push_back(s);
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        const auto a = e[0].get<std::string>(), b = e[1].get<std::string>();
        if (a.empty() || b.empty() || a.find(' ') != std::string::npos || b.find(' ') != std::string::npos)
          fail(field, "a merge part is empty or contains a space");
        spec.merges.push_back(a + " " + b);
      } else {
        fail(field, "expected \"left right\" or [left, right]");
      }
    }
  }

  void added_tokens(const json& root, TokenizerSpec& spec) const {
    auto it = root.find("added_tokens");
    if (it == root.end() || it->is_null()) return;
    if (!it->is_array()) fail("added_tokens", "expected an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const json& a = (*it)[i];
      const std::string field = fmt::format("added_tokens[{}]", i);
      if (!a.is_object()) fail(field, "expected an object");
      auto id = a.find("id");
      if (id == a.end() || !id->is_number_integer() || id->get<int64_t>() < 0 || id->get<int64_t>() > INT32_MAX)
        fail(field + ".id", "missing or not a non-negative integer");
      auto content = opt_string(a, "content", field);
      if (!content || content->empty()) fail(field + ".content", "missing or empty");
      const bool special = opt_bool(a, "special", field, false);
      put(spec, id->get<int32_t>(), *content, field);
      spec.added_tokens.push_back({id->get<int32_t>(), *content, special});
    }
  }

  // Published tokenizers nest one Sequence at most; the bound keeps a hostile file from
  // recursing (and building ever longer field names) without limit.
  static constexpr int kMaxSequenceDepth = 4;

  void pre_tokenizer(const json& pt, const std::string& field, TokenizerSpec& spec, bool& byte_level,
                     int depth = 0) const {
    const std::string type = type_of(pt, field);
    if (type == "Sequence") {
      if (depth >= kMaxSequenceDepth)
        fail(field, fmt::format("Sequence nested more than {} deep", kMaxSequenceDepth));
      auto list = pt.find("pretokenizers");
      if (list == pt.end() || !list->is_array()) fail(field + ".pretokenizers", "missing or not an array");
      for (size_t i = 0; i < list->size(); ++i)
        pre_tokenizer((*list)[i], fmt::format("{}.pretokenizers[{}]", field, i), spec, byte_level, depth + 1);
    } else if (type == "ByteLevel") {
      // HF's default for add_prefix_space is true, so a missing field means true.
      if (opt_bool(pt, "add_prefix_space", field, true))
        fail(field + ".add_prefix_space", "true is not supported");
      if (opt_bool(pt, "use_regex", field, true)) spec.pre_regexes.emplace_back(tokenizer::kGpt2Regex);
      byte_level = true;
    } else if (type == "Split") {
      auto pat = pt.find("pattern");
      if (pat == pt.end() || !pat->is_object()) fail(field + ".pattern", "missing or not an object");
      if (auto re = opt_string(*pat, "Regex", field + ".pattern")) {
        spec.pre_regexes.push_back(*re);
      } else if (auto str = opt_string(*pat, "String", field + ".pattern")) {
        spec.pre_regexes.push_back(escape(*str));
      } else {
        fail(field + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
      }
      // Isolated keeps matches and gaps both as pieces, which is what the pre-tokenizer
      // implements; the other behaviours would drop or glue text.
      if (auto b = opt_string(pt, "behavior", field); b != "Isolated")
        fail(field + ".behavior", fmt::format("'{}' is not supported (only Isolated)", b.value_or("")));
      if (opt_bool(pt, "invert", field, false)) fail(field + ".invert", "true is not supported");
    } else if (type == "Digits") {
      spec.pre_regexes.emplace_back(opt_bool(pt, "individual_digits", field, false) ? tokenizer::kDigitRegex
                                                                                   : R"(\p{N}+)");
    } else {
      fail(field + ".type", fmt::format("unsupported pre-tokenizer '{}'", type));
    }
  }

  void pipeline(const json& root, TokenizerSpec& spec) const {
    if (auto n = root.find("normalizer"); n != root.end() && !n->is_null()) {
      // NFC is accepted but not applied: text that is already composed (nearly all
      // input) is unchanged by it. Anything else would change the ids.
      const std::string type = type_of(*n, "normalizer");
      if (type != "NFC") fail("normalizer.type", fmt::format("unsupported normalizer '{}'", type));
    }
    auto pt = root.find("pre_tokenizer");
    if (pt == root.end() || pt->is_null()) fail("pre_tokenizer", "missing (byte-level BPE needs ByteLevel)");
    bool byte_level = false;
    pre_tokenizer(*pt, "pre_tokenizer", spec, byte_level);
    if (!byte_level) fail("pre_tokenizer", "no ByteLevel pre-tokenizer (only byte-level BPE is supported)");
    // ByteLevel(use_regex=false) alone leaves the whole text as one piece.
    if (spec.pre_regexes.empty()) spec.pre_regexes.emplace_back(R"((?s:.+))");

    auto dec = root.find("decoder");
    if (dec == root.end() || dec->is_null()) fail("decoder", "missing (expected ByteLevel)");
    if (const std::string type = type_of(*dec, "decoder"); type != "ByteLevel")
      fail("decoder.type", fmt::format("'{}' is not supported (expected ByteLevel)", type));
  }

  // The first SpecialToken of a TemplateProcessing "single" template (Llama-3's bos).
  std::optional<std::string> template_prefix(const json& root) const {
    auto pp = root.find("post_processor");
    if (pp == root.end() || !pp->is_object() || pp->value("type", "") != "TemplateProcessing") return std::nullopt;
    auto single = pp->find("single");
    if (single == pp->end() || !single->is_array() || single->empty()) return std::nullopt;
    auto st = single->front().find("SpecialToken");
    if (st == single->front().end() || !st->is_object()) return std::nullopt;
    auto id = st->find("id");
    if (id == st->end() || !id->is_string()) return std::nullopt;
    return id->get<std::string>();
  }

  void config(const json& cfg, TokenizerSpec& spec, const std::optional<std::string>& prefix) const {
    if (!cfg.is_object()) fail("tokenizer_config.json", "expected an object");
    if (auto t = cfg.find("chat_template"); t != cfg.end() && !t->is_null()) {
      if (t->is_string()) {
        spec.chat_template = t->get<std::string>();
      } else if (t->is_array()) {
        for (const json& e : *t) {
          if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
            spec.chat_template = e["template"].get<std::string>();
        }
      } else {
        fail("tokenizer_config.json chat_template", "expected a string or a list of {name, template}");
      }
    }
    struct Named {
      const char* key;
      int32_t* id;
    };
    for (Named n : {Named{"bos_token", &spec.bos_id}, Named{"eos_token", &spec.eos_id}, Named{"pad_token", &spec.pad_id},
                    Named{"unk_token", &spec.unk_id}}) {
      auto it = cfg.find(n.key);
      if (it == cfg.end() || it->is_null()) continue;
      const std::string field = fmt::format("tokenizer_config.json {}", n.key);
      std::string text;
      if (it->is_string()) {
        text = it->get<std::string>();
      } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
        text = (*it)["content"].get<std::string>();
      } else {
        fail(field, "expected a string or {\"content\": ...}");
      }
      *n.id = lookup(spec, text, field);
    }
    if (auto a = cfg.find("add_bos_token"); a != cfg.end() && !a->is_null()) {
      if (!a->is_boolean()) fail("tokenizer_config.json add_bos_token", "expected true or false");
      spec.add_bos = a->get<bool>();
    } else if (prefix && spec.bos_id >= 0 && spec.vocab[spec.bos_id] == *prefix) {
      spec.add_bos = true;
    }
  }

  int32_t lookup(const TokenizerSpec& spec, const std::string& text, std::string_view field) const {
    for (size_t i = 0; i < spec.vocab.size(); ++i)
      if (spec.vocab[i] == text) return static_cast<int32_t>(i);
    fail(field, fmt::format("'{}' is not in the vocab", text));
  }

  void finish_vocab(const TokenizerSpec& spec) const {
    for (size_t i = 0; i < spec.vocab.size(); ++i)
      if (!filled_[i]) fail("model.vocab", fmt::format("no token has id {} (ids must be contiguous)", i));
  }

 private:
  std::string_view origin_;
  mutable std::vector<bool> filled_;
  mutable size_t id_limit_ = 0;

  void put(TokenizerSpec& spec, int32_t id, const std::string& text, std::string_view field) const {
    if (static_cast<size_t>(id) >= id_limit_)
      fail(field, fmt::format("id {} of '{}' is not below the number of tokens ({})", id, text, id_limit_));
    if (static_cast<size_t>(id) >= spec.vocab.size()) {
      spec.vocab.resize(static_cast<size_t>(id) + 1);
      filled_.resize(spec.vocab.size(), false);
    }
    if (filled_[id] && spec.vocab[id] != text)
      fail(field, fmt::format("id {} is given to both '{}' and '{}'", id, spec.vocab[id], text));
    spec.vocab[id] = text;
    filled_[id] = true;
  }

  static std::string escape(const std::string& s) {
    std::string out;
    for (char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x80 && !std::isalnum(u)) out += '\\';
      out += c;
    }
    return out;
  }
};

}  // namespace

TokenizerSpec parse_tokenizer_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                                   std::string_view origin) {
  Parser p(origin);
  const json root = p.parse(tokenizer_json, "tokenizer.json");
  if (!root.is_object()) p.fail("tokenizer.json", "expected a JSON object");
  TokenizerSpec spec;
  std::optional<std::string> unk;
  p.model(root, spec, unk);
  p.added_tokens(root, spec);
  p.finish_vocab(spec);
  if (spec.vocab.empty()) p.fail("model.vocab", "is empty");
  if (unk) spec.unk_id = p.lookup(spec, *unk, "model.unk_token");
  p.pipeline(root, spec);

  const auto prefix = p.template_prefix(root);
  if (tokenizer_config_json.find_first_not_of(" \t\r\n") != std::string_view::npos) {
    p.config(p.parse(tokenizer_config_json, "tokenizer_config.json"), spec, prefix);
  } else if (prefix) {
    // Without a config, the post-processor's leading special token is the bos.
    for (size_t i = 0; i < spec.vocab.size(); ++i) {
      if (spec.vocab[i] == *prefix) {
        spec.bos_id = static_cast<int32_t>(i);
        spec.add_bos = true;
        break;
      }
    }
  }
  return spec;
}

}  // namespace upg
