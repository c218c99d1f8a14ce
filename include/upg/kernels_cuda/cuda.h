#pragma once
// The CUDA backend's public face (src/kernels/cuda): the whole forward pass on one
// NVIDIA GPU. In a build without nvcc (UPG_CUDA=OFF, or AUTO with none found) these
// still exist and say so.
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace upg {

class Backend;
class Communicator;

// Whether this build has the CUDA backend and a CUDA device is present; `why` (when
// given) gets the reason when not.
bool cuda_available(std::string* why = nullptr);

// The CUDA backend on device `device`. Throws upg::Error when the build has no CUDA
// backend or no device is present. graphs: record forward-pass steps as CUDA graphs and
// replay them (Backend::replay_step); off runs every op as it comes. pdl: let each
// kernel start while the one before it ends (programmatic dependent launch, on Hopper
// and later; off: each waits, as on older GPUs).
std::unique_ptr<Backend> make_cuda_backend(int device = 0, bool graphs = true, bool pdl = true);

// CUDA devices present (0 without the backend or a device).
int cuda_device_count();

// Tensor parallelism over NCCL: one communicator per CUDA backend (each on its own
// device), rank r the r-th, their collectives on each backend's stream. NCCL is opened
// at the first call (libnccl.so.2 on the loader's path, or the file UPG_NCCL_LIBRARY
// names). Throws upg::Error when the build has no NCCL, the library is not found, or
// NCCL fails to start. Turns NVLink multicast off first (disable_nvlink_multicast).
std::vector<std::unique_ptr<Communicator>> make_nccl_communicators(std::span<Backend* const> backends);
// Whether make_nccl_communicators can work here; `why` gets the reason when not.
bool nccl_available(std::string* why = nullptr);
// Sets NCCL_NVLS_ENABLE=0, TORCH_SYMM_MEM_DISABLE_MULTICAST=1 and NVSHMEM_DISABLE_NVLS=1
// in this process's environment (and so its children's): multicast stays off.
void disable_nvlink_multicast();

}  // namespace upg
