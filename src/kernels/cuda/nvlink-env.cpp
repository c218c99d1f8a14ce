// NVLink multicast off, in every build (with or without CUDA and NCCL): the one place
// that names the variables.
#include <cstdlib>

#include "upg/kernels_cuda/cuda.h"

namespace upg {

void disable_nvlink_multicast() {
  // setenv reaches this process's NCCL (read at its first communicator) and every child
  // process started after it.
  setenv("NCCL_NVLS_ENABLE", "0", 1);
  setenv("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1", 1);
  setenv("NVSHMEM_DISABLE_NVLS", "1", 1);
}

}  // namespace upg
