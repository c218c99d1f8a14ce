#pragma once
// The CPU backend's public face: make one, and see or force the SIMD target it chose at
// start. The kernels themselves are private to kernels/cpu (kernels/cpu/kernels.h).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>


namespace upg::kernels {

// Name of the SIMD target in use (hwy::TargetName: "AVX3", "AVX2", "SSE4", "SCALAR" ...;
// Highway 1.0.3 has no AVX3_ZEN4, so a Zen 4 reports "AVX3").
std::string simd_target();
// Names of the targets this CPU can run, best first (for tests that force each one).
std::vector<std::string> available_targets();
// Forces a target by name for subsequent calls (tests only); returns false if unknown
// or not supported here. An empty name restores the automatic choice.
bool force_target(const std::string& name);
// Name of the int8 kernel set in use ("avx512-vnni", "avx2" or "scalar"); force_target
// switches it along with the Highway target.
std::string int8_target();

// sum x[i]*y[i], and y[i] += a*x[i]: the vector primitives of attention, public because
// the compressor's CPU algorithms (Hessians, SparseGPT) run on them too.
float dot(const float* x, const float* y, int64_t n);
void axpy(float a, const float* x, float* y, int64_t n);
// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i] for each of n_tokens rows of n: the
// compressor's LM head inputs (the final norm of its calibration stream).
void rmsnorm(const float* x, const float* w, float* out, int64_t n, int64_t n_tokens, float eps);

}  // namespace upg::kernels

namespace upg {

class Backend;
class Communicator;

// Which kernels the CPU backend runs for int8 and compressed weights: the fast int8
// kernels (int8 activations, SIMD), or the plain reference kernels of format/ with fp32
// activations (what the fast ones are tested against).
enum class CpuKernels { Fast, Reference };

// The CPU backend over kernels/cpu; n_threads <= 0 uses every core.
std::unique_ptr<Backend> make_cpu_backend(int n_threads, CpuKernels kernels = CpuKernels::Fast);

// n communicators between threads of this process, rank r the r-th (CPU ranks of a
// tensor-parallel model, which read each other's host buffers). Each call waits at most
// timeout_ms for the other ranks, then stops every rank's calls with an upg::Error.
std::vector<std::unique_ptr<Communicator>> make_cpu_communicators(int n, int64_t timeout_ms = 300000);

}  // namespace upg
