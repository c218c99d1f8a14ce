// A decode step allocates nothing once the model is warm: its buffers are sized up front
// (forward.h), and the thread pool's regions take the caller's lambdas by reference
// (kernels::ChunkFn), not by a std::function that would copy a large capture to the heap.
// core/count-allocations.h counts operator new.
#include <gtest/gtest.h>

#include "core/count-allocations.h"
#include "core/test-paths.h"
#include "upg/model/model.h"

namespace upg {
namespace {

TEST(DecodeAlloc, NoAllocationPerDecodeStep) {
  ModelOptions o;
  o.n_threads = 2;
  o.context_length = 64;
  auto model = Model::from_file(test::source_dir() + "/tests/fixtures/tiny/llama", o);
  Batch b;
  for (int i = 0; i < 5; ++i) b.add(3 + i, i, 0, i == 4);
  model->decode(b);
  auto step = [&](int pos) {
    b.clear();
    b.add(7, pos, 0, true);
    model->decode(b);
  };
  step(5);  // the first single-token step may size what a prompt did not
  const long before = test::allocations();
  for (int pos = 6; pos < 30; ++pos) {
    const long a = test::allocations();
    step(pos);
    if (test::allocations() != a) ADD_FAILURE() << "step at position " << pos << ": " << test::allocations() - a;
  }
  EXPECT_EQ(test::allocations() - before, 0);
}

}  // namespace
}  // namespace upg
