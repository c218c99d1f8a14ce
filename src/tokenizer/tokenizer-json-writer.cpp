// to_tokenizer_json / to_tokenizer_config_json: TokenizerSpec -> Hugging Face files, so a
// model that came as GGUF keeps a tokenizer that `tokenizers`, `transformers` and
// parse_tokenizer_json all read the same way.
#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "tokenizer/pre-tokenizer.h"
#include "upg/core/error.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg {
namespace {

using Json = nlohmann::ordered_json;

constexpr int32_t kTypeControl = 3, kTypeUserDefined = 4;
// What parse_tokenizer_json stores for ByteLevel(use_regex=false) alone: the whole text.
constexpr const char* kWholeText = R"((?s:.+))";
constexpr const char* kDigitRuns = R"(\p{N}+)";

Json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

// The pre-tokenizer regexes in application order, as the Tokenizer resolves them.
std::vector<std::string> regexes_of(const TokenizerSpec& spec, bool& ignore_merges) {
  std::vector<std::string> out;
  ignore_merges = spec.ignore_merges;
  if (spec.split_digits) out.emplace_back(tokenizer::kDigitRegex);
  if (!spec.pre_regexes.empty()) {
    out.insert(out.end(), spec.pre_regexes.begin(), spec.pre_regexes.end());
  } else {
    auto preset = tokenizer::pre_tokenizer_preset(spec.pre_tokenizer);
    out.insert(out.end(), preset.regexes.begin(), preset.regexes.end());
    ignore_merges = ignore_merges || preset.ignore_merges;
  }
  return out;
}

// Each regex becomes the HF step that splits the same way: Digits for the digit
// patterns, ByteLevel(use_regex) for a final GPT-2 pattern, Split(Isolated) otherwise,
// then ByteLevel without its regex. ByteLevel maps text to its byte alphabet, so it may
// only carry a regex when it is the last step.
Json pre_tokenizer(const std::vector<std::string>& regexes) {
  Json steps = Json::array();
  bool byte_level_done = false;
  for (size_t i = 0; i < regexes.size(); ++i) {
    const std::string& r = regexes[i];
    if (r == tokenizer::kGpt2Regex && i + 1 == regexes.size()) {
      steps.push_back(byte_level(true));
      byte_level_done = true;
    } else if (r == tokenizer::kDigitRegex || r == kDigitRuns) {
      steps.push_back({{"type", "Digits"}, {"individual_digits", r == tokenizer::kDigitRegex}});
    } else if (r != kWholeText) {
      steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", r}}}, {"behavior", "Isolated"}, {"invert", false}});
    }
  }
  if (!byte_level_done) steps.push_back(byte_level(false));
  if (steps.size() == 1) return steps[0];
  return {{"type", "Sequence"}, {"pretokenizers", steps}};
}

// Added tokens by id: tokenizer.json's, plus GGUF control (special) and user-defined
// tokens, which the Tokenizer also matches verbatim.
std::map<int32_t, TokenizerSpec::Added> added_tokens(const TokenizerSpec& spec) {
  std::map<int32_t, TokenizerSpec::Added> out;
  const auto n = int64_t(spec.vocab.size());
  for (const auto& a : spec.added_tokens) {
    if (a.id < 0 || a.id >= n)
      throw Error(fmt::format("tokenizer.json writer: added token '{}' id {} is outside the vocab", a.content, a.id));
    auto [it, fresh] = out.emplace(a.id, a);
    if (!fresh) it->second.special = it->second.special || a.special;
  }
  for (size_t i = 0; i < spec.token_types.size() && int64_t(i) < n; ++i) {
    const int32_t t = spec.token_types[i];
    if (t != kTypeControl && t != kTypeUserDefined) continue;
    auto [it, fresh] = out.emplace(int32_t(i), TokenizerSpec::Added{int32_t(i), spec.vocab[i], t == kTypeControl});
    if (!fresh) it->second.special = it->second.special || t == kTypeControl;
  }
  return out;
}

Json token_or_null(const TokenizerSpec& spec, int32_t id) {
  if (id < 0) return nullptr;
  if (id >= int64_t(spec.vocab.size()))
    throw Error(fmt::format("tokenizer.json writer: token id {} is outside the vocab (size {})", id, spec.vocab.size()));
  return spec.vocab[size_t(id)];
}

}  // namespace

std::string to_tokenizer_json(const TokenizerSpec& spec) {
  if (spec.vocab.empty()) throw Error("tokenizer.json writer: the vocab is empty");
  Json vocab = Json::object();
  std::unordered_map<std::string_view, size_t> seen;
  for (size_t i = 0; i < spec.vocab.size(); ++i) {
    auto [it, fresh] = seen.emplace(spec.vocab[i], i);
    // tokenizer.json maps text -> id, so a text under two ids cannot be written.
    if (!fresh)
      throw Error(fmt::format("tokenizer.json writer: token '{}' has two ids, {} and {}", spec.vocab[i], it->second, i));
    vocab[spec.vocab[i]] = i;
  }
  bool ignore_merges = false;
  const auto regexes = regexes_of(spec, ignore_merges);

  Json added = Json::array();
  for (const auto& [id, a] : added_tokens(spec)) {
    if (a.content != spec.vocab[size_t(id)])
      throw Error(fmt::format("tokenizer.json writer: added token '{}' does not match vocab[{}] '{}'", a.content, id,
                              spec.vocab[size_t(id)]));
    added.push_back({{"id", id},
                     {"content", a.content},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", a.special}});
  }

  Json post = nullptr;
  if (spec.add_bos && spec.bos_id >= 0) {
    // Adding bos is the post-processor's job in `tokenizers`; parse_tokenizer_json also
    // reads a leading SpecialToken here as add_bos when there is no tokenizer_config.
    const Json bos = token_or_null(spec, spec.bos_id);
    auto special = [&](int type_id) { return Json{{"SpecialToken", {{"id", bos}, {"type_id", type_id}}}}; };
    auto sequence = [](const char* id, int type_id) { return Json{{"Sequence", {{"id", id}, {"type_id", type_id}}}}; };
    post = {{"type", "TemplateProcessing"},
            {"single", {special(0), sequence("A", 0)}},
            {"pair", {special(0), sequence("A", 0), special(1), sequence("B", 1)}},
            {"special_tokens", {{bos.get<std::string>(), {{"id", bos}, {"ids", {spec.bos_id}}, {"tokens", {bos}}}}}}};
  }

  Json j = Json::object();
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = std::move(added);
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = pre_tokenizer(regexes);
  j["post_processor"] = std::move(post);
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", token_or_null(spec, spec.unk_id)},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", ignore_merges},
                {"vocab", std::move(vocab)},
                {"merges", spec.merges}};
  try {
    return j.dump(2) + "\n";
  } catch (const Json::exception& e) {  // a token that is not valid UTF-8
    throw Error(fmt::format("tokenizer.json writer: cannot encode: {}", e.what()));
  }
}

std::string to_tokenizer_config_json(const TokenizerSpec& spec) {
  Json j = Json::object();
  j["add_bos_token"] = spec.add_bos;
  j["add_eos_token"] = false;
  j["bos_token"] = token_or_null(spec, spec.bos_id);
  j["eos_token"] = token_or_null(spec, spec.eos_id);
  j["pad_token"] = token_or_null(spec, spec.pad_id);
  j["unk_token"] = token_or_null(spec, spec.unk_id);
  if (!spec.chat_template.empty()) j["chat_template"] = spec.chat_template;
  j["clean_up_tokenization_spaces"] = false;
  j["tokenizer_class"] = "PreTrainedTokenizerFast";
  try {
    return j.dump(2) + "\n";
  } catch (const Json::exception& e) {
    throw Error(fmt::format("tokenizer_config.json writer: cannot encode: {}", e.what()));
  }
}

}  // namespace upg
