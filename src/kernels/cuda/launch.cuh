#pragma once
// How every kernel of the backend is launched: with programmatic dependent launch (PDL,
// Hopper) when the Stream asks for it. A kernel launched so may start while the kernel
// before it on the stream is still running; it must call pdl_wait() before it reads
// anything that kernel (or any before it) wrote, and before it writes anything they may
// still read. What it may do before: read the weights, which no kernel writes. The
// GEMVs issue their first weight loads there, so a decode step's ~10 launches a layer
// overlap their start-up with the tail of the op before instead of leaving the GPU idle
// between them (each launch of a captured graph still costs a few microseconds of
// ramp-up and drain against GEMVs of 5-20 us). pdl_trigger() lets the next kernel
// launch; called right after the wait, it keeps at most one kernel waiting behind a
// running one. Both are no-ops in a kernel launched without the attribute.
#include <cuda_runtime.h>

#include "kernels/cuda/cuda-check.h"
#include "kernels/cuda/kernels.h"

namespace upg::cuda {

__device__ inline void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ inline void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// The current device's SMs, asked once: what the launches that split their work over
// clusters (matmul-staged.cu, attention.cu) size their grids against.
inline int multiprocessor_count() {
  static const int count = [] {
    int device = 0, n = 0;
    UPG_CUDA_CHECK(cudaGetDevice(&device));
    UPG_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
    return n;
  }();
  return count;
}

// kernel<<<grid, block, smem, s.stream>>>(args...), with PDL when s.pdl and in thread-block
// clusters of `cluster` blocks when that is more than one (their blocks share shared memory:
// matmul-staged.cu adds split-K partial sums and attention.cu a long range's chunks that
// way); a failed launch throws naming `what`.
template <typename... Params, typename... Args>
void launch_clustered(const char* what, void (*kernel)(Params...), dim3 grid, dim3 cluster, dim3 block, size_t smem,
                      const Stream& s, Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s.stream;
  cudaLaunchAttribute attr[2];
  unsigned count = 0;
  if (s.pdl) {
    attr[count].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[count++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (cluster.x * cluster.y * cluster.z > 1) {
    attr[count].id = cudaLaunchAttributeClusterDimension;
    attr[count].val.clusterDim.x = cluster.x;
    attr[count].val.clusterDim.y = cluster.y;
    attr[count++].val.clusterDim.z = cluster.z;
  }
  cfg.attrs = attr;
  cfg.numAttrs = count;
  const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, Params(std::forward<Args>(args))...);
  if (e != cudaSuccess) throw_cuda_error(e, what, __FILE__, __LINE__);
}

template <typename... Params, typename... Args>
void launch(const char* what, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, const Stream& s,
            Args&&... args) {
  launch_clustered(what, kernel, grid, dim3(1, 1, 1), block, smem, s, std::forward<Args>(args)...);
}

}  // namespace upg::cuda
