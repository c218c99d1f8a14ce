#pragma once
// Reads a whole (small) file into memory: configs, tokenizer JSON, prompts, evaluation
// and calibration texts. Throws upg::Error("<path>: cannot read <what>: <reason>"),
// also for a directory and for a file (or device, like /dev/zero) past max_bytes.
#include <cstddef>
#include <string>
#include <string_view>

namespace upg {

// Far above any config, tokenizer or text the project reads (Llama-3's tokenizer.json is
// 9 MB); it only stops an endless device or a wrong file from exhausting memory.
inline constexpr size_t kMaxTextFileBytes = size_t(256) << 20;

std::string read_file_text(const std::string& path, std::string_view what, size_t max_bytes = kMaxTextFileBytes);

}  // namespace upg
