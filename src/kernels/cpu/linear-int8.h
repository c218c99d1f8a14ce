#pragma once
// The CPU backend's matmul for dense int8, UPG-compressed and GGUF block-quantized
// weights: picks the layout's kernel, keeps the repacked form of each compressed or
// block-quantized weight, quantizes activations once per call and splits rows over the
// threads by work.
#include <array>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "kernels/cpu/block-quant.h"
#include "kernels/cpu/int8-kernels.h"
#include "upg/kernels/backend.h"
#include "kernels/cpu/kernels.h"

namespace upg::kernels {

class Int8Linear {
 public:
  // How a compressed matrix executes on the current target (form_for, below).
  enum class Form { InPlace, Tiles16, Nm24Rows16, Nm24, Dense4, DenseF16, Bitmap, BlockQuant, Nm24Int4 };
  Int8Linear(ThreadPool& pool, CpuKernels kernels) : pool_(pool), kernels_(kernels) {
    cuts_.reserve(size_t(pool.size()) + 1);
    split_ys_.reserve(8);
  }
  // Whether matmul() runs this weight (int8, compressed or GGUF block-quantized).
  static bool handles(const LinearWeight& w) {
    return w.compressed || w.dtype == DType::I8 || dtype_is_quantized(w.dtype);
  }
  // Repacks the compressed and block-quantized weights among these into their execution
  // forms, and on AVX2 the dense int8 ones into DenseRows4, spread over the pool's threads.
  void prepare(std::span<const LinearWeight* const> weights);
  // Whether prepare (or a first matmul) copies w into a form that matmul reads instead
  // of w.data: the GGUF block-quantized weights, on the fast kernels.
  bool repacks(const LinearWeight& w) const {
    return kernels_ == CpuKernels::Fast && !w.compressed && dtype_is_quantized(w.dtype);
  }
  // Backend::set_source_unused: called with a weight's bytes once repacks() has them
  // copied (before that, pack_block pages them in).
  void set_source_unused(Backend::SourceUnused f) { source_unused_ = std::move(f); }
  // y[n_tokens, rows] = x W^T (+ bias) for a weight handles() accepts.
  void matmul(const LinearWeight& w, const float* x, int64_t n_tokens, float* y);
  // ys[i] = x ws[i]^T (+ bias) for weights handles() accepts, all with x's columns: x is
  // quantized once, and every weight's rows are split over the threads in one parallel
  // region (Backend::matmul_same_input).
  void matmul_same_input(std::span<const LinearWeight* const> ws, const float* x, int64_t n_tokens,
                         std::span<float* const> ys);
  // Backend::set_decode_rows: from now on the first n tokens of a call run through the
  // decode kernels and the rest through the prefill ones (TokenClass), so that a token's
  // result depends on its class alone; -1 picks by each call's size again.
  void set_decode_rows(int64_t n) { decode_rows_ = n; }

 private:
  struct Packed;
  // The execution form of a compressed matrix, built on first sight: 16-row bitmap tiles
  // (any layout) where the target has a kernel for them (AVX-512), but 2:4 int8 in
  // Nm24Rows16 (pair codes, 5% fewer bytes) where it has that one. On AVX2, 2:4 in the
  // gather form, other int8 layouts decoded to dense int8 rows (DenseRows4), prime and
  // codebook to dense fp16 rows (the float matmul). On the scalar target MdCSR in bitmap
  // windows, N:M in the file's layout.
  static Form form_for(const format::CompressedMatrix& m);
  const Packed& packed_of(const format::CompressedMatrix& m);
  const Packed* packed(const format::CompressedMatrix& m) const;  // null when absent or stale
  void reference(const LinearWeight& w, const float* x, int64_t n_tokens, float* y);
  void prepare_dense(std::span<const LinearWeight* const> weights);
  // Packs, spread over the pool, every weight among `weights` that `wanted` accepts and
  // `map` does not hold yet (one per distinct data pointer), into map[data].
  template <class Map, class Wanted, class Pack>
  void pack_missing(std::span<const LinearWeight* const> weights, Map& map, Wanted&& wanted, Pack&& pack);
  static void check(const LinearWeight& w);  // throws for a weight matmul cannot run

  // One weight's part of a call: its output, execution form and kernel. Units are rows,
  // or 16-row groups for Tiles16 and Nm24Rows16.
  struct Job {
    const LinearWeight* w;
    float* y;
    Form form;
    const Packed* packed;      // of a compressed weight in a repacked form
    const DenseRows4* dense4;  // dense int8 rows interleaved by 4 (AVX2)
    const BlockQuantRows* block;  // a GGUF block-quantized weight's execution form
    const float* sums;            // block_sums of the call's activations, for `block`
    int64_t units;
    uint64_t cost;            // cost_before(units), for the cuts
    bool float_acts() const;  // multiplies fp32 activations, not int8 ones
    bool grouped() const { return form == Form::Tiles16 || form == Form::Nm24Rows16; }  // units are 16-row groups
    uint64_t cost_before(int64_t unit) const;
    void run(const Int8Kernels& k, const QuantizedActs& a, const float* x, int64_t n_tokens, int64_t u0,
             int64_t u1) const;
  };
  Job job_for(const LinearWeight& w, float* y);
  // matmul_same_input's work for tokens of one class.
  void run_class(std::span<const LinearWeight* const> ws, const float* x, int64_t n_tokens,
                 std::span<float* const> ys, TokenClass token_class);
  // Quantizes x once and runs every job's units, split by cost over the pool's threads.
  void run_jobs(std::span<Job> jobs, const float* x, int64_t n_tokens, TokenClass token_class);
  struct Cut {  // where a thread's range of a call's units starts
    size_t job;
    int64_t unit;
  };

  ThreadPool& pool_;
  CpuKernels kernels_;
  // What a matrix looked like when packed, to notice a different matrix at a reused
  // address (a slice shares its parent's arrays but not its row pointers).
  struct Identity {
    const void* values;
    const void* row_pointers;
    int64_t rows, cols;
    bool operator==(const Identity&) const = default;
  };
  static Identity identity(const format::CompressedMatrix& m);
  struct Packed {
    Identity id;
    Form form;  // which one of the members below holds the matrix
    BitmapMatrix bitmap;
    BitmapRows16 bitmap16;
    Nm24Rows16 nm24x16;
    Nm24Rows nm24;
    DenseRows4 dense4;
    DenseF16Rows f16;
    BlockQuantRows block;  // int4 (dense, or N:M expanded)
    // 2:4 int4: the positions in the target's order (Int8Kernels::nm24_int4_pack), the
    // rest read from the file; packed says whether the target had a pack.
    std::vector<uint8_t> nm24_positions;
    bool nm24_packed = false;
  };
  static void pack_into(const format::CompressedMatrix& m, Packed& p);
  std::unordered_map<const format::CompressedMatrix*, Packed> packed_;
  // Dense int8 weights in DenseRows4, by their data, for targets with a kernel for it
  // (AVX2). Built by prepare() only: a weight it has not seen runs in place.
  struct DensePacked {
    const float* scales;
    int64_t rows, cols;
    DenseRows4 m;
  };
  std::unordered_map<const void*, DensePacked> dense_packed_;
  const DenseRows4* dense_packed(const LinearWeight& w) const;
  // GGUF block-quantized weights in BlockQuantRows (which records the type and shape it
  // was packed from), by their data; built by prepare(), or on first use.
  std::unordered_map<const void*, BlockQuantRows> block_packed_;
  const BlockQuantRows* block_packed(const LinearWeight& w) const;
  void prepare_blocks(std::span<const LinearWeight* const> weights);
  BlockQuantRows pack_block(const LinearWeight& w) const;
  Backend::SourceUnused source_unused_;
  // block_sums of a call per sub-block size (GGUF 16 and 32, int4 groups 32 to 128), reused.
  static constexpr std::array<int, 4> kBlockSubs = {16, 32, 64, 128};
  std::array<std::vector<float>, 4> block_sums_;
  QuantizedActs acts_;                          // reused by every call: no allocation per token
  std::vector<Job> jobs_;                       // likewise
  std::vector<Cut> cuts_;                       // [threads + 1], likewise
  std::vector<float*> split_ys_;                // the outputs' prefill rows, likewise
  int64_t decode_rows_ = -1;                    // set_decode_rows
  std::vector<std::vector<float>> ref_scratch_; // [threads] reference-kernel outputs
};

}  // namespace upg::kernels
