#include "upg/format/primes.h"

#include <gtest/gtest.h>

#include <vector>

#include "upg/core/error.h"

namespace upg {
namespace {

// Independent of the table: plain trial division by every odd number.
bool slow_is_prime(uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (uint32_t d = 3; d * d <= n; d += 2)
    if (n % d == 0) return false;
  return true;
}

TEST(Primes, TableMatchesTrialDivision) {
  std::vector<uint32_t> expected;
  for (uint32_t n = 0; expected.size() < size_t(kPrimeCount); ++n)
    if (slow_is_prime(n)) expected.push_back(n);
  ASSERT_EQ(expected.back(), kMaxPrime);
  const auto table = prime_table();
  for (int i = 1; i <= kPrimeCount; ++i) {
    ASSERT_EQ(nth_prime(i), expected[size_t(i - 1)]) << "i = " << i;
    ASSERT_EQ(table[size_t(i - 1)], expected[size_t(i - 1)]);
  }
}

TEST(Primes, KnownValues) {
  EXPECT_EQ(nth_prime(1), 2u);
  EXPECT_EQ(nth_prime(2), 3u);
  EXPECT_EQ(nth_prime(25), 97u);
  EXPECT_EQ(nth_prime(1000), 7919u);
  EXPECT_EQ(nth_prime(10000), 104729u);
  EXPECT_EQ(prime_count(0), 0);
  EXPECT_EQ(prime_count(1), 0);
  EXPECT_EQ(prime_count(2), 1);
  EXPECT_EQ(prime_count(100), 25);
  EXPECT_EQ(prime_count(1000), 168);
  EXPECT_EQ(prime_count(7919), 1000);
  EXPECT_EQ(prime_count(7918), 999);
  EXPECT_EQ(prime_count(104729), 10000);
}

TEST(Primes, IsPrimeAndCountAgreeWithTrialDivision) {
  int count = 0;
  for (uint32_t n = 0; n <= kMaxPrime; ++n) {
    const bool p = slow_is_prime(n);
    count += p;
    ASSERT_EQ(is_prime(n), p) << "n = " << n;
    ASSERT_EQ(prime_count(n), count) << "n = " << n;
  }
}

TEST(Primes, OutOfRangeThrows) {
  EXPECT_THROW(nth_prime(0), Error);
  EXPECT_THROW(nth_prime(-1), Error);
  EXPECT_THROW(nth_prime(10001), Error);
  EXPECT_THROW(is_prime(kMaxPrime + 1), Error);
  EXPECT_THROW(prime_count(kMaxPrime + 1), Error);
  EXPECT_THROW(nearest_prime_index(3.0f, 0), Error);
  EXPECT_THROW(nearest_prime_index(3.0f, 10001), Error);
  EXPECT_THROW(nearest_prime_index(std::numeric_limits<float>::quiet_NaN(), 10), Error);
}

TEST(Primes, NearestPrimeIndex) {
  EXPECT_EQ(nearest_prime_index(0.0f, 100), 1);     // below 2
  EXPECT_EQ(nearest_prime_index(-7.0f, 100), 1);
  EXPECT_EQ(nearest_prime_index(2.0f, 100), 1);
  EXPECT_EQ(nearest_prime_index(2.4f, 100), 1);
  EXPECT_EQ(nearest_prime_index(2.5f, 100), 1);     // tie 2 | 3 -> 2
  EXPECT_EQ(nearest_prime_index(2.6f, 100), 2);
  EXPECT_EQ(nearest_prime_index(4.0f, 100), 2);     // tie 3 | 5 -> 3
  EXPECT_EQ(nearest_prime_index(4.01f, 100), 3);
  EXPECT_EQ(nearest_prime_index(7919.0f, 10000), 1000);
  EXPECT_EQ(nearest_prime_index(1e9f, 10000), 10000);
  EXPECT_EQ(nearest_prime_index(std::numeric_limits<float>::infinity(), 50), 50);
  EXPECT_EQ(nearest_prime_index(1000.0f, 5), 5);    // capped at the 5th prime, 11
  // Brute force over a range: the chosen prime is never farther than any other one.
  for (float v = 0.0f; v < 600.0f; v += 0.25f) {
    const int idx = nearest_prime_index(v, 100);
    const double best = std::abs(double(nth_prime(idx)) - v);
    for (int i = 1; i <= 100; ++i) {
      const double d = std::abs(double(nth_prime(i)) - v);
      ASSERT_TRUE(d > best || (d == best && i >= idx)) << "v = " << v << " idx " << idx << " vs " << i;
    }
  }
}

}  // namespace
}  // namespace upg
