#include "io/dense-int8.h"

namespace upg::io {

std::string dense_int8_weight_name(std::string_view qweight_name) {
  return std::string(qweight_name.substr(0, qweight_name.size() - kQweightSuffix.size()));
}

const TensorView* dense_int8_scales(const WeightStore& w, const TensorView& t) {
  if (t.dtype != DType::I8 || t.shape.size() != 2 || !t.name.ends_with(kQweightSuffix)) return nullptr;
  const TensorView* s = w.find(dense_int8_weight_name(t.name) + std::string(kScalesSuffix));
  if (!s || s->dtype != DType::F32 || s->numel() != t.shape[0]) return nullptr;
  return s;
}

bool is_dense_int8_scales(const WeightStore& w, std::string_view name) {
  if (!name.ends_with(kScalesSuffix)) return false;
  const std::string base(name.substr(0, name.size() - kScalesSuffix.size()));
  const TensorView* q = w.find(base + std::string(kQweightSuffix));
  return q && dense_int8_scales(w, *q);
}

}  // namespace upg::io
