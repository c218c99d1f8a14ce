#include "upg/io/gguf-writer.h"

#include <cstring>

#include <fmt/format.h>

#include "upg/io/atomic-file.h"
#include "upg/core/error.h"

namespace upg::io {

namespace {

class Out {
 public:
  std::vector<std::byte> buf;
  template <class T>
  void put(T v) {
    size_t n = buf.size();
    buf.resize(n + sizeof(T));
    std::memcpy(buf.data() + n, &v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    auto* p = reinterpret_cast<const std::byte*>(s.data());
    buf.insert(buf.end(), p, p + s.size());
  }
  void pad_to(uint64_t a) { buf.resize((buf.size() + a - 1) / a * a, std::byte{0}); }
};

void put_int(Out& o, GgufType t, uint64_t bits) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: o.put<uint8_t>(uint8_t(bits)); break;
    case GgufType::UINT16: case GgufType::INT16: o.put<uint16_t>(uint16_t(bits)); break;
    case GgufType::UINT32: case GgufType::INT32: o.put<uint32_t>(uint32_t(bits)); break;
    default: o.put<uint64_t>(bits);
  }
}

void put_array(Out& o, const GgufArray& a) {
  o.put<uint32_t>(uint32_t(a.elem_type));
  o.put<uint64_t>(a.size());
  switch (a.elem_type) {
    case GgufType::FLOAT32: for (double x : a.numbers) o.put<float>(float(x)); break;
    case GgufType::FLOAT64: for (double x : a.numbers) o.put<double>(x); break;
    case GgufType::STRING: for (auto& s : a.strings) o.put_string(s); break;
    case GgufType::ARRAY: for (auto& x : a.arrays) put_array(o, x); break;
    default: for (uint64_t b : a.ints) put_int(o, a.elem_type, b);
  }
}

void put_value(Out& o, const GgufValue& v) {
  o.put<uint32_t>(uint32_t(v.type));
  switch (v.type) {
    case GgufType::FLOAT32: o.put<float>(float(v.number)); break;
    case GgufType::FLOAT64: o.put<double>(v.number); break;
    case GgufType::STRING: o.put_string(v.str); break;
    case GgufType::ARRAY: put_array(o, *v.array); break;
    default: put_int(o, v.type, v.bits);
  }
}

GgufValue scalar(GgufType t, uint64_t bits) {
  GgufValue v;
  v.type = t;
  v.bits = bits;
  return v;
}

}  // namespace

GgufValue GgufWriter::u32(uint32_t v) { return scalar(GgufType::UINT32, v); }

GgufValue GgufWriter::str(std::string s) {
  GgufValue v;
  v.type = GgufType::STRING;
  v.str = std::move(s);
  return v;
}

GgufValue GgufWriter::array(GgufArray a) {
  GgufValue v;
  v.type = GgufType::ARRAY;
  v.array = std::make_shared<GgufArray>(std::move(a));
  return v;
}

void GgufWriter::set(std::string key, GgufValue v) {
  for (auto& [k, old] : kv_)
    if (k == key) {
      old = std::move(v);
      return;
    }
  kv_.emplace_back(std::move(key), std::move(v));
}

void GgufWriter::set_alignment(uint32_t a) {
  alignment_ = a;
  set("general.alignment", u32(a));
}

void GgufWriter::set_u32(std::string key, uint32_t v) { set(std::move(key), u32(v)); }
void GgufWriter::set_i32(std::string key, int32_t v) {
  set(std::move(key), scalar(GgufType::INT32, uint64_t(int64_t(v))));
}
void GgufWriter::set_u64(std::string key, uint64_t v) { set(std::move(key), scalar(GgufType::UINT64, v)); }
void GgufWriter::set_bool(std::string key, bool v) { set(std::move(key), scalar(GgufType::BOOL, v ? 1 : 0)); }
void GgufWriter::set_f32(std::string key, float f) {
  GgufValue v;
  v.type = GgufType::FLOAT32;
  v.number = f;
  set(std::move(key), std::move(v));
}
void GgufWriter::set_string(std::string key, std::string v) { set(std::move(key), str(std::move(v))); }

void GgufWriter::set_string_array(std::string key, std::vector<std::string> v) {
  GgufArray a;
  a.elem_type = GgufType::STRING;
  a.strings = std::move(v);
  set(std::move(key), array(std::move(a)));
}

void GgufWriter::set_i32_array(std::string key, const std::vector<int32_t>& v) {
  GgufArray a;
  a.elem_type = GgufType::INT32;
  for (int32_t x : v) a.ints.push_back(uint64_t(int64_t(x)));
  set(std::move(key), array(std::move(a)));
}

void GgufWriter::set_f32_array(std::string key, const std::vector<float>& v) {
  GgufArray a;
  a.elem_type = GgufType::FLOAT32;
  a.numbers.assign(v.begin(), v.end());
  set(std::move(key), array(std::move(a)));
}

void GgufWriter::add_tensor(std::string name, uint32_t ggml_type, std::vector<uint64_t> ne,
                            std::span<const std::byte> data, std::optional<uint64_t> offset) {
  tensors_.push_back({std::move(name), ggml_type, std::move(ne), {data.begin(), data.end()}, offset});
}

void GgufWriter::add_f32(std::string name, std::vector<uint64_t> ne, std::span<const float> data) {
  add_tensor(std::move(name), GGML_F32, std::move(ne), std::as_bytes(data));
}

std::vector<std::byte> GgufWriter::build() const {
  // A zero alignment only makes sense for broken test files; pad as if it were 1.
  uint64_t align = alignment_ ? alignment_ : 1;
  Out o;
  o.buf.resize(4);
  std::memcpy(o.buf.data(), "GGUF", 4);
  o.put<uint32_t>(version_);
  o.put<uint64_t>(tensors_.size());
  o.put<uint64_t>(kv_.size());
  for (auto& [k, v] : kv_) {
    o.put_string(k);
    put_value(o, v);
  }
  uint64_t next = 0;
  for (auto& t : tensors_) {
    o.put_string(t.name);
    o.put<uint32_t>(uint32_t(t.ne.size()));
    for (uint64_t d : t.ne) o.put<uint64_t>(d);
    o.put<uint32_t>(t.ggml_type);
    if (t.offset) {
      o.put<uint64_t>(*t.offset);
    } else {
      o.put<uint64_t>(next);
      next = (next + t.data.size() + align - 1) / align * align;
    }
  }
  o.pad_to(align);
  for (auto& t : tensors_) {
    if (t.offset) continue;
    o.buf.insert(o.buf.end(), t.data.begin(), t.data.end());
    o.pad_to(align);
  }
  return std::move(o.buf);
}

void GgufWriter::write(const std::string& path) const {
  const std::vector<std::byte> bytes = build();
  write_file_atomic(path, {reinterpret_cast<const char*>(bytes.data()), bytes.size()});
}

}  // namespace upg::io
