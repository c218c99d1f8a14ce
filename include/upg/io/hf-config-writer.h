#pragma once
// ModelConfig -> Hugging Face config.json, for sources that have none (GGUF): the UPG
// file's upg.config and `upg decompress` output. The inverse of parse_hf_config.
#include <string>
#include <string_view>

#include "upg/core/config.h"

namespace upg::io {

// A config.json that parse_hf_config reads back to an equal ModelConfig and that
// transformers loads (architectures, model_type, every hyper-parameter, rope_scaling or
// null, bos/eos). `torch_dtype` names the dtype the weights are meant to run in.
std::string to_hf_config_json(const ModelConfig& c, std::string_view torch_dtype = "bfloat16");

}  // namespace upg::io
