// UpgWriter: streams a UPG file (a safetensors container) tensor by tensor. The header
// needs every tensor's offset, which is only known once the last tensor has arrived, so
// data goes first to spill files, one per element size; finish() writes the header and
// concatenates the spills largest element size first, which keeps every tensor aligned
// to its element size with no gaps between tensors (safetensors forbids gaps).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "upg/core/json.h"
#include "upg/io/atomic-file.h"
#include "io/safetensors-reader.h"
#include "upg/io/upg-file.h"
#include "io/upg-parts.h"
#include "upg/core/error.h"

namespace upg::io {

namespace {

using Json = nlohmann::ordered_json;
namespace k = upg_keys;

// Element sizes in file order: 8-byte types first, 1-byte types last.
constexpr std::array<int64_t, 4> kAlignments = {8, 4, 2, 1};

size_t alignment_slot(DType t) {
  const int64_t size = dtype_block_bytes(t);
  for (size_t i = 0; i < kAlignments.size(); ++i)
    if (kAlignments[i] == size) return i;
  throw Error(fmt::format("dtype {} has no safetensors alignment class", dtype_name(t)));
}

void write_all(int fd, const void* p, size_t n, const std::string& path) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(fmt::format("{}: write failed: {}", path, std::strerror(errno)));
    }
    c += w;
    n -= size_t(w);
  }
}

// Appends `len` bytes of `in` (from offset 0) to `out`: copy_file_range where the kernel
// and file system allow it, a plain read/write loop otherwise.
void append_file(int in, uint64_t len, AtomicFile& out_file, const std::string& path) {
  const int out = out_file.fd();
  loff_t off = 0;
  while (uint64_t(off) < len) {
    ssize_t n = ::copy_file_range(in, &off, out, nullptr, size_t(std::min<uint64_t>(len - uint64_t(off), 1u << 30)), 0);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) throw Error(fmt::format("{}: spill file ended early ({} of {} bytes)", path, off, len));
    if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
      throw Error(fmt::format("{}: copy failed: {}", path, std::strerror(errno)));
    std::vector<char> buf(8u << 20);
    while (uint64_t(off) < len) {
      ssize_t r = ::pread(in, buf.data(), size_t(std::min<uint64_t>(len - uint64_t(off), buf.size())), off);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) throw Error(fmt::format("{}: reading a spill file failed: {}", path, std::strerror(errno)));
      out_file.write(buf.data(), size_t(r));
      off += r;
    }
  }
}

Json parse_json(const std::string& text, const std::string& path, const char* key) {
  return upg::parse_json<Json>(text, fmt::format("{}: {}", path, key));
}

}  // namespace

struct UpgWriter::Impl {
  struct Record {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t offset, size;  // within the spill
  };
  struct Spill {
    int fd = -1;
    uint64_t size = 0;
    std::vector<Record> records;
  };

  std::string path;
  std::unique_ptr<AtomicFile> out;  // created up front, so an unwritable path fails at once
  UpgHeader header;
  Json tensors = Json::object();  // upg.tensors
  std::set<std::string, std::less<>> names;  // every tensor and compressed weight name
  std::array<Spill, kAlignments.size()> spills;
  uint64_t data_bytes = 0, file_bytes = 0;
  bool finished = false;

  ~Impl() {
    // The spill files were unlinked at creation: closing them frees their space.
    for (Spill& s : spills)
      if (s.fd >= 0) ::close(s.fd);
  }

  void claim(const std::string& name, const std::string& what) {
    if (finished) throw Error(fmt::format("{}: {} '{}' added after finish()", path, what, name));
    if (name.empty()) throw Error(fmt::format("{}: {} with an empty name", path, what));
    if (name == "__metadata__") throw Error(fmt::format("{}: {} '{}': the name is reserved", path, what, name));
    if (!names.insert(name).second) throw Error(fmt::format("{}: {} '{}': name used twice", path, what, name));
  }

  // Spill files live beside the output (same file system, so the final copy can be a
  // reflink) and are unlinked at once: a killed run leaves nothing behind.
  int spill_fd(size_t slot) {
    Spill& s = spills[slot];
    if (s.fd < 0) s.fd = create_scratch_file(path);
    return s.fd;
  }

  void append(const std::string& name, DType dtype, std::vector<int64_t> shape, std::span<const std::byte> data) {
    const std::string where = fmt::format("{}: tensor '{}'", path, name);
    if (dtype_is_quantized(dtype))
      throw Error(fmt::format("{}: dtype {} cannot be stored in safetensors", where, dtype_name(dtype)));
    int64_t numel = 1;
    for (int64_t d : shape)
      if (d < 0 || __builtin_mul_overflow(numel, d, &numel)) throw Error(fmt::format("{}: invalid shape", where));
    const size_t need = dtype_bytes(dtype, numel);
    if (data.size() != need)
      throw Error(fmt::format("{}: {} bytes given, {} shape [{}] needs {}", where, data.size(), dtype_name(dtype),
                              fmt::join(shape, ", "), need));
    const size_t slot = alignment_slot(dtype);
    const int fd = spill_fd(slot);
    write_all(fd, data.data(), data.size(), path);
    Spill& s = spills[slot];
    s.records.push_back({name, dtype, std::move(shape), s.size, data.size()});
    s.size += data.size();
    data_bytes += data.size();
  }

  template <class T>
  void part(const std::string& w, const char* suffix, DType dtype, std::vector<int64_t> shape, std::span<const T> v) {
    const std::string name = w + suffix;
    claim(name, "part");
    append(name, dtype, std::move(shape), std::as_bytes(v));
  }
};

UpgWriter::UpgWriter(std::string path, UpgHeader header) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.path = std::move(path);
  if (header.compression_json.empty()) header.compression_json = "{}";
  // Checked now so a bad config fails before hours of compression, not at finish().
  if (!parse_json(header.config_json, m.path, k::kConfigKey).is_object())
    throw Error(fmt::format("{}: {} must be a JSON object", m.path, k::kConfigKey));
  if (!parse_json(header.compression_json, m.path, k::kCompressionKey).is_object())
    throw Error(fmt::format("{}: {} must be a JSON object", m.path, k::kCompressionKey));
  m.header = std::move(header);
  m.out = std::make_unique<AtomicFile>(m.path);
  auto add_text = [&](const char* name, const std::string& text) {
    if (text.empty()) return;
    m.claim(name, "tensor");
    m.append(name, DType::U8, {int64_t(text.size())}, std::as_bytes(std::span(text.data(), text.size())));
  };
  add_text(k::kTokenizerTensor, m.header.tokenizer_json);
  add_text(k::kTokenizerConfigTensor, m.header.tokenizer_config_json);
}

UpgWriter::~UpgWriter() = default;

void UpgWriter::add_dense(const std::string& name, DType dtype, std::vector<int64_t> shape,
                          std::span<const std::byte> data) {
  impl_->claim(name, "tensor");
  impl_->append(name, dtype, std::move(shape), data);
}

void UpgWriter::add_compressed(const std::string& name, const format::CompressedData& d) {
  Impl& m = *impl_;
  const format::CompressedMatrix v = d.view();
  // The compressor's output is checked against the loader's rules before it is written,
  // so a file that will not load is never produced.
  format::validate(v, fmt::format("{}: tensor '{}'", m.path, name));
  m.claim(name, "compressed weight");

  Json entry = Json::object();
  entry["layout"] = format::layout_name(v.layout);
  entry["shape"] = {v.rows, v.cols};
  entry["encoding"] = format::encoding_name(v.encoding);
  entry["entries"] = v.entries();
  entry["n"] = v.layout == format::Layout::NM ? v.nm.n : 0;
  entry["m"] = v.layout == format::Layout::NM ? v.nm.m : 0;
  entry["codebook_size"] = v.encoding == format::Encoding::Codebook ? int64_t(v.mdcsr.codebook.size()) : 0;
  const int bits = format::grouped_bits(v.encoding);
  const bool int4 = bits != 0;  // any grouped encoding
  if (int4) {
    entry["group_size"] = v.int4.group_size;
    entry["zero_points"] = !v.int4.group_zeros.empty();
    const int64_t groups = format::int4_groups(v.cols, v.int4.group_size);
    m.part(name, k::grouped_codes_part(bits), DType::U8, {v.rows, format::grouped_row_bytes(bits, v.values_per_row())},
           v.int4.codes);
    m.part(name, k::kGroupScales, DType::F16, {v.rows, groups}, v.int4.group_scales);
    if (!v.int4.group_zeros.empty()) m.part(name, k::kGroupZeros, DType::U8, {v.rows, groups}, v.int4.group_zeros);
  }

  if (v.layout == format::Layout::MdCsr) {
    const int64_t entries = int64_t(v.mdcsr.delta_indices.size());
    m.part(name, k::kRowPointers, DType::U32, {v.rows + 1}, v.mdcsr.row_pointers);
    m.part(name, k::kDeltaIndices, DType::U8, {entries}, v.mdcsr.delta_indices);
    m.part(name, k::kScales, DType::F32, {v.rows}, v.scales);
    if (v.encoding == format::Encoding::Int8) {
      m.part(name, k::kValues, DType::I8, {entries}, v.mdcsr.values);
    } else {
      m.part(name, k::kPrimeIndices, DType::U16, {entries}, v.mdcsr.prime_indices);
      if (v.encoding == format::Encoding::Codebook)
        m.part(name, k::kCodebook, DType::F32, {int64_t(v.mdcsr.codebook.size())}, v.mdcsr.codebook);
    }
  } else if (v.layout == format::Layout::NM) {
    const int64_t per_row_v = format::nm_values_per_row(v.cols, v.nm.n, v.nm.m);
    const int64_t per_row_p = format::nm_position_bytes_per_row(v.cols, v.nm.n, v.nm.m);
    if (!int4) m.part(name, k::kNmValues, DType::I8, {v.rows, per_row_v}, v.nm.values);
    m.part(name, k::kNmPositions, DType::U8, {v.rows, per_row_p}, v.nm.positions);
    if (!int4) m.part(name, k::kScales, DType::F32, {v.rows}, v.scales);
  }
  m.tensors[name] = std::move(entry);
}

void UpgWriter::finish() {
  Impl& m = *impl_;
  if (m.finished) return;

  Json header = Json::object();
  header["__metadata__"] = {{k::kVersionKey, k::kVersion},
                            {k::kConfigKey, m.header.config_json},
                            {k::kCompressionKey, m.header.compression_json},
                            {k::kTensorsKey, m.tensors.dump()}};
  uint64_t base = 0;
  for (const auto& s : m.spills) {
    for (const auto& r : s.records)
      header[r.name] = {{"dtype", safetensors_dtype_name(r.dtype)},
                        {"shape", r.shape},
                        {"data_offsets", {base + r.offset, base + r.offset + r.size}}};
    base += s.size;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception& e) {  // invalid UTF-8 in a name or the config
    throw Error(fmt::format("{}: cannot encode the header: {}", m.path, e.what()));
  }
  // Spaces up to a multiple of 8 keep the data start (and so every tensor) aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kSafetensorsMaxHeader)
    throw Error(fmt::format("{}: header of {} bytes exceeds the {} byte limit", m.path, text.size(),
                            kSafetensorsMaxHeader));

  // On a throw below, ~AtomicFile removes the temp file; a finish() retried after one
  // that failed mid-way starts the file over.
  if (::ftruncate(m.out->fd(), 0) != 0 || ::lseek(m.out->fd(), 0, SEEK_SET) != 0)
    throw Error(fmt::format("{}: cannot reset {}: {}", m.path, m.out->temp_path(), std::strerror(errno)));
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));
  m.out->write(len, 8);
  m.out->write(text.data(), text.size());
  for (const auto& s : m.spills)
    if (s.fd >= 0) append_file(s.fd, s.size, *m.out, m.path);
  m.out->commit();
  m.finished = true;
  m.file_bytes = 8 + text.size() + base;
  for (auto& s : m.spills) {
    if (s.fd >= 0) ::close(s.fd);
    s.fd = -1;
  }
}

uint64_t UpgWriter::bytes_written() const { return impl_->finished ? impl_->file_bytes : impl_->data_bytes; }

}  // namespace upg::io
