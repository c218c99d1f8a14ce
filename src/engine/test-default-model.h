#pragma once
// A test suite's default model (UPG_MODEL or models/), loaded once for the suite with the
// options Derived::options() gives; every test skips, saying why, when the file is absent.
#include <fstream>

#include <gtest/gtest.h>

#include "core/test-paths.h"
#include "upg/model/model.h"

namespace upg::test {

template <class Derived>
class DefaultModelSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (std::ifstream(default_model_path()).good())
      model_ = Model::from_file(default_model_path(), Derived::options()).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    if (!model_) GTEST_SKIP() << "default model not found at " << default_model_path();
  }
  static inline Model* model_ = nullptr;
};

}  // namespace upg::test
