#include "compress/quantize.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <random>

#include <fmt/format.h>

#include "upg/core/error.h"
#include "upg/core/tensor.h"
#include "upg/format/primes.h"

namespace upg::compress {

using format::Encoding;

std::string ValueSpec::name() const {
  switch (encoding) {
    case Encoding::Int8: return "int8";
    case Encoding::Prime: return fmt::format("prime:{}", k);
    case Encoding::Codebook: return fmt::format("codebook:{}", k);
    case Encoding::Int4:
    case Encoding::Int3:
    case Encoding::Int2: return format::encoding_name(encoding);
  }
  return "?";
}

ValueSpec parse_values(std::string_view s, std::string_view origin) {
  if (s == "int8") return {};
  if (s == "int4") return {Encoding::Int4};
  if (s == "int3") return {Encoding::Int3};
  if (s == "int2") return {Encoding::Int2};
  const size_t colon = s.find(':');
  const std::string_view kind = s.substr(0, colon);
  ValueSpec v;
  if (kind == "prime") v.encoding = Encoding::Prime;
  else if (kind == "codebook") v.encoding = Encoding::Codebook;
  else
    throw Error(fmt::format("{}: '{}' is not a value encoding (expected int8, int4, int3, int2, prime:K or codebook:K)", origin, s));
  if (colon == std::string_view::npos)
    throw Error(fmt::format("{}: '{}' needs its size K, e.g. {}:256", origin, s, kind));
  const char* b = s.data() + colon + 1;
  const char* e = s.data() + s.size();
  auto r = std::from_chars(b, e, v.k);
  const int lo = v.encoding == Encoding::Prime ? 1 : 2;
  const int hi = v.encoding == Encoding::Prime ? kPrimeCount : int(format::kMaxCodebookSize);
  if (r.ec != std::errc() || r.ptr != e || v.k < lo || v.k > hi)
    throw Error(fmt::format("{}: '{}': K must be an integer in {}..{}", origin, s, lo, hi));
  return v;
}

QuantMethod parse_quant_method(std::string_view s, std::string_view origin) {
  if (s == "absmax") return QuantMethod::Absmax;
  if (s == "clip") return QuantMethod::Clip;
  throw Error(fmt::format("{}: '{}' is not a quantization method (expected absmax or clip)", origin, s));
}

const char* quant_method_name(QuantMethod q) { return q == QuantMethod::Clip ? "clip" : "absmax"; }

float dequantize(Encoding enc, int32_t code, float scale, std::span<const float> codebook) {
  switch (enc) {
    case Encoding::Int8: return scale * float(code);
    case Encoding::Prime: {
      const int index = code & format::kPrimeIndexMask;
      if (index == 0) return scale * 0.0f;
      const float p = float(nth_prime(index));
      return scale * ((code & format::kPrimeSignBit) ? -p : p);
    }
    case Encoding::Codebook: return scale * codebook[size_t(code)];
    case Encoding::Int4:
    case Encoding::Int3:
    case Encoding::Int2: break;  // group scales: int4_dequantize
  }
  throw Error(fmt::format("dequantize: encoding {} has no per-row scale", format::encoding_name(enc)));
}

float Int4Group::step() const { return fp16_to_fp32(scale); }

int int4_code(float w, const Int4Group& g) { return grid_code(w, int4_params(g), g.max_code()); }

float int4_dequantize(int code, const Int4Group& g) { return grid_value(code, int4_params(g)); }

GridParams int4_params(const Int4Group& g) { return {g.step(), g.zero}; }

Int4Group int4_stored(const GridParams& g, int bits) { return {fp32_to_fp16(g.scale), int(g.zero), bits}; }

std::span<const float> grouped_clip_ratios(int bits) {
  if (bits >= 4) return kInt4ClipRatios;
  return kLowBitClipRatios;
}

Int4Group int4_group(std::span<const float> v, bool zero_point, QuantMethod q, int bits) {
  float lo = 0, hi = 0;  // the range always holds 0, so a zero weight stays representable
  for (float x : v) {
    if (!std::isfinite(x)) throw Error("quantize: a weight is not finite");
    lo = std::min(lo, x), hi = std::max(hi, x);
  }
  const int half = format::grouped_default_zero(bits), top = (1 << bits) - 1;
  Int4Group best{0, half, bits};
  if (lo == 0.0f && hi == 0.0f) return best;
  double best_err = INFINITY;
  auto consider = [&](float scale, int zero) {
    // fp16 as stored (the largest finite fp16 bounds weights far beyond any model's).
    const Int4Group g{fp32_to_fp16(std::min(scale, 65504.0f)), zero, bits};
    // The step converted once, not twice a weight (the fp16 conversions were a tenth of
    // a GPTQ int4 run's time).
    const GridParams p = int4_params(g);
    const int top_code = g.max_code();
    double err = 0;
    for (float x : v) {
      const double d = double(x) - double(grid_value(grid_code(x, p, top_code), p));
      err += d * d;
    }
    if (err < best_err) best_err = err, best = g;
  };
  const std::span<const float> ratios = grouped_clip_ratios(bits);
  const size_t n_ratios = q == QuantMethod::Clip ? ratios.size() : 1;
  for (size_t i = 0; i < n_ratios; ++i) {
    const float r = ratios[i];
    if (zero_point) {
      const float scale = (hi - lo) * r / float(top);
      consider(scale, int(std::clamp(std::nearbyint(-lo * r / scale), 0.0f, float(top))));
    } else {
      // -Z reaches one step further than Z - 1: a negative extreme takes it.
      consider((-lo >= hi ? -lo / float(half) : hi / float(half - 1)) * r, half);
      consider(std::max(-lo, hi) / float(half - 1) * r, half);
    }
  }
  return best;
}

namespace {

// Largest |v|; NaN or inf when any value is not finite (std::max would skip a NaN).
float absmax(std::span<const float> v) {
  float a = 0;
  for (float x : v) {
    if (!std::isfinite(x)) return NAN;
    a = std::max(a, std::fabs(x));
  }
  return a;
}

// sign | index of the nearest value among {0, the first k primes} to |x| / scale.
int32_t prime_code(float x, float scale, int k) {
  const float mag = std::fabs(x) / scale;
  int index = nearest_prime_index(mag, k);
  if (index == 1 && mag <= 1.0f) index = 0;  // nearer to 0 than to 2 (ties to 0, the lower)
  if (index == 0) return 0;
  return index | (x < 0 ? format::kPrimeSignBit : 0);
}

// Tries each clip ratio (or only 1.0 for absmax), keeping the scale with the least
// squared error; a later ratio must be strictly better, so ties keep the wider range.
template <class CodeFn>
float search_scale(std::span<const float> v, float top, QuantMethod q, Encoding enc, CodeFn code,
                   std::vector<int32_t>& codes) {
  codes.assign(v.size(), 0);
  const float amax = absmax(v);
  if (amax == 0.0f || !std::isfinite(amax)) {
    if (!std::isfinite(amax)) throw Error("quantize: a weight is not finite");
    return 0.0f;
  }
  float best_scale = 0;
  double best_err = INFINITY;
  std::vector<int32_t> trial(v.size());
  const size_t n_ratios = q == QuantMethod::Clip ? std::size(kClipRatios) : 1;
  for (size_t i = 0; i < n_ratios; ++i) {
    const float scale = amax * kClipRatios[i] / top;
    double err = 0;
    for (size_t j = 0; j < v.size(); ++j) {
      trial[j] = code(v[j], scale);
      const double d = double(v[j]) - double(dequantize(enc, trial[j], scale, {}));
      err += d * d;
    }
    if (err < best_err) {
      best_err = err;
      best_scale = scale;
      codes.swap(trial);
      trial.resize(v.size());
    }
  }
  return best_scale;
}

}  // namespace

int32_t int8_code(float x, float scale) {
  return int32_t(std::clamp(std::nearbyint(x / scale), -127.0f, 127.0f));
}

float quantize_int8(std::span<const float> v, QuantMethod q, std::vector<int32_t>& codes) {
  return search_scale(v, 127.0f, q, Encoding::Int8, int8_code, codes);
}

float quantize_prime(std::span<const float> v, int k, QuantMethod q, std::vector<int32_t>& codes) {
  if (k < 1 || k > kPrimeCount) throw Error(fmt::format("quantize: prime:{} outside 1..{}", k, kPrimeCount));
  return search_scale(v, float(nth_prime(k)), q, Encoding::Prime,
                      [k](float x, float scale) { return prime_code(x, scale, k); }, codes);
}

namespace {
// Index of the entry of codebook (0 at [0], the rest ascending) nearest to x; lower index
// on ties.
int32_t nearest_code(float x, std::span<const float> cb) {
  const auto rest = cb.subspan(1);
  auto it = std::lower_bound(rest.begin(), rest.end(), x);
  int32_t best = 0;
  float best_d = std::fabs(x);
  auto consider = [&](int32_t idx) {
    const float d = std::fabs(x - cb[size_t(idx)]);
    if (d < best_d || (d == best_d && idx < best)) best = idx, best_d = d;
  };
  if (it != rest.end()) consider(int32_t(it - rest.begin()) + 1);
  if (it != rest.begin()) consider(int32_t(it - rest.begin()));
  return best;
}
}  // namespace

float quantize_codebook(std::span<const float> v, std::span<const float> codebook, std::vector<int32_t>& codes) {
  if (codebook.empty() || codebook[0] != 0.0f) throw Error("quantize: codebook[0] must be 0");
  codes.assign(v.size(), 0);
  const float scale = absmax(v);
  if (!std::isfinite(scale)) throw Error("quantize: a weight is not finite");
  if (scale == 0.0f) return 0.0f;
  for (size_t j = 0; j < v.size(); ++j) codes[j] = nearest_code(v[j] / scale, codebook);
  return scale;
}

std::vector<float> train_codebook(std::span<const float> normalized, int k, uint64_t seed, int iters,
                                  size_t max_samples) {
  if (k < 2 || k > format::kMaxCodebookSize)
    throw Error(fmt::format("codebook: K = {} outside 2..{}", k, format::kMaxCodebookSize));
  std::vector<float> xs;
  if (normalized.size() <= max_samples) {
    xs.assign(normalized.begin(), normalized.end());
  } else {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<size_t> pick(0, normalized.size() - 1);
    xs.resize(max_samples);
    for (float& x : xs) x = normalized[pick(rng)];
  }
  std::sort(xs.begin(), xs.end());
  const size_t free = size_t(k) - 1;  // learned entries; the zero entry stays fixed
  std::vector<float> c(free, 0.0f);
  if (!xs.empty())
    for (size_t i = 0; i < free; ++i) c[i] = xs[std::min(xs.size() - 1, (2 * i + 1) * xs.size() / (2 * free))];

  // Lloyd in 1-D: with centroids ascending, each one owns a contiguous run of the sorted
  // samples between the midpoints to its neighbours, so one sweep assigns everything.
  // The fixed 0 entry takes part in the assignment: values near 0 are not pulled into a
  // learned centroid they do not need.
  std::vector<double> sum(free);
  std::vector<size_t> cnt(free);
  for (int it = 0; it < iters && !xs.empty(); ++it) {
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(cnt.begin(), cnt.end(), 0);
    for (float x : xs) {
      auto pos = std::lower_bound(c.begin(), c.end(), x);
      size_t best = SIZE_MAX;  // SIZE_MAX: the zero entry
      float best_d = std::fabs(x);
      if (pos != c.end() && std::fabs(*pos - x) < best_d) best = size_t(pos - c.begin()), best_d = std::fabs(*pos - x);
      if (pos != c.begin() && std::fabs(*(pos - 1) - x) < best_d) best = size_t(pos - c.begin()) - 1;
      if (best == SIZE_MAX) continue;
      sum[best] += x;
      ++cnt[best];
    }
    for (size_t i = 0; i < free; ++i)
      if (cnt[i]) c[i] = float(sum[i] / double(cnt[i]));
    std::sort(c.begin(), c.end());
  }
  std::vector<float> cb;
  cb.reserve(size_t(k));
  cb.push_back(0.0f);
  cb.insert(cb.end(), c.begin(), c.end());
  return cb;
}

}  // namespace upg::compress
