#pragma once
// Two models on the same weights that should decode alike (the GPU against the CPU, N
// ranks against one): prompt logits within a tolerance, then 64 greedy tokens, each model
// fed its own picks, equal until they part, which must be at a near-tie of `want`'s own
// top two (within 1e-2): int8 activations on both sides round alike but not always.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "kernels/cuda/test-cuda.h"
#include "upg/model/model.h"

namespace upg::test {

inline void expect_follows(Model& want, Model& got, const std::vector<int32_t>& prompt, double tol,
                           const std::string& what) {
  Batch bw, bg;
  for (size_t i = 0; i < prompt.size(); ++i) {
    bw.add(prompt[i], int32_t(i), 0, i + 1 == prompt.size());
    bg.add(prompt[i], int32_t(i), 0, i + 1 == prompt.size());
  }
  for (int step = 0; step < 64; ++step) {
    const auto lw = want.decode(bw);
    const auto lg = got.decode(bg);
    const std::vector<float> w(lw.begin(), lw.end()), g(lg.begin(), lg.end());
    if (step == 0) {
      const double err = rel_error(g, w);
      std::cout << what << ", prompt logits: relative error " << err << "\n";
      EXPECT_LT(err, tol) << what;
    }
    const int32_t tw = int32_t(std::max_element(w.begin(), w.end()) - w.begin());
    const int32_t tg = int32_t(std::max_element(g.begin(), g.end()) - g.begin());
    if (tw != tg) {
      std::vector<float> sorted = w;
      std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
      EXPECT_LT(sorted[0] - sorted[1], 1e-2f) << what << ", step " << step << ": " << tw << " against " << tg;
      break;
    }
    bw.clear();
    bg.clear();
    bw.add(tw, int32_t(prompt.size()) + step, 0, true);
    bg.add(tg, int32_t(prompt.size()) + step, 0, true);
  }
}

}  // namespace upg::test
