#pragma once
// The model files the benchmarks run: the default model, and UPG files compressed from it
// on first use and kept beside it (remade when the source is newer).
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "compress/compressor.h"
#include "core/test-paths.h"

namespace upg::bench {

inline std::string model_path() { return upg::test::default_model_path(); }

// Magnitude pruning: speed does not depend on which weights survive, and it needs no
// calibration pass. The embedding / LM head is dense int8 in all three, so only the
// decoder layers differ.
enum class Variant { DenseInt8, Unstructured50, NM24 };

inline std::string upg_file(Variant v) {
  const char* name = v == Variant::DenseInt8 ? "dense-int8" : v == Variant::Unstructured50 ? "mdcsr-50" : "nm-2-4";
  const std::filesystem::path src = model_path();
  const std::filesystem::path out = src.parent_path() / fmt::format("bench-{}.upg", name);
  if (std::filesystem::exists(out) && std::filesystem::last_write_time(out) >= std::filesystem::last_write_time(src))
    return out.string();
  upg::compress::CompressOptions o;
  o.source = src.string();
  o.output = out.string();
  o.prune = upg::compress::PruneMethod::Magnitude;
  o.embeddings = upg::compress::EmbeddingStore::Int8;
  o.dense_int8_linears = v == Variant::DenseInt8;
  o.matrix.sparsity = 0.5;
  if (v == Variant::NM24) o.matrix.pattern = upg::compress::parse_pattern("2:4");
  o.quiet = true;
  upg::compress::compress_model(o);
  return out.string();
}

}  // namespace upg::bench
