#include "io/safetensors-writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/safetensors-reader.h"
#include "upg/error.h"

namespace upg::io {

namespace {

void write_all(int fd, const void* p, size_t n, uint64_t offset, const std::string& path) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::pwrite(fd, c, n, off_t(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(fmt::format("{}: write failed: {}", path, std::strerror(errno)));
    }
    c += w;
    n -= size_t(w);
    offset += uint64_t(w);
  }
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<SafetensorsEntry> entries,
                                     std::vector<std::pair<std::string, std::string>> metadata)
    : path_(std::move(path)), tmp_(path_ + ".tmp") {
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

  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(fmt::format("{}: cannot create: {}", tmp_, std::strerror(errno)));
  try {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));
    write_all(fd_, len, 8, 0, tmp_);
    write_all(fd_, text.data(), text.size(), 8, tmp_);
    // Sizing the file now means a zero-byte tensor needs no write and the layout is final.
    if (::ftruncate(fd_, off_t(file_bytes_)) != 0)
      throw Error(fmt::format("{}: cannot size to {} bytes: {}", tmp_, file_bytes_, std::strerror(errno)));
  } catch (...) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
    fd_ = -1;
    throw;
  }
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) ::unlink(tmp_.c_str());
}

void SafetensorsWriter::write(std::string_view name, std::span<const std::byte> bytes) {
  if (finished_) throw Error(fmt::format("{}: write of tensor '{}' after finish()", path_, name));
  auto it = std::find_if(slots_.begin(), slots_.end(), [&](const Slot& s) { return s.entry.name == name; });
  if (it == slots_.end()) throw Error(fmt::format("{}: tensor '{}' is not in the header", path_, name));
  if (bytes.size() > it->size - it->written)
    throw Error(fmt::format("{}: tensor '{}': {} more bytes would exceed its size {} ({} already written)", path_,
                            name, bytes.size(), it->size, it->written));
  write_all(fd_, bytes.data(), bytes.size(), data_start_ + it->begin + it->written, tmp_);
  it->written += bytes.size();
}

void SafetensorsWriter::finish() {
  if (finished_) return;
  for (const auto& s : slots_)
    if (s.written != s.size)
      throw Error(fmt::format("{}: tensor '{}' has {} of its {} bytes", path_, s.entry.name, s.written, s.size));
  if (::fsync(fd_) != 0) throw Error(fmt::format("{}: fsync failed: {}", tmp_, std::strerror(errno)));
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) throw Error(fmt::format("{}: close failed: {}", tmp_, std::strerror(errno)));
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw Error(fmt::format("{}: cannot rename from {}: {}", path_, tmp_, std::strerror(errno)));
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
