#pragma once
// Maps memory in now rather than on first touch. Weights used in place from a memory-
// mapped file are otherwise mapped page by page by the first forward pass: on the
// default model's dense int8 file that is 131 MB of faults inside the first prompt
// (docs/BENCHMARKS.md, "End to end"), where load time is the place for them, as it is
// for the layouts repacked at load.
#include <cstddef>

namespace upg {

// Populates the page tables of [p, p + n) (madvise MADV_POPULATE_READ; MADV_WILLNEED,
// readahead only, on kernels before 5.14). Memory already mapped costs a walk of its
// page tables; failures are ignored (the pages then fault in on first touch, as before).
void page_in(const void* p, size_t n);

}  // namespace upg
