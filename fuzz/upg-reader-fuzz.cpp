// UPG files: load_upg on the bytes (safetensors container, upg.version, config.json and
// tokenizer texts, upg.tensors entries, compressed parts, format::validate), then every
// compressed matrix that validated is decoded and multiplied with the reference kernels,
// which trust the validation.
#include <cstdint>
#include <vector>

#include "fuzz-util.h"
#include "io/mapped-file.h"
#include "upg/io/upg-file.h"
#include "upg/format/format.h"
#include "upg/tokenizer/tokenizer.h"

using namespace upg;
using namespace upg::io;
using upg::fuzz::accept_errors;

namespace {

// Bounds what the reference kernels may allocate: a valid file may declare a huge but
// empty matrix (a few bytes of parts for 2^31 columns).
constexpr int64_t kMaxDecode = int64_t(1) << 20;

void use_matrix(const format::CompressedMatrix& m, bool slice) {
  (void)m.entries();
  (void)m.bytes();
  if (m.cols > kMaxDecode) return;
  std::vector<float> row(size_t(m.cols));
  for (int64_t r = 0; r < m.rows && r < 64; ++r) format::decode_row(m, r, row.data());
  if (m.rows * m.cols > kMaxDecode) return;
  (void)format::decode_dense(m);
  std::vector<float> x(size_t(m.cols), 0.5f), y(size_t(m.rows));
  format::reference_matmul(m, x.data(), 1, y.data());
  if (slice && m.rows > 1) use_matrix(format::slice_rows(m, 1, m.rows - 1), false);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  accept_errors([&] {
    const ModelSource src = load_upg(MappedFile::from_bytes("fuzz.upg", data, size), LoadOptions{});
    for (const auto& [name, m] : src.compressed) {
      // format::validate passed, so the kernels must not fail on it.
      try {
        use_matrix(m, true);
      } catch (const Error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        upg::fuzz::invariant_failed("a validated matrix does not decode");
      }
    }
    if (src.tokenizer) accept_errors([&] { (void)Tokenizer(*src.tokenizer).encode("Hello world 123"); });
  });
  return 0;
}
