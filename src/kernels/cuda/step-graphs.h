#pragma once
// The CUDA backend's recorded steps (Backend::replay_step): a key's ops run as they come
// the first time (so every weight, vector and scratch buffer they need is on the device
// by then, and nothing is allocated or uploaded while capturing), are captured as a CUDA
// graph the second time, and the graph is replayed after that: one launch for the
// hundreds of kernels of a decode step, and no host work per kernel.
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <span>
#include <vector>

namespace upg::cuda {

class StepGraphs {
 public:
  StepGraphs(cudaStream_t stream, bool enabled) : stream_(stream), enabled_(enabled) {}
  ~StepGraphs() { forget(); }
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  bool replay(std::span<const int64_t> key);
  void begin(std::span<const int64_t> key);
  void end(bool completed);
  // Whether ops are being captured now (nothing may allocate, upload or synchronize).
  bool capturing() const { return capturing_ != nullptr; }
  // Drops every graph: a buffer a graph reads was freed or moved (scratch grew, a weight
  // was replaced, the KV cache was made anew).
  void forget();

 private:
  struct Step {
    int seen = 0;
    cudaGraphExec_t exec = nullptr;
  };
  // Keys of prefill ubatches vary with the prompt; past this many the graphs are dropped
  // and recorded again as they recur.
  static constexpr size_t kMaxSteps = 256;
  cudaStream_t stream_;
  bool enabled_;
  std::map<std::vector<int64_t>, Step, std::less<>> steps_;
  std::vector<int64_t> key_;  // lookup buffer, so a replay allocates nothing
  Step* capturing_ = nullptr;
};

}  // namespace upg::cuda
