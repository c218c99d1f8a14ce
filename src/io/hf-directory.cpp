#include "io/hf-directory.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "upg/core/json.h"
#include "io/compressed-tensors.h"
#include "io/hf-config.h"
#include "io/safetensors-reader.h"
#include "io/hf-json.h"
#include "upg/core/file-text.h"
#include "upg/core/error.h"

namespace upg::io {

namespace {

namespace fs = std::filesystem;


bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

}  // namespace

void add_tensors(SafetensorsFile&& st, WeightStore& store) {
  for (auto& t : st.tensors) {
    auto align = uintptr_t(dtype_block_bytes(t.dtype));
    if (reinterpret_cast<uintptr_t>(t.data) % align != 0) {
      std::byte* copy = store.allocate(t.nbytes);
      std::memcpy(copy, t.data, t.nbytes);
      t.data = copy;
    }
    store.add(std::move(t));
  }
  // Pages may go back once copied into another form (compressed-tensors parts, the
  // backend's repacks); a later read maps them again from the file.
  const MappedFile* f = st.file.get();
  store.keep_alive(st.file, f->data(), f->size(), [f](const std::byte* p, size_t n) { f->drop_pages(p, n); });
}

namespace {

// Reads model.safetensors.index.json and every shard it names, checking that shard names
// stay inside the directory, each tensor is where the map says and in one shard only.
void load_sharded(const fs::path& dir, const fs::path& index_path, ModelSource& src,
                  std::vector<std::pair<std::string, std::string>>& metadata, int& shards) {
  const std::string origin = index_path.string();
  const nlohmann::json index = parse_json(read_file_text(index_path.string(), "the shard index"), origin);
  if (!index.is_object()) throw Error(fmt::format("{}: must be a JSON object, got {}", origin, index.type_name()));
  auto wm = index.find("weight_map");
  if (wm == index.end()) throw Error(fmt::format("{}: 'weight_map' is missing", origin));
  if (!wm->is_object() || wm->empty())
    throw Error(fmt::format("{}: 'weight_map' must be a non-empty object, got {}", origin, wm->type_name()));

  std::map<std::string, std::vector<std::string>> by_shard;  // shard file -> tensors mapped to it
  for (const auto& [name, shard] : wm->items()) {
    if (!shard.is_string())
      throw Error(fmt::format("{}: 'weight_map.{}' must be a file name, got {}", origin, name, json_brief(shard)));
    const std::string file = shard.get<std::string>();
    if (file.empty() || file.find('/') != std::string::npos || file.find('\\') != std::string::npos ||
        file.find("..") != std::string::npos)
      throw Error(fmt::format("{}: 'weight_map.{}': shard name '{}' must be a plain file name in the directory",
                              origin, name, file));
    by_shard[file].push_back(name);
  }

  std::map<std::string, std::string, std::less<>> owner;  // tensor -> shard that holds it
  for (const auto& [file, names] : by_shard) {
    fs::path p = dir / file;
    if (!is_file(p))
      throw Error(fmt::format("{}: shard '{}' (holding tensor '{}') does not exist", origin, file, names.front()));
    SafetensorsFile st = read_safetensors(p.string());
    std::set<std::string, std::less<>> present;
    for (const auto& t : st.tensors) {
      auto [it, fresh] = owner.emplace(t.name, file);
      if (!fresh)
        throw Error(fmt::format("{}: tensor '{}' is in two shards, '{}' and '{}'", origin, t.name, it->second, file));
      present.insert(t.name);
    }
    for (const auto& n : names)
      if (!present.count(n))
        throw Error(fmt::format("{}: tensor '{}' is mapped to shard '{}' but is not in it", origin, n, file));
    src.file_bytes += st.file->size();
    for (auto& m : st.metadata)
      if (std::find(metadata.begin(), metadata.end(), m) == metadata.end()) metadata.push_back(m);
    add_tensors(std::move(st), src.weights);
    ++shards;
  }
}

// Shared by the directory and single-file forms. `weights` is the single file, or empty
// for a sharded directory (the index is then read from `dir`).
ModelSource load_hf(const std::string& origin, const fs::path& dir, const fs::path& weights, const LoadOptions& opts) {
  ModelSource src;
  src.path = origin;
  src.format = "safetensors";
  src.weights.source = origin;

  fs::path config_path = dir / "config.json";
  if (!is_file(config_path)) throw Error(fmt::format("{}: no config.json beside the weights", origin));
  const std::string config_text = read_file_text(config_path.string(), "config.json");
  src.config = parse_hf_config(config_text, config_path.string());

  fs::path gen = dir / "generation_config.json";
  if (is_file(gen)) apply_generation_config(read_file_text(gen.string(), "generation_config.json"), gen.string(), src.config);

  std::vector<std::pair<std::string, std::string>> metadata;
  int shards = 1;
  if (!weights.empty()) {
    SafetensorsFile st = read_safetensors(weights.string());
    src.file_bytes = st.file->size();
    metadata = st.metadata;
    add_tensors(std::move(st), src.weights);
  } else {
    shards = 0;
    load_sharded(dir, dir / "model.safetensors.index.json", src, metadata, shards);
  }

  fs::path tok = dir / "tokenizer.json";
  if (is_file(tok)) {
    fs::path tok_cfg = dir / "tokenizer_config.json";
    std::string cfg_text = is_file(tok_cfg) ? read_file_text(tok_cfg.string(), "tokenizer_config.json") : std::string();
    src.tokenizer = parse_tokenizer_json(read_file_text(tok.string(), "tokenizer.json"), cfg_text, tok.string());
  }

  src.info = {{"format", "safetensors"},
              {"architecture", src.config.architecture},
              {"tensors", std::to_string(src.weights.all().size())},
              {"bytes", std::to_string(src.weights.total_bytes())}};
  if (weights.empty()) src.info.emplace_back("shards", std::to_string(shards));
  for (auto& [k, v] : metadata) src.info.emplace_back("metadata." + k, v);
  apply_compressed_tensors(parse_json(config_text, config_path.string()), config_path.string(), src,
                           /*convert=*/!opts.as_stored);
  return src;
}

}  // namespace

ModelSource load_hf_directory(const std::string& dir, const LoadOptions& opts) {
  fs::path d(dir);
  if (is_file(d / "model.safetensors")) return load_hf(dir, d, d / "model.safetensors", opts);
  if (is_file(d / "model.safetensors.index.json")) return load_hf(dir, d, {}, opts);
  throw Error(fmt::format("{}: no model.safetensors or model.safetensors.index.json in the directory", dir));
}

ModelSource load_safetensors_model(const std::string& file, const LoadOptions& opts) {
  fs::path p(file);
  fs::path dir = p.parent_path();
  if (dir.empty()) dir = ".";
  return load_hf(file, dir, p, opts);
}

}  // namespace upg::io
