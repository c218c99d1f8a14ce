#include "upg/jinja/template.h"

#include <fmt/format.h>

#include "jinja/interpreter.h"
#include "jinja/parser.h"
#include "upg/core/error.h"

namespace upg::jinja {

Template::Template(std::string_view source, std::string name) : name_(std::move(name)) {
  try {
    program_ = std::make_shared<const Program>(parse(source));
  } catch (const SyntaxError& e) {
    throw Error(fmt::format("{}:{}:{}: {}", name_, e.pos.line, e.pos.column, e.what()));
  }
}

Template::~Template() = default;
Template::Template(const Template&) = default;
Template& Template::operator=(const Template&) = default;

std::string Template::render(const nlohmann::ordered_json& context, const RenderOptions& options) const {
  return run(*program_, name_, context, options);
}

}  // namespace upg::jinja
