#pragma once
// The CUDA backend's public face (src/kernels/cuda): the whole forward pass on one
// NVIDIA GPU. In a build without nvcc (UPG_CUDA=OFF, or AUTO with none found) these
// still exist and say so.
#include <memory>
#include <string>

namespace upg {

class Backend;

// Whether this build has the CUDA backend and a CUDA device is present; `why` (when
// given) gets the reason when not.
bool cuda_available(std::string* why = nullptr);

// The CUDA backend on device `device`. Throws upg::Error when the build has no CUDA
// backend or no device is present. graphs: record forward-pass steps as CUDA graphs and
// replay them (Backend::replay_step); off runs every op as it comes. pdl: let each
// kernel start while the one before it ends (programmatic dependent launch, on Hopper
// and later; off: each waits, as on older GPUs).
std::unique_ptr<Backend> make_cuda_backend(int device = 0, bool graphs = true, bool pdl = true);

}  // namespace upg
