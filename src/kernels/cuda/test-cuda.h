#pragma once
// Shared by the CUDA tests: skip (with the reason) where no CUDA device is present, move
// vectors in and out of a backend's memory, random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "upg/kernels/backend.h"
#include "upg/kernels_cuda/cuda.h"

#define UPG_SKIP_WITHOUT_CUDA()                                                     \
  do {                                                                              \
    std::string upg_why_;                                                           \
    if (!::upg::cuda_available(&upg_why_)) GTEST_SKIP() << "GPU test: " << upg_why_; \
  } while (0)

namespace upg::test {

// n values drawn from normal(0, std).
inline std::vector<float> normal(std::mt19937& rng, size_t n, float std = 1.0f) {
  std::normal_distribution<float> g(0.0f, std);
  std::vector<float> v(n);
  for (auto& x : v) x = g(rng);
  return v;
}

template <class T>
BackendBuffer to_backend(Backend& be, const std::vector<T>& v) {
  BackendBuffer b = be.alloc(v.size() * sizeof(T));
  be.upload(b.data(), v.data(), v.size() * sizeof(T));
  return b;
}

template <class T>
std::vector<T> from_backend(Backend& be, const BackendBuffer& b, size_t n) {
  std::vector<T> v(n);
  be.download(v.data(), b.data(), n * sizeof(T));
  return v;
}

// ||got - want|| / ||want||; NaN anywhere gives infinity, so it never passes.
inline double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace upg::test
