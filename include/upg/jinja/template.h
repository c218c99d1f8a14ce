#pragma once
// A Jinja2 interpreter for the subset Hugging Face chat templates use: {{ }}, {% %},
// {# #}, whitespace control, if/for/set/macro/filter blocks, namespace(), loop variables,
// the filters, tests and str/dict methods those templates call, and the globals
// transformers' apply_chat_template installs (raise_exception, strftime_now, its
// tojson). Rendering behaves as jinja2's ImmutableSandboxedEnvironment with
// trim_blocks and lstrip_blocks set, as transformers configures it: lists and dicts in
// the context cannot be changed (list.append is an error there too).
//
// Hand-written: no C++ Jinja library is packaged in Debian.
#include <cstddef>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace upg::jinja {

struct Program;  // the parsed template (src/jinja/ast.h)

// Limits that keep a hostile template (say, from a downloaded GGUF) from exhausting
// memory, stack or time; real chat templates stay far below them.
struct RenderOptions {
  size_t max_output = size_t{16} << 20;  // bytes of output; also caps every string and list built
  int max_depth = 256;                   // nested evaluation levels, macro recursion included
  size_t max_steps = 200'000'000;        // evaluations, each also counting the bytes or items it yields
  std::optional<std::tm> now;            // what strftime_now formats; local time when empty
};

class Template {
 public:
  // Parses `source`; a syntax error throws upg::Error "<name>:<line>:<column>: <problem>".
  Template(std::string_view source, std::string name);
  ~Template();
  Template(const Template&);
  Template& operator=(const Template&);

  // Renders with the variables of `context` (a JSON object: messages, tools,
  // add_generation_prompt, bos_token, ...). Errors (undefined operations, type errors,
  // raise_exception, a limit reached) throw upg::Error "<name>:<line>:<column>: ...".
  std::string render(const nlohmann::ordered_json& context, const RenderOptions& options = {}) const;

  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::shared_ptr<const Program> program_;
};

}  // namespace upg::jinja
