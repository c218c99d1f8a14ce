#pragma once
// An OpenAI-style error: the HTTP status and the body
// {"error": {"message", "type", "param", "code"}} that clients (the openai package among
// them) read. Thrown by request parsing and the handlers; the HTTP layer turns it into
// the response, so a bad request never ends anything but itself.
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace upg::server {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = {}, std::string type = "invalid_request_error",
           std::string code = {})
      : std::runtime_error(message),
        status_(status),
        param_(std::move(param)),
        type_(std::move(type)),
        code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& type() const { return type_; }
  const std::string& code() const { return code_; }
  // {"error": {...}}; an empty param or code is null, as OpenAI sends it.
  nlohmann::json body() const;

 private:
  int status_;
  std::string param_, type_, code_;
};

// A 400 naming one request field.
inline ApiError bad_field(const std::string& field, const std::string& problem) {
  return ApiError(400, field + ": " + problem, field);
}

}  // namespace upg::server
