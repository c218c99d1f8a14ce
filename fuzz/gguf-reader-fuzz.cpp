// GGUF: the container parser (GgufFile::parse), every typed metadata accessor, the model
// config and tokenizer taken from the metadata (and a Tokenizer built from it), then the
// whole loader (tensor renaming, Q/K un-permutation, dequantization of every block type).
#include <cstdint>
#include <string>

#include "fuzz-util.h"
#include "io/gguf-config.h"
#include "io/gguf-loader.h"
#include "io/gguf-reader.h"
#include "io/gguf-tokenizer.h"
#include "io/mapped-file.h"
#include "upg/tokenizer/tokenizer.h"

using namespace upg;
using namespace upg::io;
using upg::fuzz::accept_errors;

namespace {

void use_tokenizer(const Tokenizer& tok) {
  const std::vector<int32_t> ids = tok.encode("Hello world, 12345 <|im_start|>user\n\xC3\xA9t\xC3\xA9<|im_end|>", true);
  (void)tok.decode(ids, false);
  (void)tok.decode(ids, true);
  (void)tok.stop_ids();
  accept_errors([&] { (void)tok.apply_chat_template({{"user", "hi"}}); });
}

void use_metadata(const GgufFile& g) {
  // The typed accessors that apply to each value's type (the others only throw).
  for (const auto& kv : g.metadata()) {
    const std::string& key = kv.first;
    const GgufValue& v = kv.second;
    (void)gguf_value_to_string(v);
    if (gguf_type_is_integer(v.type)) {
      accept_errors([&] { (void)g.get_u32(key); });
      accept_errors([&] { (void)g.get_i32(key); });
      accept_errors([&] { (void)g.get_u64(key); });
    } else if (v.type == GgufType::FLOAT32 || v.type == GgufType::FLOAT64) {
      (void)g.get_f32(key);
    } else if (v.type == GgufType::BOOL) {
      (void)g.get_bool(key);
    } else if (v.type == GgufType::STRING) {
      (void)g.get_string(key);
    } else if (v.type == GgufType::ARRAY) {
      (void)g.get_array(key);
      accept_errors([&] { (void)g.get_string_array(key); });
      accept_errors([&] { (void)g.get_i32_array(key); });
      accept_errors([&] { (void)g.get_f32_array(key); });
    }
  }
  for (const auto& t : g.tensors()) {
    (void)t.shape();
    (void)ggml_type_name(t.ggml_type);
    // The reader promises [data, data + nbytes) lies inside the file.
    if (t.nbytes > 0) {
      volatile std::byte first = t.data[0], last = t.data[t.nbytes - 1];
      (void)first;
      (void)last;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = MappedFile::from_bytes("fuzz.gguf", data, size);
  accept_errors([&] {
    const GgufFile g = GgufFile::parse(file);
    use_metadata(g);
    accept_errors([&] { (void)gguf_model_config(g); });
    accept_errors([&] {
      if (auto spec = gguf_tokenizer_spec(g)) use_tokenizer(Tokenizer(std::move(*spec)));
    });
  });
  accept_errors([&] {
    // Each target type has its own conversion code, and by default blocks stay as stored
    // (the integer path); the input length picks one.
    LoadOptions opts;
    if (size % 4 != 3) opts.dequant_to = size % 4 == 0 ? DType::F32 : size % 4 == 1 ? DType::F16 : DType::BF16;
    (void)load_gguf(file, opts);
  });
  return 0;
}
