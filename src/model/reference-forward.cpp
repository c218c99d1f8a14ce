#include "model/reference-forward.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "upg/core/error.h"
#include "upg/format/format.h"

namespace upg {

namespace {

// Reads row r of a weight into fp32: the only place the reference touches encodings.
void load_row(const LinearWeight& w, int64_t r, float* out) {
  if (w.compressed) return format::decode_row(*w.compressed, r, out);
  if (w.dtype == DType::I8) {
    const int8_t* q = static_cast<const int8_t*>(w.data) + r * w.cols;
    for (int64_t c = 0; c < w.cols; ++c) out[c] = w.scales[r] * float(q[c]);
    return;
  }
  convert_to_f32(w.dtype, static_cast<const std::byte*>(w.data) + dtype_bytes(w.dtype, r * w.cols), out, w.cols);
}

void matvec(const LinearWeight& w, const float* x, float* y, float* row) {
  for (int64_t r = 0; r < w.rows; ++r) {
    load_row(w, r, row);
    double acc = 0;
    for (int64_t c = 0; c < w.cols; ++c) acc += double(row[c]) * double(x[c]);
    y[r] = float(acc) + (w.bias ? w.bias[r] : 0.0f);
  }
}

void rmsnorm(float* out, const float* x, const float* weight, int n, float eps) {
  double ss = 0;
  for (int i = 0; i < n; ++i) ss += double(x[i]) * double(x[i]);
  const float inv = float(1.0 / std::sqrt(ss / n + double(eps)));
  for (int i = 0; i < n; ++i) out[i] = weight[i] * (x[i] * inv);
}

// RoPE on the first rotary_dim dims of one head: rotate-half, or adjacent pairs.
void rope_head(float* v, const RopeTable& rope, int pos) {
  const int half = rope.rotary_dim / 2;
  const float* c = rope.cos + size_t(pos) * half;
  const float* s = rope.sin + size_t(pos) * half;
  for (int i = 0; i < half; ++i) {
    float& a = rope.interleaved ? v[2 * i] : v[i];
    float& b = rope.interleaved ? v[2 * i + 1] : v[i + half];
    const float a0 = a, b0 = b;
    a = a0 * c[i] - b0 * s[i];
    b = b0 * c[i] + a0 * s[i];
  }
}

}  // namespace

ReferenceForward::ReferenceForward(const ModelConfig& cfg, const ModelWeights& w, int context_length)
    : cfg_(cfg), w_(w), ctx_(context_length), rope_(build_rope(cfg, context_length)) {
  const size_t hidden = size_t(cfg.hidden_size), qd = size_t(cfg.num_heads) * cfg.head_dim,
               kvd = size_t(cfg.num_kv_heads) * cfg.head_dim, inter = size_t(cfg.intermediate_size);
  x_.resize(hidden);
  xb_.resize(hidden);
  q_.resize(qd);
  att_out_.resize(qd);
  tmp_.resize(hidden);
  hb_.resize(inter);
  hb2_.resize(inter);
  att_.resize(size_t(ctx_));
  key_cache_.resize(size_t(cfg.num_layers) * ctx_ * kvd);
  value_cache_.resize(key_cache_.size());
  row_.resize(std::max({hidden, inter, qd}));
  logits_.resize(size_t(cfg.vocab_size));
}

const std::vector<float>& ReferenceForward::step(int token, int pos) {
  const ModelConfig& c = cfg_;
  if (pos < 0 || pos >= ctx_) throw Error(fmt::format("position {} outside the context of {}", pos, ctx_));
  if (token < 0 || token >= c.vocab_size) throw Error(fmt::format("token id {} outside the vocabulary", token));
  const int hidden = c.hidden_size, hd = c.head_dim, kvd = c.num_kv_heads * hd;
  const int group = c.num_heads / c.num_kv_heads;

  load_row(w_.embed, token, x_.data());
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& lw = w_.layers[size_t(l)];
    float* kc = key_cache_.data() + (size_t(l) * ctx_ + pos) * kvd;
    float* vc = value_cache_.data() + (size_t(l) * ctx_ + pos) * kvd;

    rmsnorm(xb_.data(), x_.data(), lw.attn_norm, hidden, c.rms_norm_eps);
    matvec(lw.q, xb_.data(), q_.data(), row_.data());
    matvec(lw.k, xb_.data(), kc, row_.data());
    matvec(lw.v, xb_.data(), vc, row_.data());
    for (int h = 0; h < c.num_heads; ++h) rope_head(q_.data() + h * hd, rope_.table, pos);
    for (int h = 0; h < c.num_kv_heads; ++h) rope_head(kc + h * hd, rope_.table, pos);

    const int start = c.sliding_window > 0 ? std::max(0, pos - c.sliding_window + 1) : 0;
    const float scale = 1.0f / std::sqrt(float(hd));
    for (int h = 0; h < c.num_heads; ++h) {
      const float* qh = q_.data() + h * hd;
      const int kvh = h / group;
      float mx = -INFINITY;
      for (int t = start; t <= pos; ++t) {
        const float* k = key_cache_.data() + (size_t(l) * ctx_ + t) * kvd + kvh * hd;
        double s = 0;
        for (int i = 0; i < hd; ++i) s += double(qh[i]) * double(k[i]);
        att_[size_t(t)] = float(s) * scale;
        mx = std::max(mx, att_[size_t(t)]);
      }
      double sum = 0;
      for (int t = start; t <= pos; ++t) sum += (att_[size_t(t)] = std::exp(att_[size_t(t)] - mx));
      float* out = att_out_.data() + h * hd;
      for (int i = 0; i < hd; ++i) out[i] = 0;
      for (int t = start; t <= pos; ++t) {
        const float a = float(att_[size_t(t)] / sum);
        const float* v = value_cache_.data() + (size_t(l) * ctx_ + t) * kvd + kvh * hd;
        for (int i = 0; i < hd; ++i) out[i] += a * v[i];
      }
    }
    matvec(lw.o, att_out_.data(), tmp_.data(), row_.data());
    for (int i = 0; i < hidden; ++i) x_[size_t(i)] += tmp_[size_t(i)];

    rmsnorm(xb_.data(), x_.data(), lw.mlp_norm, hidden, c.rms_norm_eps);
    matvec(lw.gate, xb_.data(), hb_.data(), row_.data());
    matvec(lw.up, xb_.data(), hb2_.data(), row_.data());
    for (int i = 0; i < c.intermediate_size; ++i) {
      const float g = hb_[size_t(i)];
      hb_[size_t(i)] = g / (1.0f + std::exp(-g)) * hb2_[size_t(i)];
    }
    matvec(lw.down, hb_.data(), tmp_.data(), row_.data());
    for (int i = 0; i < hidden; ++i) x_[size_t(i)] += tmp_[size_t(i)];
  }
  rmsnorm(x_.data(), x_.data(), w_.final_norm, hidden, c.rms_norm_eps);
  matvec(w_.lm_head, x_.data(), logits_.data(), row_.data());
  return logits_;
}

}  // namespace upg
