#include "io/safetensors-writer.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "upg/io/atomic-file.h"
#include "io/safetensors-reader.h"
#include "upg/core/error.h"

namespace upg::io {

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<SafetensorsEntry> entries,
                                     std::vector<std::pair<std::string, std::string>> metadata)
    : path_(std::move(path)) {
  std::set<std::string, std::less<>> names;
  for (auto& e : entries) {
    const std::string where = fmt::format("{}: tensor '{}'", path_, e.name);
    if (e.name.empty()) throw Error(fmt::format("{}: tensor with an empty name", path_));
    if (e.name == "__metadata__") throw Error(fmt::format("{}: the name is reserved", where));
    if (!names.insert(e.name).second) throw Error(fmt::format("{}: name used twice", where));
    if (dtype_is_quantized(e.dtype))
      throw Error(fmt::format("{}: dtype {} cannot be stored in safetensors", where, dtype_name(e.dtype)));
    int64_t numel = 1;
    for (int64_t d : e.shape)
      if (d < 0 || __builtin_mul_overflow(numel, d, &numel))
        throw Error(fmt::format("{}: invalid shape", where));
    Slot s;
    s.size = dtype_bytes(e.dtype, numel);
    s.entry = std::move(e);
    slots_.push_back(std::move(s));
  }
  // Every tensor must start aligned for its element type so readers can use the mmap
  // directly; the format forbids gaps, so order by element size (largest first), which
  // keeps every offset a multiple of the sizes after it. The sort is stable, so the given
  // order holds within one element size.
  std::stable_sort(slots_.begin(), slots_.end(), [](const Slot& a, const Slot& b) {
    return dtype_block_bytes(a.entry.dtype) > dtype_block_bytes(b.entry.dtype);
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (auto& s : slots_) {
    s.begin = offset;
    if (__builtin_add_overflow(offset, s.size, &offset))
      throw Error(fmt::format("{}: total tensor size overflows", path_));
    header[s.entry.name] = {{"dtype", dtype_name(s.entry.dtype)},
                            {"shape", s.entry.shape},
                            {"data_offsets", {s.begin, s.begin + s.size}}};
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& e) {  // invalid UTF-8 in a name
    throw Error(fmt::format("{}: cannot encode the header: {}", path_, e.what()));
  }
  // Padding the header with spaces to a multiple of 8 keeps the data start aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kSafetensorsMaxHeader)
    throw Error(fmt::format("{}: header of {} bytes exceeds the {} byte limit", path_, text.size(),
                            kSafetensorsMaxHeader));
  data_start_ = 8 + text.size();
  file_bytes_ = data_start_ + offset;

  out_ = std::make_unique<AtomicFile>(path_);  // removes its temp if a step below throws
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));
  out_->pwrite(len, 8, 0);
  out_->pwrite(text.data(), text.size(), 8);
  // Sizing the file now means a zero-byte tensor needs no write and the layout is final.
  if (::ftruncate(out_->fd(), off_t(file_bytes_)) != 0)
    throw Error(fmt::format("{}: cannot size to {} bytes: {}", path_, file_bytes_, std::strerror(errno)));
}

SafetensorsWriter::~SafetensorsWriter() = default;  // out_ removes an uncommitted temp

void SafetensorsWriter::write(std::string_view name, std::span<const std::byte> bytes) {
  if (finished_) throw Error(fmt::format("{}: write of tensor '{}' after finish()", path_, name));
  auto it = std::find_if(slots_.begin(), slots_.end(), [&](const Slot& s) { return s.entry.name == name; });
  if (it == slots_.end()) throw Error(fmt::format("{}: tensor '{}' is not in the header", path_, name));
  if (bytes.size() > it->size - it->written)
    throw Error(fmt::format("{}: tensor '{}': {} more bytes would exceed its size {} ({} already written)", path_,
                            name, bytes.size(), it->size, it->written));
  out_->pwrite(bytes.data(), bytes.size(), data_start_ + it->begin + it->written);
  it->written += bytes.size();
}

void SafetensorsWriter::finish() {
  if (finished_) return;
  for (const auto& s : slots_)
    if (s.written != s.size)
      throw Error(fmt::format("{}: tensor '{}' has {} of its {} bytes", path_, s.entry.name, s.written, s.size));
  out_->commit();
  finished_ = true;
}

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::vector<SafetensorsEntry> entries;
  for (const auto& t : tensors) entries.push_back({t.name, t.dtype, t.shape});
  SafetensorsWriter w(path, std::move(entries), metadata);
  for (const auto& t : tensors) {
    if (t.nbytes != dtype_bytes(t.dtype, t.numel()))
      throw Error(fmt::format("{}: tensor '{}' has {} bytes, its shape needs {}", path, t.name, t.nbytes,
                              dtype_bytes(t.dtype, t.numel())));
    w.write(t.name, {t.data, t.nbytes});
  }
  w.finish();
}

}  // namespace upg::io
