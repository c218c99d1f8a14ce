#pragma once
// Reading one field of a request body: its presence (OpenAI clients send null for "not
// given") and its type, each problem an ApiError naming the field. Shared by the request
// parser and the tool-call parser, which read the same body.
#include <string>

#include <nlohmann/json.hpp>

#include "server/api-error.h"

namespace upg::server {

// The field `key` of an object, or null when it is absent or JSON null.
inline const nlohmann::ordered_json* given(const nlohmann::ordered_json& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

inline bool bool_field(const nlohmann::ordered_json& v, const std::string& name) {
  if (!v.is_boolean()) throw bad_field(name, "must be true or false");
  return v.get<bool>();
}

inline std::string string_field(const nlohmann::ordered_json& v, const std::string& name) {
  if (!v.is_string()) throw bad_field(name, "must be a string");
  return v.get<std::string>();
}

}  // namespace upg::server
