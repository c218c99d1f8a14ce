#pragma once
// The one way the project parses JSON from files: every reader (safetensors and UPG
// headers, config.json, tokenizer.json, shard indexes) goes through here so that a
// nesting limit holds everywhere. nlohmann's values copy, compare and dump by recursion,
// so a hostile file of 100k nested brackets would overflow the stack long after the
// parse; real files nest a handful of levels.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "upg/core/error.h"

namespace upg {

inline constexpr int kMaxJsonDepth = 64;

// Why `text` must not be parsed (too deeply nested), or nullopt. One pass over the bytes
// that tracks strings and escapes; it does not validate the JSON itself.
std::optional<std::string> json_depth_problem(std::string_view text, int max_depth = kMaxJsonDepth);

// Parses `text`; throws Error("<origin>: not valid JSON: <why>") on bad syntax or nesting
// past kMaxJsonDepth.
template <class Json = nlohmann::json>
Json parse_json(std::string_view text, std::string_view origin) {
  if (auto why = json_depth_problem(text)) throw Error(fmt::format("{}: not valid JSON: {}", origin, *why));
  try {
    return Json::parse(text);
  } catch (const typename Json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", origin, e.what()));
  }
}

// As parse_json, but a discarded value (is_discarded()) instead of an error: for sniffing
// and for display of optional metadata.
template <class Json = nlohmann::json>
Json parse_json_or_discard(std::string_view text) {
  if (json_depth_problem(text)) return Json(Json::value_t::discarded);
  return Json::parse(text, nullptr, false);
}

}  // namespace upg
