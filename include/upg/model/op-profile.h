#pragma once
#include <cstdint>
#include <string>

namespace upg {

// Time spent in one kind of backend op: an op (attention, rmsnorm, ...) or the matmuls
// of one weight kind across layers ("matmul model.layers.*.self_attn.q_proj.weight"),
// counted apart for calls of one token (decode steps) and of several (prompts, batches).
struct OpProfile {
  std::string name;
  bool single_token = false;
  int64_t calls = 0;
  double seconds = 0;
  int64_t weight_bytes = 0;  // matmuls: bytes of the weight as stored, summed over calls
};

}  // namespace upg
