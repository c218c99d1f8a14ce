#pragma once
// One rope rotation of the pair (a, b) by the angle whose cosine and sine are c and s,
// shared by rope_store (vector-ops.cu) and the attention launch that does its work for a
// decode step (attention.cu): the products and the sum rounded one at a time (no fused
// multiply-add the compiler may or may not choose), so both give the same bits.
namespace upg::cuda {

// The pair's first element after the rotation.
__device__ inline float rope_first(float a, float b, float c, float s) {
  return __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
}
// Its second.
__device__ inline float rope_second(float a, float b, float c, float s) {
  return __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
}

}  // namespace upg::cuda
