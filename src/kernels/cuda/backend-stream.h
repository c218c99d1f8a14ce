#pragma once
// What the NCCL communicator needs of a CUDA backend: its device and the stream its ops
// run on (collectives go on the same stream, so a recorded step captures them).
#include <cuda_runtime.h>

namespace upg {
class Backend;
}

namespace upg::cuda {

// Throws upg::Error when `be` is not a CUDA backend (a profiling wrapper is not one).
cudaStream_t stream_of(Backend& be);
int device_of(Backend& be);

}  // namespace upg::cuda
