#pragma once
// What the two int8-activation matmul kernels share: the weight forms they run and the
// launch description of up to kMaxFused weights on one input. matmul-int8.cu holds the
// GEMV (dp4a, up to 8 tokens a block), matmul-mma.cu the tensor-core GEMM for batches.
#include <cstdint>

#include "kernels/cuda/kernels.h"

namespace upg::cuda {

enum class Form { I8, B8, B4, N24 };

inline Form form_of(const DeviceWeight& w) {
  return w.kind == WeightKind::I8     ? Form::I8
         : w.kind == WeightKind::Nm24 ? Form::N24
         : w.bits == 8                ? Form::B8
                                      : Form::B4;
}

struct Fused {
  DeviceWeight w[kMaxFused];
  float* y[kMaxFused];
  int64_t first_block[kMaxFused + 1];  // blockIdx.x ranges of each weight
  int count;
  bool accumulate;
};

// Rows of a weight one block of the tensor-core kernel covers.
constexpr int64_t kMmaRows = 32;
// Whether matmul_mma runs w (a form runs_int8 accepts, but 2:4 and int8 rows whose
// columns are not whole 32-column groups).
bool runs_mma(const DeviceWeight& w);
// f.first_block counted in kMmaRows.
void matmul_mma(const Fused& f, Form form, const Int8Acts& a, int64_t n, const Stream& s);

// Rows of a weight one block of the staged kernel covers.
constexpr int64_t kStagedRows = 64;
// Dense int8 launches of at least this many weight bytes run matmul_staged past 8 tokens:
// below it (SmolLM2's matrices, a few MB) the weights stay in the 50 MB L2 across a step
// and matmul_mma's direct loads keep up. 2:4 runs it at any size (matmul_mma has no 2:4).
constexpr int64_t kStagedBytes = int64_t(8) << 20;
// Whether matmul_staged runs w: dense int8 or 2:4 int8 rows of whole 32-column groups.
bool runs_staged(const DeviceWeight& w);
// f.first_block counted in kStagedRows.
void matmul_staged(const Fused& f, Form form, const Int8Acts& a, int64_t n, const Stream& s);

}  // namespace upg::cuda
