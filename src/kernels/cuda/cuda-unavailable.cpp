// The CUDA backend's entry points in a build without it (CMake found no nvcc, or
// UPG_CUDA=OFF): `--device cuda` then fails with this one line instead of a link error.
#include <memory>
#include <string>

#include "upg/core/error.h"
#include "upg/kernels/backend.h"
#include "upg/kernels/communicator.h"
#include "upg/kernels_cuda/cuda.h"

namespace upg {

namespace {
constexpr const char* kNoCuda = "this build of UPG has no CUDA backend (configure with nvcc on the PATH and -DUPG_CUDA=ON)";
}

bool cuda_available(std::string* why) {
  if (why) *why = kNoCuda;
  return false;
}

std::unique_ptr<Backend> make_cuda_backend(int, bool, bool) { throw Error(kNoCuda); }

int cuda_device_count() { return 0; }

bool nccl_available(std::string* why) {
  if (why) *why = kNoCuda;
  return false;
}

std::vector<std::unique_ptr<Communicator>> make_nccl_communicators(std::span<Backend* const>) { throw Error(kNoCuda); }

}  // namespace upg
