#include "kernels/cpu/linear-int8.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "upg/core/page-in.h"
#include "upg/format/ggml-blocks.h"
#include "upg/core/error.h"

namespace upg::kernels {

Int8Linear::Identity Int8Linear::identity(const format::CompressedMatrix& m) {
  if (format::is_grouped(m.encoding)) return {m.int4.codes.data(), m.int4.group_scales.data(), m.rows, m.cols};
  if (m.layout == format::Layout::NM) return {m.nm.values.data(), m.nm.positions.data(), m.rows, m.cols};
  const void* values = m.encoding == format::Encoding::Int8 ? static_cast<const void*>(m.mdcsr.values.data())
                                                            : static_cast<const void*>(m.mdcsr.prime_indices.data());
  return {values, m.mdcsr.row_pointers.data(), m.rows, m.cols};
}

Int8Linear::Form Int8Linear::form_for(const format::CompressedMatrix& m) {
  const Int8Kernels& k = int8_kernels();
  // Grouped values: 2:4 int4 in place where the target has a kernel for it; else as the
  // GGUF block forms run (4-bit nibbles, 3- and 2-bit planes; other N:M int4 expanded to
  // dense), on every target.
  if (format::is_grouped(m.encoding)) {
    const bool nm24 = m.layout == format::Layout::NM && m.nm.n == 2 && m.nm.m == 4;
    return nm24 && k.nm24_int4 ? Form::Nm24Int4 : Form::BlockQuant;
  }
  const bool nm24 = m.layout == format::Layout::NM && m.nm.n == 2 && m.nm.m == 4 && m.encoding == format::Encoding::Int8;
  if (k.nm24_rows16 && nm24) return Form::Nm24Rows16;
  if (k.bitmap_rows16) return Form::Tiles16;
  if (k.dense_rows4) {
    // AVX2 has no byte expand: 2:4 gathers its activations instead; any other int8
    // layout runs as dense int8, since expanding a bitmap by shuffles from a table was
    // slower than dense int8 even at 70% sparsity. Prime and codebook likewise run as
    // dense fp16, which beat expanding them from fp16 bitmap windows (docs/KERNELS.md,
    // "AVX2", has the measurements).
    if (m.encoding != format::Encoding::Int8) return Form::DenseF16;
    return nm24 ? Form::Nm24 : Form::Dense4;
  }
  return m.layout == format::Layout::MdCsr ? Form::Bitmap : Form::InPlace;
}

// The execution form of m: what Packed holds for its form.
void Int8Linear::pack_into(const format::CompressedMatrix& m, Packed& p) {
  const Form form = p.form;
  if (form == Form::BlockQuant) p.block = int4_block_form(m);
  else if (form == Form::Tiles16) p.bitmap16 = pack_bitmap_rows16(m);
  else if (form == Form::Nm24Rows16) p.nm24x16 = pack_nm24_rows16(m);
  else if (form == Form::Nm24) p.nm24 = pack_nm24(m);
  else if (form == Form::Dense4) p.dense4 = pack_dense_rows4(m);
  else if (form == Form::DenseF16) p.f16 = pack_dense_f16(m);
  else if (form == Form::Bitmap) p.bitmap = pack_bitmap(m);
  else if (form == Form::Nm24Int4 && int8_kernels().nm24_int4_pack) {
    p.nm24_positions = int8_kernels().nm24_int4_pack(m);
    p.nm24_packed = true;
  }
}

void Int8Linear::prepare(std::span<const LinearWeight* const> weights) {
  if (kernels_ != CpuKernels::Fast) return;
  prepare_dense(weights);
  prepare_blocks(weights);
  std::vector<const format::CompressedMatrix*> todo;
  for (const LinearWeight* w : weights) {
    const format::CompressedMatrix* m = w->compressed;
    if (m && form_for(*m) == Form::Nm24Int4) {  // read in place: paged in now, not by the first prompt
      page_in(m->int4.codes.data(), m->int4.codes.size_bytes());
      if (!int8_kernels().nm24_int4_pack) {
        page_in(m->nm.positions.data(), m->nm.positions.size_bytes());
        continue;
      }
    }
    if (!m || form_for(*m) == Form::InPlace) continue;
    if (packed(*m)) continue;
    if (std::find(todo.begin(), todo.end(), m) == todo.end()) todo.push_back(m);
  }
  // Whole matrices per thread; the map is filled afterwards, from this thread only.
  std::vector<Packed> done(todo.size());
  pool_.parallel_for(int64_t(todo.size()), [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const format::CompressedMatrix& m = *todo[size_t(i)];
      Packed& p = done[size_t(i)];
      p.id = identity(m);
      p.form = form_for(m);
      pack_into(m, p);
      // int4 codes are copied into the form whole (2:4 int4: its positions): the file's
      // pages go back at once, so resident memory stays about the file size while the
      // forms are built.
      if (source_unused_ && p.form == Form::Nm24Int4) source_unused_(m.nm.positions.data(), m.nm.positions.size_bytes());
      else if (source_unused_ && format::is_grouped(m.encoding))
        source_unused_(m.int4.codes.data(), m.int4.codes.size_bytes());
    }
  });
  for (size_t i = 0; i < todo.size(); ++i) packed_.insert_or_assign(todo[i], std::move(done[i]));
}

template <class Map, class Wanted, class Pack>
void Int8Linear::pack_missing(std::span<const LinearWeight* const> weights, Map& map, Wanted&& wanted, Pack&& pack) {
  std::vector<const LinearWeight*> todo;
  for (const LinearWeight* w : weights) {
    if (!wanted(*w)) continue;
    if (std::none_of(todo.begin(), todo.end(), [&](const LinearWeight* o) { return o->data == w->data; }))
      todo.push_back(w);
  }
  // Whole matrices per thread; the map is filled afterwards, from this thread only.
  std::vector<typename Map::mapped_type> done(todo.size());
  pool_.parallel_for(int64_t(todo.size()), [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) done[size_t(i)] = pack(*todo[size_t(i)]);
  });
  for (size_t i = 0; i < todo.size(); ++i) map.insert_or_assign(todo[i]->data, std::move(done[i]));
}

void Int8Linear::prepare_dense(std::span<const LinearWeight* const> weights) {
  if (!int8_kernels().dense_rows4) return;
  pack_missing(
      weights, dense_packed_,
      [&](const LinearWeight& w) { return !w.compressed && w.dtype == DType::I8 && w.scales && !dense_packed(w); },
      [](const LinearWeight& w) {
        return DensePacked{w.scales, w.rows, w.cols,
                           pack_dense_rows4(DenseI8{static_cast<const int8_t*>(w.data), w.scales, w.rows, w.cols})};
      });
}

// pack_block_quant's errors name the row and block; this names the weight. Its bytes
// are paged in and given back a part at a time: the source pages resident during the
// repack are a part per thread, not a whole weight (the tied embedding of the default
// model is 30 MB) beside the forms.
BlockQuantRows Int8Linear::pack_block(const LinearWeight& w) const {
  constexpr size_t kPart = size_t(1) << 20;
  const auto* data = static_cast<const std::byte*>(w.data);
  try {
    BlockQuantRows m = block_quant_form(w.dtype, w.rows, w.cols);
    const size_t row_bytes = dtype_bytes(w.dtype, w.cols);
    const int64_t part_rows = std::max<int64_t>(1, int64_t(kPart / std::max<size_t>(row_bytes, 1)));
    for (int64_t r = 0; r < w.rows; r += part_rows) {
      const int64_t r1 = std::min(w.rows, r + part_rows);
      const std::byte* part = data + size_t(r) * row_bytes;
      const size_t bytes = size_t(r1 - r) * row_bytes;
      page_in(part, bytes);
      pack_block_quant_rows(m, data, r, r1);
      if (source_unused_) source_unused_(part, bytes);
    }
    return m;
  } catch (const Error& e) {
    throw Error(fmt::format("'{}': {}", w.name, e.what()));
  }
}

void Int8Linear::prepare_blocks(std::span<const LinearWeight* const> weights) {
  pack_missing(
      weights, block_packed_,
      [&](const LinearWeight& w) { return !w.compressed && dtype_is_quantized(w.dtype) && !block_packed(w); },
      [&](const LinearWeight& w) { return pack_block(w); });
}

const BlockQuantRows* Int8Linear::block_packed(const LinearWeight& w) const {
  auto it = block_packed_.find(w.data);
  if (it == block_packed_.end()) return nullptr;
  const BlockQuantRows& m = it->second;
  return m.type == w.dtype && m.rows == w.rows && m.cols == w.cols ? &m : nullptr;
}

const DenseRows4* Int8Linear::dense_packed(const LinearWeight& w) const {
  if (!int8_kernels().dense_rows4) return nullptr;
  auto it = dense_packed_.find(w.data);
  if (it == dense_packed_.end()) return nullptr;
  const DensePacked& p = it->second;
  return p.scales == w.scales && p.rows == w.rows && p.cols == w.cols ? &p.m : nullptr;
}

const Int8Linear::Packed* Int8Linear::packed(const format::CompressedMatrix& m) const {
  auto it = packed_.find(&m);
  if (it == packed_.end() || !(it->second.id == identity(m))) return nullptr;
  // Packed while another target was in use (tests switch them).
  if (it->second.form != form_for(m)) return nullptr;
  if (it->second.form == Form::Nm24Int4 && it->second.nm24_packed != (int8_kernels().nm24_int4_pack != nullptr))
    return nullptr;
  return &it->second;
}

const Int8Linear::Packed& Int8Linear::packed_of(const format::CompressedMatrix& m) {
  if (const Packed* p = packed(m)) return *p;
  Packed p{identity(m), form_for(m), {}, {}, {}, {}, {}, {}, {}, {}, false};
  pack_into(m, p);
  return packed_.insert_or_assign(&m, std::move(p)).first->second;
}

void Int8Linear::check(const LinearWeight& w) {
  if (w.compressed && (w.compressed->rows != w.rows || w.compressed->cols != w.cols))
    throw Error(fmt::format("matmul: '{}' is bound as [{}, {}] but its compressed matrix is [{}, {}]", w.name, w.rows,
                            w.cols, w.compressed->rows, w.compressed->cols));
  if (!w.compressed && w.dtype == DType::I8 && !w.scales)
    throw Error(fmt::format("matmul: int8 weight '{}' has no scales", w.name));
}

Int8Linear::Job Int8Linear::job_for(const LinearWeight& w, float* y) {
  Job j{&w, y, Form::InPlace, nullptr, nullptr, nullptr, nullptr, w.rows, 0};
  if (dtype_is_quantized(w.dtype) && !w.compressed) {
    j.form = Form::BlockQuant;
    j.block = block_packed(w);
    if (!j.block)  // not prepared: pack on first use, as compressed weights are
      j.block = &block_packed_.insert_or_assign(w.data, pack_block(w)).first->second;
  } else if (const format::CompressedMatrix* m = w.compressed) {
    j.form = form_for(*m);
    if (j.form != Form::InPlace && (j.form != Form::Nm24Int4 || int8_kernels().nm24_int4_pack))
      j.packed = &packed_of(*m);
    if (j.form == Form::Tiles16) j.units = j.packed->bitmap16.groups;
    if (j.form == Form::Nm24Rows16) j.units = j.packed->nm24x16.groups;
    if (j.form == Form::Dense4) j.dense4 = &j.packed->dense4;
    if (j.form == Form::BlockQuant) j.block = &j.packed->block;
  } else {
    j.dense4 = dense_packed(w);
  }
  j.cost = j.cost_before(j.units);
  return j;
}

bool Int8Linear::Job::float_acts() const {
  return form == Form::DenseF16 || (form == Form::Bitmap && packed->bitmap.f16);
}

// Bytes the kernel streams before unit u: comparable across the jobs of one call, whose
// units are split over the threads together. Decode is bound by memory, so equal bytes
// are equal time; a bitmap row also pays a fixed amount per window.
uint64_t Int8Linear::Job::cost_before(int64_t u) const {
  const uint64_t n = uint64_t(u), cols = uint64_t(w->cols);
  switch (form) {
    case Form::Tiles16: {
      const BitmapRows16& b = packed->bitmap16;
      return b.group_start[size_t(u)] * (b.wide ? 2 : 1) + n * uint64_t(b.quads * 8 + 64);
    }
    case Form::Bitmap: {
      const BitmapMatrix& b = packed->bitmap;
      return b.row_start[size_t(u)] * (b.f16 ? 2 : 1) + n * uint64_t(b.windows * 8 + 64);
    }
    case Form::Nm24Rows16: return n * uint64_t(packed->nm24x16.blocks * kNm24RecordBytes);
    case Form::Nm24: return n * uint64_t(packed->nm24.windows) * (32 + kNm24CodeBytes);  // values + pair codes
    case Form::BlockQuant: return n * uint64_t(block->row_bytes() + block->subs * (block->has_min ? 4 : 2));
    case Form::Nm24Int4: return n * uint64_t(cols / 4 + cols / 8);  // codes and positions
    default: return n * cols;
  }
}

void Int8Linear::Job::run(const Int8Kernels& k, const QuantizedActs& a, const float* x, int64_t n_tokens, int64_t u0,
                          int64_t u1) const {
  const int64_t rows = w->rows;
  int64_t r0 = u0, r1 = u1;
  if (grouped()) {
    if (form == Form::Tiles16) k.bitmap_rows16(packed->bitmap16, a, u0, u1, y, rows);
    else k.nm24_rows16(packed->nm24x16, a, u0, u1, y, rows);
    r0 = 16 * u0;
    r1 = std::min(rows, 16 * u1);
  } else if (form == Form::Bitmap && packed->bitmap.f16) {
    k.bitmap_f16(packed->bitmap, x, n_tokens, r0, r1, y, rows);
  } else if (form == Form::Bitmap) {
    k.bitmap(packed->bitmap, a, r0, r1, y, rows);
  } else if (form == Form::Nm24) {
    k.nm24(packed->nm24, a, r0, r1, y, rows);
  } else if (form == Form::BlockQuant) {
    k.block_quant(*block, a, sums, r0, r1, y, rows);
  } else if (form == Form::Nm24Int4) {
    k.nm24_int4(*w->compressed, packed ? packed->nm24_positions.data() : nullptr, a, r0, r1, y, rows);
  } else if (dense4) {
    k.dense_rows4(*dense4, a, r0, r1, y, rows);
  } else if (w->compressed) {
    k.nm(*w->compressed, a, r0, r1, y, rows);
  } else {
    k.dense(DenseI8{static_cast<const int8_t*>(w->data), w->scales, w->rows, w->cols}, a, r0, r1, y, rows);
  }
  if (!w->bias) return;
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t r = r0; r < r1; ++r) y[t * rows + r] += w->bias[r];
}

void Int8Linear::run_jobs(std::span<Job> jobs, const float* x, int64_t n_tokens, TokenClass token_class) {
  // Prime and codebook bitmaps multiply fp32 activations; everything else int8 ones, which
  // every job of the call shares.
  if (std::any_of(jobs.begin(), jobs.end(), [](const Job& j) { return !j.float_acts(); }))
    quantize_acts(x, n_tokens, jobs[0].w->cols, acts_, &pool_, token_class);
  // The activation sums of block-quantized weights, once per sub-block size (the jobs
  // share x, so equal sub-blocks give equal sums).
  for (size_t i = 0; i < kBlockSubs.size(); ++i) {
    const int sub = kBlockSubs[i];
    auto uses = [&](const Job& j) { return j.block && j.block->sub == sub; };
    const auto first = std::find_if(jobs.begin(), jobs.end(), uses);
    if (first == jobs.end()) continue;
    std::vector<float>& sums = block_sums_[i];
    block_sums(acts_, sub, first->block->subs, sums);
    for (Job& j : jobs)
      if (uses(j)) j.sums = sums.data();
  }
  int64_t units = 0;
  uint64_t total = 0;
  for (const Job& j : jobs) {
    units += j.units;
    total += j.cost;
  }
  const int n = int(std::min<int64_t>(pool_.size(), units));
  if (n <= 1) {
    for (const Job& j : jobs) j.run(int8_kernels(), acts_, x, n_tokens, 0, j.units);
    return;
  }
  // The jobs' units in a row, cut into n ranges of about equal cost: cut i is the first
  // (job, unit) whose cost before it, in that order, reaches share i of the total,
  // rounded up to a whole group of 4 rows (the kernels' interleaved groups). One
  // parallel region runs them all. (Pieces taken in turn from a shared counter, 2 or 4
  // per thread, were measured and decoded no faster.)
  auto cut = [&](int i) -> Cut {
    if (i == n) return {jobs.size() - 1, jobs.back().units};
    const uint64_t target = uint64_t(double(total) * i / n);
    uint64_t before = 0;
    size_t j = 0;
    for (; j + 1 < jobs.size() && before + jobs[j].cost <= target; ++j) before += jobs[j].cost;
    int64_t lo = 0, hi = jobs[j].units;
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (before + jobs[j].cost_before(mid) < target) lo = mid + 1;
      else hi = mid;
    }
    if (!jobs[j].grouped()) lo = std::min(jobs[j].units, (lo + 3) / 4 * 4);
    return {j, lo};
  };
  cuts_.clear();  // capacity reserved in the constructor: no allocation
  for (int i = 0; i <= n; ++i) cuts_.push_back(cut(i));
  const Int8Kernels& k = int8_kernels();
  pool_.parallel_for(n, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const Cut a = cuts_[size_t(i)], b = cuts_[size_t(i) + 1];
      for (size_t j = a.job; j <= b.job; ++j) {
        const int64_t u0 = j == a.job ? a.unit : 0, u1 = j == b.job ? b.unit : jobs[j].units;
        if (u1 > u0) jobs[j].run(k, acts_, x, n_tokens, u0, u1);
      }
    }
  });
}

void Int8Linear::matmul(const LinearWeight& w, const float* x, int64_t n_tokens, float* y) {
  const LinearWeight* ws[] = {&w};
  float* ys[] = {y};
  matmul_same_input(ws, x, n_tokens, ys);
}

void Int8Linear::matmul_same_input(std::span<const LinearWeight* const> ws, const float* x, int64_t n_tokens,
                                   std::span<float* const> ys) {
  if (ws.size() != ys.size()) throw Error(fmt::format("matmul: {} weights but {} outputs", ws.size(), ys.size()));
  for (const LinearWeight* w : ws) {
    check(*w);
    if (w->cols != ws[0]->cols)
      throw Error(fmt::format("matmul: '{}' has {} columns but '{}', on the same input, has {}", w->name, w->cols,
                              ws[0]->name, ws[0]->cols));
  }
  if (kernels_ == CpuKernels::Reference) {
    for (size_t i = 0; i < ws.size(); ++i) reference(*ws[i], x, n_tokens, ys[i]);
    return;
  }
  if (decode_rows_ < 0) return run_class(ws, x, n_tokens, ys, TokenClass::ByCount);
  // Batch invariance: each class of tokens through its own kernels (TokenClass).
  const int64_t d = std::min(decode_rows_, n_tokens);
  if (d > 0) run_class(ws, x, d, ys, TokenClass::Decode);
  if (d == n_tokens) return;
  split_ys_.clear();  // capacity reserved in the constructor: no allocation per step
  for (size_t i = 0; i < ws.size(); ++i) split_ys_.push_back(ys[i] + d * ws[i]->rows);
  run_class(ws, x + d * ws[0]->cols, n_tokens - d, split_ys_, TokenClass::Prefill);
}

void Int8Linear::run_class(std::span<const LinearWeight* const> ws, const float* x, int64_t n_tokens,
                           std::span<float* const> ys, TokenClass token_class) {
  jobs_.clear();
  for (size_t i = 0; i < ws.size(); ++i) {
    const Job j = job_for(*ws[i], ys[i]);
    if (j.form != Form::DenseF16) {
      jobs_.push_back(j);
      continue;
    }
    // Prime and codebook on AVX2: the float matmul splits rows over the pool itself;
    // then each row's scale and bias.
    const DenseF16Rows& f = j.packed->f16;
    const int64_t rows = ws[i]->rows;
    float* y = ys[i];
    kernels::matmul(pool_, DType::F16, f.w.data(), rows, ws[i]->cols, x, n_tokens, y);
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t r = 0; r < rows; ++r)
        y[t * rows + r] = y[t * rows + r] * f.scales[size_t(r)] + (ws[i]->bias ? ws[i]->bias[r] : 0.0f);
  }
  if (!jobs_.empty()) run_jobs(jobs_, x, n_tokens, token_class);
}

// The plain kernels with fp32 activations: format::reference_matmul per row slice for
// compressed weights, a loop for dense int8. Each thread computes its own rows.
void Int8Linear::reference(const LinearWeight& w, const float* x, int64_t n_tokens, float* y) {
  const int64_t rows = w.rows, cols = w.cols;
  if (ref_scratch_.size() < size_t(pool_.size())) ref_scratch_.resize(size_t(pool_.size()));
  pool_.parallel_for(rows, [&](int64_t r0, int64_t r1, int thread) {
    const int64_t n = r1 - r0;
    const float* bias = w.bias ? w.bias + r0 : nullptr;
    if (w.compressed) {
      const format::CompressedMatrix part = format::slice_rows(*w.compressed, r0, n);
      // The slice's output has its own row stride: with several tokens it goes through
      // the thread's scratch and is scattered into y's rows.
      if (n_tokens == 1) return format::reference_matmul(part, x, 1, y + r0, bias);
      std::vector<float>& buf = ref_scratch_[size_t(thread)];
      if (buf.size() < size_t(n * n_tokens)) buf.resize(size_t(n * n_tokens));
      format::reference_matmul(part, x, n_tokens, buf.data(), bias);
      for (int64_t t = 0; t < n_tokens; ++t)
        std::memcpy(y + t * rows + r0, buf.data() + t * n, size_t(n) * sizeof(float));
      return;
    }
    if (dtype_is_quantized(w.dtype)) {
      // GGUF blocks: each row dequantized as the float path does, then a plain dot product.
      std::vector<float>& row = ref_scratch_[size_t(thread)];
      if (row.size() < size_t(cols)) row.resize(size_t(cols));
      const size_t row_bytes = dtype_bytes(w.dtype, cols);
      for (int64_t r = r0; r < r1; ++r) {
        format::dequantize_ggml(w.dtype, static_cast<const uint8_t*>(w.data) + size_t(r) * row_bytes, row.data(), cols);
        for (int64_t t = 0; t < n_tokens; ++t) {
          const float* xt = x + t * cols;
          double acc = 0;
          for (int64_t c = 0; c < cols; ++c) acc += double(row[size_t(c)]) * xt[c];
          y[t * rows + r] = float(acc) + (w.bias ? w.bias[r] : 0.0f);
        }
      }
      return;
    }
    const auto* W = static_cast<const int8_t*>(w.data);
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t t = 0; t < n_tokens; ++t) {
        const int8_t* wr = W + r * cols;
        const float* xt = x + t * cols;
        double acc = 0;
        for (int64_t c = 0; c < cols; ++c) acc += double(wr[c]) * xt[c];
        y[t * rows + r] = float(acc) * w.scales[r] + (w.bias ? w.bias[r] : 0.0f);
      }
  });
}

}  // namespace upg::kernels
