// safetensors: read_safetensors on the bytes as a whole file (length prefix, JSON header,
// data), then every tensor view the reader hands out is touched at both ends.
#include <cstdint>

#include "fuzz-util.h"
#include "io/mapped-file.h"
#include "io/safetensors-reader.h"

using namespace upg;
using namespace upg::io;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  upg::fuzz::accept_errors([&] {
    const SafetensorsFile st = read_safetensors(MappedFile::from_bytes("fuzz.safetensors", data, size));
    for (const TensorView& t : st.tensors) {
      (void)dtype_name(t.dtype);
      if (t.nbytes > 0) {
        volatile std::byte first = t.data[0], last = t.data[t.nbytes - 1];
        (void)first;
        (void)last;
      }
    }
  });
  return 0;
}
