// Hand-written: the block layouts of ggml's quant types have no library here (ggml itself
// is what we are measured against, and gguf-py is Python). Each unpack_* reads one block
// the way ggml's dequantize_row_* does and writes codes in element order.
#include "upg/format/ggml-blocks.h"

#include <cstring>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg::format {

const uint8_t kIq4Lut[16] = {1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241};

namespace {

inline float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

// Q4_0 { f16 d; u8 qs[16] } and IQ4_NL (same bytes, codes through the table): low nibbles
// are elements 0-15, high nibbles 16-31.
void unpack_nibbles32(const uint8_t* qs, uint8_t* codes) {
  for (int j = 0; j < 16; ++j) {
    codes[j] = qs[j] & 0x0F;
    codes[j + 16] = qs[j] >> 4;
  }
}

// Q5_0/Q5_1: the fifth bit of element j is bit j of qh.
void unpack_five32(const uint8_t* qh_bytes, const uint8_t* qs, uint8_t* codes) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  for (int j = 0; j < 16; ++j) {
    codes[j] = uint8_t((qs[j] & 0x0F) | (((qh >> j) & 1) << 4));
    codes[j + 16] = uint8_t((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
  }
}

// The 12 scale bytes of Q4_K/Q5_K pack eight 6-bit scales and eight 6-bit mins.
inline void scale_min_k4(int j, const uint8_t* q, uint8_t& d, uint8_t& m) {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] } and Q5_K (plus u8 qh[32] before qs):
// sub-block pairs share 32 bytes of qs, the first its low nibbles, the second its high.
void unpack_k45(const uint8_t* x, bool five, uint8_t* codes, float* d, float* m) {
  const float dd = half_at(x), dmin = half_at(x + 2);
  const uint8_t* scales = x + 4;
  const uint8_t* qh = x + 16;
  const uint8_t* q = x + (five ? 48 : 16);
  for (int p = 0; p < 4; ++p, q += 32) {
    for (int h = 0; h < 2; ++h) {
      const int s = 2 * p + h;
      uint8_t sc, mn;
      scale_min_k4(s, scales, sc, mn);
      d[s] = dd * float(sc);
      m[s] = -dmin * float(mn);
      for (int l = 0; l < 32; ++l) {
        uint8_t c = h == 0 ? (q[l] & 0x0F) : (q[l] >> 4);
        if (five) c |= uint8_t(((qh[l] >> s) & 1) << 4);
        codes[32 * s + l] = c;
      }
    }
  }
}

// Q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }: per 128 elements, 64 bytes of ql
// and 32 of qh; four 32-element quarters take ql's low/high nibbles of its two halves and
// 2 bits each of qh.
void unpack_q6_k(const uint8_t* x, uint8_t* codes, float* d) {
  const float dd = half_at(x + 208);
  const auto* sc = reinterpret_cast<const int8_t*>(x + 192);
  for (int s = 0; s < 16; ++s) d[s] = dd * float(sc[s]);
  const uint8_t* ql = x;
  const uint8_t* qh = x + 128;
  for (int n = 0; n < 256; n += 128, ql += 64, qh += 32) {
    for (int l = 0; l < 32; ++l) {
      codes[n + l] = uint8_t((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4));
      codes[n + l + 32] = uint8_t((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4));
      codes[n + l + 64] = uint8_t((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
      codes[n + l + 96] = uint8_t((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
    }
  }
}

// Q2_K { u8 scales[16]; u8 qs[64]; f16 d; f16 dmin }: per 128 elements, 32 bytes of qs
// hold four 2-bit planes; each plane is two 16-element sub-blocks.
void unpack_q2_k(const uint8_t* x, uint8_t* codes, float* d, float* m) {
  const uint8_t* scales = x;
  const float dd = half_at(x + 80), dmin = half_at(x + 82);
  for (int s = 0; s < 16; ++s) {
    d[s] = dd * float(scales[s] & 0xF);
    m[s] = -dmin * float(scales[s] >> 4);
  }
  const uint8_t* q = x + 16;
  int e = 0;
  for (int n = 0; n < 256; n += 128, q += 32)
    for (int shift = 0; shift < 8; shift += 2)
      for (int l = 0; l < 32; ++l) codes[e++] = (q[l] >> shift) & 3;
}

// Q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d }: Q2_K's planes plus a high bit
// from hmask (set: +4), sixteen 6-bit scales biased by 32.
void unpack_q3_k(const uint8_t* x, uint8_t* codes, float* d) {
  const uint8_t* hm = x;
  const uint8_t* q = x + 32;
  const float dd = half_at(x + 108);
  uint32_t aux[4];
  std::memcpy(aux, x + 96, 12);
  constexpr uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
  const uint32_t tmp = aux[2];
  aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
  aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
  aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
  aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
  uint8_t sc[16];
  std::memcpy(sc, aux, 16);
  for (int s = 0; s < 16; ++s) d[s] = dd * float(int(sc[s]) - 32);
  int e = 0;
  uint8_t bit = 1;
  for (int n = 0; n < 256; n += 128, q += 32)
    for (int shift = 0; shift < 8; shift += 2, bit <<= 1)
      for (int l = 0; l < 32; ++l, ++e) codes[e] = uint8_t(((q[l] >> shift) & 3) | ((hm[l] & bit) ? 4 : 0));
}

// IQ4_XS { f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128] }: eight 32-element sub-blocks
// of IQ4_NL nibbles, each with a 6-bit scale biased by 32.
void unpack_iq4_xs(const uint8_t* x, uint8_t* codes, float* d) {
  const float dd = half_at(x);
  uint16_t scales_h;
  std::memcpy(&scales_h, x + 2, 2);
  const uint8_t* scales_l = x + 4;
  const uint8_t* qs = x + 8;
  for (int ib = 0; ib < 8; ++ib, qs += 16) {
    const int ls = ((scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((scales_h >> (2 * ib)) & 3) << 4);
    d[ib] = dd * float(ls - 32);
    unpack_nibbles32(qs, codes + 32 * ib);
  }
}

}  // namespace

GgmlBlockInfo ggml_block_info(DType t) {
  switch (t) {
    case DType::Q4_0: return {32, 32, 4, false, false, -8};
    case DType::Q4_1: return {32, 32, 4, false, true, 0};
    case DType::Q5_0: return {32, 32, 5, false, false, -16};
    case DType::Q5_1: return {32, 32, 5, false, true, 0};
    case DType::Q8_0: return {32, 32, 8, false, false, -128};
    case DType::Q2_K: return {256, 16, 2, false, true, 0};
    case DType::Q3_K: return {256, 16, 3, false, false, -4};
    case DType::Q4_K: return {256, 32, 4, false, true, 0};
    case DType::Q5_K: return {256, 32, 5, false, true, 0};
    case DType::Q6_K: return {256, 16, 6, false, false, -32};
    case DType::IQ4_NL: return {32, 32, 4, true, false, -128};
    case DType::IQ4_XS: return {256, 32, 4, true, false, -128};
    default: throw Error(fmt::format("{} is not a block-quantized type", dtype_name(t)));
  }
}

namespace {

void unpack_codes_and_scales(DType t, const uint8_t* x, uint8_t* codes, float* d, float* m) {
  switch (t) {
    case DType::Q4_0:
    case DType::IQ4_NL:
      d[0] = half_at(x);
      unpack_nibbles32(x + 2, codes);
      return;
    case DType::Q4_1:
      d[0] = half_at(x);
      m[0] = half_at(x + 2);
      unpack_nibbles32(x + 4, codes);
      return;
    case DType::Q5_0:
      d[0] = half_at(x);
      unpack_five32(x + 2, x + 6, codes);
      return;
    case DType::Q5_1:
      d[0] = half_at(x);
      m[0] = half_at(x + 2);
      unpack_five32(x + 4, x + 8, codes);
      return;
    case DType::Q8_0:
      d[0] = half_at(x);
      for (int j = 0; j < 32; ++j) codes[j] = uint8_t(x[2 + j] ^ 0x80);  // int8 + 128
      return;
    case DType::Q2_K: return unpack_q2_k(x, codes, d, m);
    case DType::Q3_K: return unpack_q3_k(x, codes, d);
    case DType::Q4_K: return unpack_k45(x, false, codes, d, m);
    case DType::Q5_K: return unpack_k45(x, true, codes, d, m);
    case DType::Q6_K: return unpack_q6_k(x, codes, d);
    case DType::IQ4_XS: return unpack_iq4_xs(x, codes, d);
    default: throw Error(fmt::format("{} is not a block-quantized type", dtype_name(t)));
  }
}

}  // namespace

void unpack_ggml_block(DType t, const uint8_t* x, uint8_t* codes, float* d, float* m) {
  unpack_codes_and_scales(t, x, codes, d, m);
  const GgmlBlockInfo info = ggml_block_info(t);
  // Branch-free over the block's few scales: an exponent of all ones is Inf or NaN.
  uint32_t bad = 0;
  for (int s = 0; s < info.elems / info.sub; ++s)
    for (const float v : {d[s], info.has_min ? m[s] : 0.0f}) {
      uint32_t b;
      std::memcpy(&b, &v, 4);
      bad |= uint32_t((b & 0x7F800000u) == 0x7F800000u);
    }
  if (bad) throw Error("a NaN or infinite block scale");
}

void dequantize_ggml(DType t, const uint8_t* src, float* dst, int64_t n) {
  const GgmlBlockInfo info = ggml_block_info(t);
  const int64_t block_bytes = dtype_block_bytes(t);
  uint8_t codes[256];
  float d[16], m[16];
  for (int64_t b = 0; b < n / info.elems; ++b, src += block_bytes, dst += info.elems) {
    unpack_ggml_block(t, src, codes, d, m);
    for (int s = 0; s < info.elems / info.sub; ++s) {
      const float mm = info.has_min ? m[s] : float(info.offset) * d[s];
      for (int i = s * info.sub; i < (s + 1) * info.sub; ++i)
        dst[i] = d[s] * float(info.lut ? kIq4Lut[codes[i]] : codes[i]) + mm;
    }
  }
}

}  // namespace upg::format
