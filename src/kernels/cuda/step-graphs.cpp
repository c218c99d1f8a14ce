#include "kernels/cuda/step-graphs.h"

#include "kernels/cuda/cuda-check.h"

namespace upg::cuda {

bool StepGraphs::replay(std::span<const int64_t> key) {
  if (!enabled_) return false;
  key_.assign(key.begin(), key.end());
  const auto it = steps_.find(key_);
  if (it == steps_.end() || !it->second.exec) return false;
  UPG_CUDA_CHECK(cudaGraphLaunch(it->second.exec, stream_));
  return true;
}

void StepGraphs::begin(std::span<const int64_t> key) {
  if (!enabled_) return;
  if (steps_.size() >= kMaxSteps) forget();
  key_.assign(key.begin(), key.end());
  Step& s = steps_[key_];
  if (s.seen++ == 0) return;  // the first time runs as it comes
  // Thread-local: another thread's unrelated CUDA calls neither join nor break it.
  UPG_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  capturing_ = &s;
}

void StepGraphs::end(bool completed) {
  if (!capturing_) return;
  Step& s = *capturing_;
  capturing_ = nullptr;
  cudaGraph_t graph = nullptr;
  const cudaError_t e = cudaStreamEndCapture(stream_, &graph);
  if (!completed || e != cudaSuccess) {
    if (graph) cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    s.seen = 0;
    if (completed) throw_cuda_error(e, "cudaStreamEndCapture", __FILE__, __LINE__);
    return;
  }
  const cudaError_t ie = cudaGraphInstantiate(&s.exec, graph, 0);
  cudaGraphDestroy(graph);
  if (ie != cudaSuccess) {
    s.exec = nullptr;
    throw_cuda_error(ie, "cudaGraphInstantiate", __FILE__, __LINE__);
  }
  // Captured work did not run: run it now.
  UPG_CUDA_CHECK(cudaGraphLaunch(s.exec, stream_));
}

void StepGraphs::forget() {
  for (auto& [key, s] : steps_)
    if (s.exec) cudaGraphExecDestroy(s.exec);
  steps_.clear();
  capturing_ = nullptr;
}

}  // namespace upg::cuda
