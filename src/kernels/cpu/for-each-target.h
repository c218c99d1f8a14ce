#pragma once
// Test helper: runs a body once per SIMD target this CPU supports, so every compiled
// kernel variant is checked, not only the one dispatch would pick.
#include <gtest/gtest.h>

#include <string>

#include "kernels/cpu/kernels.h"

namespace upg::kernels::testing {

template <class Body>
void for_each_target(Body body) {
  const auto targets = available_targets();
  ASSERT_FALSE(targets.empty());
  for (const std::string& name : targets) {
    ASSERT_TRUE(force_target(name)) << name;
    ASSERT_EQ(simd_target(), name);
    SCOPED_TRACE("target " + name);
    body(name);
  }
  force_target("");
}

}  // namespace upg::kernels::testing
