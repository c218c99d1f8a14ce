#pragma once
// Runs a parsed template: scopes, control flow, macros, calls, and the limits of
// RenderOptions.
#include <string>
#include <string_view>

#include "upg/jinja/template.h"
#include "jinja/ast.h"

namespace upg::jinja {

// Throws upg::Error "<name>:<line>:<column>: <problem>".
std::string run(const Program& program, std::string_view name, const nlohmann::ordered_json& context,
                const RenderOptions& options);

}  // namespace upg::jinja
