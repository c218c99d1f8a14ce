#pragma once
// Dense int8 weights as UPG files and the compressed-tensors reader store them: "W.qweight"
// I8 [rows, cols] with "W.scales" F32 [rows], W[r, c] = scales[r] * qweight[r, c]. The
// pairing rule that `upg inspect`, `upg decompress` and the compressed-tensors writer share.
#include <string>
#include <string_view>

#include "upg/core/tensor.h"

namespace upg::io {

inline constexpr std::string_view kQweightSuffix = ".qweight", kScalesSuffix = ".scales";

// The scales of `t` when it is the codes of a dense int8 weight, else null.
const TensorView* dense_int8_scales(const WeightStore& w, const TensorView& t);
// Whether `name` is the scales of a dense int8 weight (shown and written with it).
bool is_dense_int8_scales(const WeightStore& w, std::string_view name);
// "W.qweight" -> "W".
std::string dense_int8_weight_name(std::string_view qweight_name);

}  // namespace upg::io
