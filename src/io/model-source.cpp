// load_model_source: picks the reader from the path (directory, extension, then magic
// bytes), so the layers above never care which format a model came in.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "io/gguf-loader.h"
#include "io/hf-directory.h"
#include "upg/io/upg-file.h"
#include "upg/core/error.h"
#include "upg/io/io.h"

namespace upg {

namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The first bytes of a file; fewer when the file is shorter.
std::string head(const std::string& path, size_t n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::string s(n, '\0');
  in.read(s.data(), std::streamsize(n));
  s.resize(size_t(in.gcount()));
  return s;
}

// Ids the model cannot embed fail at load, not when a prompt first reaches one. Some
// published vocabularies repeat a few entries (encoding uses the lowest id), so
// duplicates are a warning.
void check_tokenizer(ModelSource& src) {
  if (!src.tokenizer) return;
  const std::vector<std::string>& vocab = src.tokenizer->vocab;
  if (vocab.size() > size_t(src.config.vocab_size))
    throw Error(fmt::format("{}: the tokenizer has {} tokens, more than the model's vocab_size of {}: ids from {} "
                            "on have no embedding",
                            src.path, vocab.size(), src.config.vocab_size, src.config.vocab_size));
  std::unordered_map<std::string_view, int32_t> first;
  first.reserve(vocab.size());
  std::vector<std::string> dups;
  size_t n_dups = 0;
  for (size_t i = 0; i < vocab.size(); ++i) {
    auto [it, fresh] = first.emplace(vocab[i], int32_t(i));
    if (fresh) continue;
    ++n_dups;
    if (dups.size() < 3) dups.push_back(fmt::format("{:?} at ids {} and {}", vocab[i], it->second, i));
  }
  if (n_dups > 0)
    src.warnings.push_back(fmt::format("{}: the vocabulary has {} duplicate entr{} ({}{}); text encodes to the lower id",
                                       src.path, n_dups, n_dups == 1 ? "y" : "ies", fmt::join(dups, ", "),
                                       n_dups > dups.size() ? ", ..." : ""));
}

ModelSource read_model_source(const std::string& path, const LoadOptions& opts) {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw Error(fmt::format("{}: no such file or directory", path));
  if (fs::is_directory(st)) return io::load_hf_directory(path, opts);
  if (!fs::is_regular_file(st)) throw Error(fmt::format("{}: not a regular file or directory", path));

  // A safetensors file starts with a little-endian header length, then '{'.
  std::string magic = head(path, 9);
  if (ends_with(path, ".gguf") || magic.starts_with("GGUF")) return io::load_gguf(path, opts);
  // A UPG file is a safetensors file whose metadata carries upg.version.
  const bool safetensors = ends_with(path, ".safetensors") || (magic.size() == 9 && magic[8] == '{');
  if (ends_with(path, ".upg") || (safetensors && io::is_upg_file(path))) return io::load_upg(path, opts);
  if (safetensors) return io::load_safetensors_model(path, opts);
  throw Error(fmt::format("{}: unrecognised model format (expected a .gguf file, a .upg file, a .safetensors "
                          "file or a Hugging Face model directory)",
                          path));
}

}  // namespace

ModelSource load_model_source(const std::string& path, const LoadOptions& opts) {
  ModelSource src = read_model_source(path, opts);
  check_tokenizer(src);
  return src;
}

}  // namespace upg
