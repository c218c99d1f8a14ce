#pragma once
// The tiny fixture model as the engine tests load it: a short context, an exact (f32) KV
// cache in blocks of 4 tokens, so small pools and block boundaries come up quickly.
#include <memory>
#include <string>

#include "core/test-paths.h"
#include "upg/model/model.h"

namespace upg::test {

// family: a folder of tests/fixtures/tiny (the others share llama's vocabulary of 256,
// so any of them can draft for it). ranks: tensor-parallel CPU ranks.
inline std::unique_ptr<Model> tiny_engine_model(int kv_blocks = 0, const std::string& family = "llama", int ranks = 1) {
  ModelOptions o;
  o.context_length = 64;
  o.n_threads = 2;
  o.kv_type = DType::F32;
  o.kv_block_size = 4;
  o.max_sequences = 8;
  o.kv_blocks = kv_blocks;
  o.tensor_parallel = ranks;
  return Model::from_file(fixture("tiny/" + family), o);
}

}  // namespace upg::test
