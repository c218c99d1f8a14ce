#pragma once
// Read-only memory map of a whole file. Readers take views into it and keep it alive
// through WeightStore::keep_alive.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace upg::io {

class MappedFile {
 public:
  // Throws upg::Error("<path>: cannot open: <reason>") on failure.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  // A heap copy of `bytes` under the name `path` (for error messages), read exactly like
  // a mapped file. For the fuzz harnesses: a heap buffer of the exact size lets
  // AddressSanitizer catch a read one byte past the end, which a page-sized map hides.
  static std::shared_ptr<MappedFile> from_bytes(const std::string& path, const void* bytes, size_t size);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // True when [offset, offset + len) lies inside the file (overflow-safe).
  bool contains(uint64_t offset, uint64_t len) const { return offset <= size_ && len <= size_ - offset; }
  // Gives back the whole pages inside [p, p + n) of the mapping (madvise MADV_DONTNEED): the
  // process's resident memory drops, and a later read maps them again from the page
  // cache or the file, since the mapping is private, read-only and never written, so
  // what any view reads never changes. For a reader that has copied bytes into another
  // form. A no-op for from_bytes and for a range outside the file.
  void drop_pages(const std::byte* p, size_t n) const;

 private:
  MappedFile() = default;
  std::string path_;
  const std::byte* data_ = nullptr;
  uint64_t size_ = 0;
  std::unique_ptr<std::byte[]> owned_;  // from_bytes; otherwise data_ is a mapping
};

}  // namespace upg::io
