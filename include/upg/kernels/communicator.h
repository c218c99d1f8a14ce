#pragma once
// Tensor parallelism's collectives: what the ranks of one model exchange within a
// forward pass. Each rank has its own Backend and its own Communicator; the buffers are
// that backend's memory (Backend::alloc), and the calls go in the backend's order (a GPU
// communicator enqueues on the backend's stream, so a recorded step captures them).
// Every rank makes the same calls in the same order. Implementations: NCCL
// (upg/kernels_cuda/cuda.h, make_nccl_communicators) and threads in one process
// (upg/kernels/cpu.h, make_cpu_communicators).
#include <cstdint>
#include <span>

namespace upg {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // recv[0, n) = the sum over ranks of each rank's send[0, n); every rank gets the same
  // values (bit for bit). send may be recv.
  virtual void all_reduce_sum(const float* send, float* recv, int64_t n) = 0;
  // Rank r's src [rows, offsets[r + 1] - offsets[r]] into columns [offsets[r],
  // offsets[r + 1]) of rank 0's dst [rows, offsets.back()]. scratch: rank 0's backend
  // memory of dst's size, for a communicator that receives into a buffer first (others
  // pass null; so do ranks other than 0, whose dst is unused).
  virtual void gather_columns(const float* src, int64_t rows, std::span<const int64_t> offsets, float* dst,
                              float* scratch) = 0;
  // Stops this rank's pending and later calls with an upg::Error: a rank failed or timed
  // out, and the others must not wait for it. Safe from any thread; not undone.
  virtual void abort() = 0;
};

}  // namespace upg
