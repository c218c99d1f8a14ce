#pragma once
// The prime table of the UPG "prime" value encoding (docs/FORMAT.md): index i in
// 1..kPrimeCount names the i-th prime, 2 .. 104729. The table is built at compile time
// (src/format/primes.cpp), so a stored index decodes with one lookup and no startup cost.
#include <cstdint>
#include <span>

namespace upg {

constexpr int kPrimeCount = 10000;
constexpr uint32_t kMaxPrime = 104729;  // the 10000th prime

// All kPrimeCount primes in ascending order; prime_table()[i - 1] is the i-th prime.
// For hot loops (decoders, kernels) that index without the range check of nth_prime.
std::span<const uint32_t, kPrimeCount> prime_table();

// The i-th prime, 1-based (nth_prime(1) == 2, nth_prime(10000) == 104729). Throws
// upg::Error for i outside 1..kPrimeCount.
uint32_t nth_prime(int i);

// Whether n is prime, for 0 <= n <= kMaxPrime; throws upg::Error beyond (the table
// cannot answer there).
bool is_prime(uint32_t n);

// The number of primes <= n (pi(n)), for n <= kMaxPrime; throws upg::Error beyond.
int prime_count(uint32_t n);

// The index (1..max_index) of the prime closest to `magnitude`; ties go to the smaller
// prime, anything at or below 2 gives 1, +inf gives max_index. Throws upg::Error for a
// NaN magnitude or max_index outside 1..kPrimeCount. The compressor's prime encoding
// rounds each scaled |weight| with this.
int nearest_prime_index(float magnitude, int max_index);

namespace format {
// The prime encoding is part of the format; let format code name it either way.
using upg::is_prime;
using upg::kMaxPrime;
using upg::kPrimeCount;
using upg::nearest_prime_index;
using upg::nth_prime;
using upg::prime_count;
using upg::prime_table;
}  // namespace format

}  // namespace upg
