#pragma once
// Every CUDA runtime call of the backend goes through UPG_CUDA_CHECK, and every kernel
// launch is followed by UPG_CUDA_CHECK_LAUNCH: a failure becomes one upg::Error line with
// the call, where it was made and CUDA's own words, never an abort or a silent wrong result.
#include <cuda_runtime.h>

#include <string>

namespace upg::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t e, const char* call, const char* file, int line);

}  // namespace upg::cuda

#define UPG_CUDA_CHECK(call)                                                     \
  do {                                                                           \
    const cudaError_t upg_cuda_err_ = (call);                                    \
    if (upg_cuda_err_ != cudaSuccess)                                            \
      ::upg::cuda::throw_cuda_error(upg_cuda_err_, #call, __FILE__, __LINE__);   \
  } while (0)

// `what` is a string literal naming the kernel.
#define UPG_CUDA_CHECK_LAUNCH(what)                                                        \
  do {                                                                                     \
    const cudaError_t upg_cuda_err_ = cudaGetLastError();                                  \
    if (upg_cuda_err_ != cudaSuccess)                                                      \
      ::upg::cuda::throw_cuda_error(upg_cuda_err_, "launch of " what, __FILE__, __LINE__); \
  } while (0)
