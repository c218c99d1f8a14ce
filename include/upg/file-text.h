#pragma once
// Reads a whole (small) file into memory: configs, tokenizer JSON, prompts, evaluation
// and calibration texts. Throws upg::Error("<path>: cannot read <what>: <reason>").
#include <string>
#include <string_view>

namespace upg {

std::string read_file_text(const std::string& path, std::string_view what);

}  // namespace upg
