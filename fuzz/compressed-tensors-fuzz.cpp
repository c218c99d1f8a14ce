// compressed-tensors checkpoints: the text before the first NUL byte as config.json, the
// bytes after it as model.safetensors; the tensors go into a store as a Hugging Face
// directory's do (add_tensors), then apply_compressed_tensors maps every module onto UPG's
// forms. Every matrix it accepts must decode.
#include <cstdint>

#include <nlohmann/json.hpp>

#include "fuzz-util.h"
#include "io/compressed-tensors.h"
#include "io/hf-directory.h"
#include "io/mapped-file.h"
#include "io/safetensors-reader.h"
#include "upg/core/json.h"
#include "upg/format/format.h"

using namespace upg;
using namespace upg::io;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = upg::fuzz::split_nul(upg::fuzz::as_text(data, size), 2);
  if (parts.size() != 2) return 0;
  upg::fuzz::accept_errors([&] {
    const nlohmann::json config = parse_json(parts[0], "config.json");
    ModelSource src;
    src.weights.source = "fuzz";
    const auto* bytes = reinterpret_cast<const uint8_t*>(parts[1].data());
    add_tensors(read_safetensors(MappedFile::from_bytes("fuzz.safetensors", bytes, parts[1].size())), src.weights);
    if (!config.is_object()) return;
    apply_compressed_tensors(config, "config.json", src);
    for (const auto& [name, m] : src.compressed) UPG_FUZZ_CHECK(format::decode_dense(m).size() == size_t(m.rows * m.cols));
  });
  return 0;
}
