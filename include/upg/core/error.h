#pragma once
// One error type for every bad input. The message is a single line that names the file,
// the tensor or field, and what is wrong; the CLI prints it and exits non-zero. Nothing
// in the library aborts on bad input: parsers validate first and throw this.
#include <stdexcept>
#include <string>

namespace upg {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A bad value of one named parameter ("temperature", "n_threads", "context_length"):
// the message is "<param>: <problem>". Front ends name the value their own way (the
// CLI's flags, a server's request fields) by mapping param() and keeping problem().
class ParamError : public Error {
 public:
  ParamError(std::string param, std::string problem)
      : Error(param + ": " + problem), param_(std::move(param)), problem_(std::move(problem)) {}
  const std::string& param() const { return param_; }
  const std::string& problem() const { return problem_; }

 private:
  std::string param_, problem_;
};

}  // namespace upg
