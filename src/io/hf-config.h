#pragma once
// Internal companion of parse_hf_config (declared in upg/io/io.h).
#include <string_view>

#include "upg/core/config.h"

namespace upg::io {

// generation_config.json: bos_token_id and eos_token_id (an int or a list), when
// present, override what config.json said. Throws upg::Error naming origin and key.
void apply_generation_config(std::string_view json, std::string_view origin, ModelConfig& config);

}  // namespace upg::io
