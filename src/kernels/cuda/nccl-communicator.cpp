// Tensor parallelism's collectives between GPUs: NCCL, opened at run time (dlopen), so a
// build with CUDA neither links nor needs libnccl until a model runs on several ranks;
// UPG_NCCL_LIBRARY names the library when it is not on the loader's path (the PyPI
// wheel nvidia-nccl-cu13 keeps it in site-packages/nvidia/nccl/lib). Built when CMake
// finds nccl.h (UPG_NCCL), else every entry point says so.
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "upg/core/error.h"
#include "upg/kernels/backend.h"
#include "upg/kernels/communicator.h"
#include "upg/kernels_cuda/cuda.h"

#ifdef UPG_NCCL
#include <dlfcn.h>
#include <nccl.h>

#include <atomic>
#include <cstdlib>
#include <type_traits>

#include "kernels/cuda/backend-stream.h"
#include "kernels/cuda/cuda-check.h"
#endif

namespace upg {

#ifndef UPG_NCCL

bool nccl_available(std::string* why) {
  if (why) *why = "this build of UPG has no NCCL (nccl.h was not found at configure time): one GPU only";
  return false;
}

std::vector<std::unique_ptr<Communicator>> make_nccl_communicators(std::span<Backend* const>) {
  std::string why;
  nccl_available(&why);
  throw Error(why);
}

#else

namespace {

// The NCCL entry points UPG calls, from the library dlopen found.
struct Nccl {
  decltype(&ncclCommInitAll) comm_init_all = nullptr;
  decltype(&ncclCommAbort) comm_abort = nullptr;
  decltype(&ncclCommDestroy) comm_destroy = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclSend) send = nullptr;
  decltype(&ncclRecv) recv = nullptr;
  decltype(&ncclGroupStart) group_start = nullptr;
  decltype(&ncclGroupEnd) group_end = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
  std::string error;  // why it did not load
};

const Nccl& nccl() {
  static const Nccl api = [] {
    Nccl a;
    const char* path = std::getenv("UPG_NCCL_LIBRARY");
    void* lib = dlopen(path && *path ? path : "libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      a.error = fmt::format("NCCL not found ({}); put libnccl.so.2 on LD_LIBRARY_PATH or name it in UPG_NCCL_LIBRARY",
                            dlerror());
      return a;
    }
    auto get = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      if (!fn && a.error.empty()) a.error = fmt::format("NCCL: {} is missing from the library", name);
    };
    get(a.comm_init_all, "ncclCommInitAll");
    get(a.comm_abort, "ncclCommAbort");
    get(a.comm_destroy, "ncclCommDestroy");
    get(a.all_reduce, "ncclAllReduce");
    get(a.send, "ncclSend");
    get(a.recv, "ncclRecv");
    get(a.group_start, "ncclGroupStart");
    get(a.group_end, "ncclGroupEnd");
    get(a.error_string, "ncclGetErrorString");
    return a;
  }();
  return api;
}

void check(ncclResult_t r, const char* call) {
  if (r != ncclSuccess) throw Error(fmt::format("NCCL: {} failed: {}", call, nccl().error_string(r)));
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(ncclComm_t comm, int rank, int size, cudaStream_t stream)
      : comm_(comm), rank_(rank), size_(size), stream_(stream) {}
  ~NcclCommunicator() override {
    if (!aborted_.exchange(true)) nccl().comm_destroy(comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(const float* send, float* recv, int64_t n) override {
    live();
    check(nccl().all_reduce(send, recv, size_t(n), ncclFloat, ncclSum, comm_, stream_), "ncclAllReduce");
  }

  void gather_columns(const float* src, int64_t rows, std::span<const int64_t> offsets, float* dst,
                      float* scratch) override {
    live();
    auto count = [&](int r) { return size_t(rows * (offsets[size_t(r) + 1] - offsets[size_t(r)])); };
    // Each rank's slice arrives whole in scratch (rank-major), then goes to its columns.
    check(nccl().group_start(), "ncclGroupStart");
    if (rank_ == 0) {
      for (int r = 1; r < size_; ++r)
        if (count(r))
          check(nccl().recv(scratch + rows * offsets[size_t(r)], count(r), ncclFloat, r, comm_, stream_), "ncclRecv");
    } else if (count(rank_)) {
      check(nccl().send(src, count(rank_), ncclFloat, 0, comm_, stream_), "ncclSend");
    }
    check(nccl().group_end(), "ncclGroupEnd (the gather)");
    if (rank_ != 0) return;
    const size_t pitch = size_t(offsets.back()) * sizeof(float);
    for (int r = 0; r < size_; ++r) {
      const size_t cols = size_t(offsets[size_t(r) + 1] - offsets[size_t(r)]);
      if (!cols || !rows) continue;
      const float* from = r == 0 ? src : scratch + rows * offsets[size_t(r)];
      UPG_CUDA_CHECK(cudaMemcpy2DAsync(dst + offsets[size_t(r)], pitch, from, cols * sizeof(float),
                                       cols * sizeof(float), size_t(rows), cudaMemcpyDeviceToDevice, stream_));
    }
  }

  void abort() override {
    // Ends the kernels of pending collectives, so a rank waiting on its stream returns.
    if (!aborted_.exchange(true)) nccl().comm_abort(comm_);
  }

 private:
  void live() const {
    if (aborted_) throw Error(fmt::format("tensor parallel: rank {} stopped: another rank failed", rank_));
  }
  ncclComm_t comm_;
  int rank_, size_;
  cudaStream_t stream_;
  std::atomic<bool> aborted_{false};
};

}  // namespace

bool nccl_available(std::string* why) {
  if (!nccl().error.empty()) {
    if (why) *why = nccl().error;
    return false;
  }
  return true;
}

std::vector<std::unique_ptr<Communicator>> make_nccl_communicators(std::span<Backend* const> backends) {
  disable_nvlink_multicast();  // before NCCL reads its environment
  std::string why;
  if (!nccl_available(&why)) throw Error(why);
  std::vector<int> devices;
  for (Backend* be : backends) devices.push_back(cuda::device_of(*be));
  std::vector<ncclComm_t> comms(backends.size());
  int current = 0;
  UPG_CUDA_CHECK(cudaGetDevice(&current));
  const ncclResult_t r = nccl().comm_init_all(comms.data(), int(comms.size()), devices.data());
  UPG_CUDA_CHECK(cudaSetDevice(current));  // the init visits every device
  check(r, "ncclCommInitAll");
  std::vector<std::unique_ptr<Communicator>> out;
  for (size_t i = 0; i < comms.size(); ++i)
    out.push_back(std::make_unique<NcclCommunicator>(comms[i], int(i), int(comms.size()), cuda::stream_of(*backends[i])));
  return out;
}

#endif

}  // namespace upg
