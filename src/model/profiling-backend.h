#pragma once
// A Backend that times every op of the backend it wraps (`upg run --profile`): where a
// decode step's time goes, per op and per kind of matmul, so kernel work starts from a
// measurement of the whole step rather than of one kernel.
#include <memory>
#include <vector>

#include "upg/kernels/backend.h"
#include "upg/model/op-profile.h"

namespace upg {

// Takes over `inner`; every call goes through to it, timed by the wall clock (ops of the
// CPU backend return when done; an asynchronous backend would need a sync per op).
std::unique_ptr<Backend> make_profiling_backend(std::unique_ptr<Backend> inner);
// The profile so far of a backend made by make_profiling_backend; empty for any other.
std::vector<OpProfile> profile_of(const Backend& backend);

}  // namespace upg
