#include "kernels/cpu/linear-int8.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "upg/error.h"

namespace upg::kernels {

Int8Linear::Identity Int8Linear::identity(const format::CompressedMatrix& m) {
  if (m.layout == format::Layout::NM) return {m.nm.values.data(), m.nm.positions.data(), m.rows, m.cols};
  const void* values = m.encoding == format::Encoding::Int8 ? static_cast<const void*>(m.mdcsr.values.data())
                                                            : static_cast<const void*>(m.mdcsr.prime_indices.data());
  return {values, m.mdcsr.row_pointers.data(), m.rows, m.cols};
}

Int8Linear::Form Int8Linear::form_for(const format::CompressedMatrix& m) {
  const Int8Kernels& k = int8_kernels();
  if (k.bitmap_rows16) return Form::Tiles16;
  if (k.dense_rows4) {
    // AVX2 has no byte expand: 2:4 gathers its activations instead; any other int8
    // layout runs as dense int8, since expanding a bitmap by shuffles from a table ran at
    // 0.58-0.60x its speed at 50% and 70% alike (docs/KERNELS.md, "AVX2"). Prime and
    // codebook likewise run as dense fp16: expanded from fp16 bitmap windows they took
    // 3.2-3.6x the time of int8.
    if (m.encoding != format::Encoding::Int8) return Form::DenseF16;
    return m.layout == format::Layout::NM && m.nm.n == 2 && m.nm.m == 4 ? Form::Nm24 : Form::Dense4;
  }
  return m.layout == format::Layout::MdCsr ? Form::Bitmap : Form::InPlace;
}

// The execution form of m: what Packed holds for its form.
static void pack_into(const format::CompressedMatrix& m, Int8Linear::Form form, BitmapMatrix& bitmap,
                      BitmapRows16& bitmap16, Nm24Rows& nm24, DenseRows4& dense4, DenseF16Rows& f16) {
  using Form = Int8Linear::Form;
  if (form == Form::Tiles16) bitmap16 = pack_bitmap_rows16(m);
  else if (form == Form::Nm24) nm24 = pack_nm24(m);
  else if (form == Form::Dense4) dense4 = pack_dense_rows4(m);
  else if (form == Form::DenseF16) f16 = pack_dense_f16(m);
  else if (form == Form::Bitmap) bitmap = pack_bitmap(m);
}

void Int8Linear::prepare(std::span<const LinearWeight* const> weights) {
  if (kernels_ != CpuKernels::Fast) return;
  prepare_dense(weights);
  std::vector<const format::CompressedMatrix*> todo;
  for (const LinearWeight* w : weights) {
    const format::CompressedMatrix* m = w->compressed;
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
      pack_into(m, p.form, p.bitmap, p.bitmap16, p.nm24, p.dense4, p.f16);
    }
  });
  for (size_t i = 0; i < todo.size(); ++i) packed_.insert_or_assign(todo[i], std::move(done[i]));
}

void Int8Linear::prepare_dense(std::span<const LinearWeight* const> weights) {
  if (!int8_kernels().dense_rows4) return;
  std::vector<const LinearWeight*> todo;
  for (const LinearWeight* w : weights) {
    if (w->compressed || w->dtype != DType::I8 || !w->scales || dense_packed(*w)) continue;
    if (std::none_of(todo.begin(), todo.end(), [&](const LinearWeight* o) { return o->data == w->data; }))
      todo.push_back(w);
  }
  std::vector<DensePacked> done(todo.size());
  pool_.parallel_for(int64_t(todo.size()), [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const LinearWeight& w = *todo[size_t(i)];
      done[size_t(i)] = {w.scales, w.rows, w.cols,
                         pack_dense_rows4(DenseI8{static_cast<const int8_t*>(w.data), w.scales, w.rows, w.cols})};
    }
  });
  for (size_t i = 0; i < todo.size(); ++i) dense_packed_.insert_or_assign(todo[i]->data, std::move(done[i]));
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
  return &it->second;
}

const Int8Linear::Packed& Int8Linear::packed_of(const format::CompressedMatrix& m) {
  if (const Packed* p = packed(m)) return *p;
  Packed p{identity(m), form_for(m), {}, {}, {}, {}, {}};
  pack_into(m, p.form, p.bitmap, p.bitmap16, p.nm24, p.dense4, p.f16);
  return packed_.insert_or_assign(&m, std::move(p)).first->second;
}

template <class Cost, class Fn>
void Int8Linear::split_rows(int64_t rows, Cost&& cost_before, Fn&& fn) {
  const int n = int(std::min<int64_t>(pool_.size(), rows));
  if (n <= 1) return rows > 0 ? fn(int64_t{0}, rows) : void();
  const double total = double(cost_before(rows));
  // The first row whose preceding cost reaches share i of the total starts range i.
  auto cut = [&](int i) {
    if (i == 0) return int64_t{0};
    if (i == n) return rows;
    const double target = total * i / n;
    int64_t lo = 0, hi = rows;
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (double(cost_before(mid)) < target) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  pool_.parallel_for(n, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t r0 = cut(int(i)), r1 = cut(int(i) + 1);
      if (r1 > r0) fn(r0, r1);
    }
  });
}

void Int8Linear::matmul(const LinearWeight& w, const float* x, int64_t n_tokens, float* y) {
  if (w.compressed && (w.compressed->rows != w.rows || w.compressed->cols != w.cols))
    throw Error(fmt::format("matmul: '{}' is bound as [{}, {}] but its compressed matrix is [{}, {}]", w.name, w.rows,
                            w.cols, w.compressed->rows, w.compressed->cols));
  if (!w.compressed && !w.scales) throw Error(fmt::format("matmul: int8 weight '{}' has no scales", w.name));
  if (kernels_ == CpuKernels::Reference) return reference(w, x, n_tokens, y);

  const Int8Kernels& k = int8_kernels();
  const int64_t rows = w.rows;
  const format::CompressedMatrix* m = w.compressed;
  const Form form = m ? form_for(*m) : Form::InPlace;
  const Packed* p = form != Form::InPlace ? &packed_of(*m) : nullptr;
  const BitmapRows16* b16 = form == Form::Tiles16 ? &p->bitmap16 : nullptr;
  const BitmapMatrix* b = form == Form::Bitmap ? &p->bitmap : nullptr;
  const Nm24Rows* n24 = form == Form::Nm24 ? &p->nm24 : nullptr;
  const DenseRows4* d4 = form == Form::Dense4 ? &p->dense4 : m ? nullptr : dense_packed(w);
  if (form == Form::DenseF16) {
    // The float matmul splits rows over the pool itself; then each row's scale and bias.
    const DenseF16Rows& f = p->f16;
    kernels::matmul(pool_, DType::F16, f.w.data(), rows, w.cols, x, n_tokens, y);
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t r = 0; r < rows; ++r)
        y[t * rows + r] = y[t * rows + r] * f.scales[size_t(r)] + (w.bias ? w.bias[r] : 0.0f);
    return;
  }
  // Prime and codebook (fp16 bitmap) multiply fp32 activations; everything else int8 ones.
  if (!b || !b->f16) quantize_acts(x, n_tokens, w.cols, acts_, &pool_);
  // A bitmap row costs its values and its masks plus a fixed amount; rows of dense and
  // N:M matrices cost the same.
  auto cost_before = [&](int64_t r) -> uint64_t {
    if (!b) return uint64_t(r);
    return b->row_start[size_t(r)] * (b->f16 ? 2 : 1) + uint64_t(r) * uint64_t(b->windows * 8 + 64);
  };
  auto add_bias = [&](int64_t r0, int64_t r1) {
    if (!w.bias) return;
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t r = r0; r < r1; ++r) y[t * rows + r] += w.bias[r];
  };
  if (b16) {
    // Whole groups of 16 rows per thread, balanced by their values and masks.
    const uint64_t fixed = uint64_t(b16->quads * 8 + 64);
    return split_rows(
        b16->groups,
        [&](int64_t g) { return b16->group_start[size_t(g)] * (b16->wide ? 2 : 1) + uint64_t(g) * fixed; },
        [&](int64_t g0, int64_t g1) {
          k.bitmap_rows16(*b16, acts_, g0, g1, y, rows);
          add_bias(16 * g0, std::min(rows, 16 * g1));
        });
  }
  split_rows(rows, cost_before, [&](int64_t r0, int64_t r1) {
    if (b && b->f16) k.bitmap_f16(*b, x, n_tokens, r0, r1, y, rows);
    else if (b) k.bitmap(*b, acts_, r0, r1, y, rows);
    else if (n24) k.nm24(*n24, acts_, r0, r1, y, rows);
    else if (d4) k.dense_rows4(*d4, acts_, r0, r1, y, rows);
    else if (m) k.nm(*m, acts_, r0, r1, y, rows);
    else k.dense(DenseI8{static_cast<const int8_t*>(w.data), w.scales, w.rows, w.cols}, acts_, r0, r1, y, rows);
    add_bias(r0, r1);
  });
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
