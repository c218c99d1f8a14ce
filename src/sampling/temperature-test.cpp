#include <gtest/gtest.h>

#include "sampling/test-lists.h"
#include "upg/core/error.h"

namespace upg {
namespace {

using sampling::test::logits;
using sampling::test::make_list;

TEST(Temperature, DividesLogitsAndKeepsOrder) {
  auto c = make_list({2.0f, -1.0f, 0.5f});
  c.sorted = false;
  c.normalized = true;
  make_temperature(0.5f)->apply(c, {});
  EXPECT_EQ(logits(c), (std::vector<float>{4.0f, -2.0f, 1.0f}));
  EXPECT_FALSE(c.normalized);

  auto s = make_list({3.0f, 1.0f});
  s.sorted = true;
  make_temperature(2.0f)->apply(s, {});
  EXPECT_EQ(logits(s), (std::vector<float>{1.5f, 0.5f}));
  EXPECT_TRUE(s.sorted);
}

TEST(Temperature, RejectsNonPositiveAndNonFinite) {
  EXPECT_THROW(make_temperature(0.0f), Error);
  EXPECT_THROW(make_temperature(-1.0f), Error);
  EXPECT_THROW(make_temperature(NAN), Error);
  EXPECT_THROW(make_temperature(INFINITY), Error);
}

TEST(Temperature, Describe) { EXPECT_EQ(make_temperature(0.8f)->describe(), "temp(0.80)"); }

}  // namespace
}  // namespace upg
