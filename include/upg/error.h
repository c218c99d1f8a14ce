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

}  // namespace upg
