#pragma once
// Plain data shared by the engine's KV manager (which decides the copies), the model
// (which passes them on) and the backends (which perform them).
#include <cstdint>

namespace upg {

// One block of the paged KV cache copied onto another, in every layer (copy-on-write:
// a sequence about to write into a block it shares gets its own copy first).
struct BlockCopy {
  int32_t src = 0, dst = 0;
};

}  // namespace upg
