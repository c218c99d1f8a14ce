#include "compress/report.h"

#include <cmath>
#include <map>

#include <fmt/format.h>

namespace upg::compress {

std::string tensor_kind(const std::string& name, int64_t rank) {
  if (rank <= 1) return "norm/bias";
  for (const char* k : {"qkv_proj", "gate_up_proj", "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                        "down_proj", "embed_tokens", "lm_head"})
    if (name.find(std::string(k) + ".") != std::string::npos) return k;
  return "other";
}

namespace {
struct Row {
  std::string label, layout;
  int64_t count = 0, weights = 0, kept = 0;
  uint64_t bytes = 0;
  double err_sq = 0, ref_sq = 0;
  std::map<std::string, int> settings;  // --target-bpw: how many tensors got each setting
  void add(const TensorReport& t) {
    ++count;
    if (!t.setting.empty()) ++settings[t.setting];
    weights += t.weights;
    kept += t.kept;
    bytes += t.bytes;
    err_sq += t.err_sq;
    ref_sq += t.ref_sq;
    if (layout.empty()) layout = t.layout;
    else if (layout != t.layout) layout = "mixed";
  }
};

std::string line(const Row& r) {
  const double bpw = r.weights ? double(r.bytes) / double(r.weights) : 0.0;
  const double err = r.ref_sq > 0 ? std::sqrt(r.err_sq / r.ref_sq) : 0.0;
  const std::string kept = r.kept ? fmt::format("{:.3f}", double(r.kept) / double(r.weights)) : "-";
  std::string settings;
  for (const auto& [name, n] : r.settings)
    settings += fmt::format("{}{}{}", settings.empty() ? " (" : ", ", name, r.count > 1 ? fmt::format(" x{}", n) : "");
  if (!settings.empty()) settings += ")";
  return fmt::format("{:<44} {:>5} {:>10} {:>12.1f} {:>8.3f} {:>6} {:>10.5f}  {}{}\n", r.label, r.count, r.weights,
                     double(r.bytes) / (1 << 20), bpw, kept, err, r.layout, settings);
}
}  // namespace

std::string format_report(const CompressReport& rep, bool per_tensor) {
  std::string out = fmt::format("{:<44} {:>5} {:>10} {:>12} {:>8} {:>6} {:>10}  {}\n", per_tensor ? "tensor" : "kind",
                                "count", "weights", "MiB stored", "B/weight", "kept", "rel.err", "layout");
  std::map<std::string, Row> kinds;
  Row total;
  total.label = "total (tensors)";
  for (const TensorReport& t : rep.tensors) {
    total.add(t);
    if (per_tensor) {
      Row r;
      r.label = t.name;
      r.add(t);
      out += line(r);
    } else {
      const std::string kind = tensor_kind(t.name, t.rank);
      Row& r = kinds[kind];
      r.label = kind;
      r.add(t);
    }
  }
  for (auto& [k, r] : kinds) out += line(r);
  out += line(total);
  const int64_t w = total.weights;
  if (rep.output_bytes && w) {
    out += fmt::format("file: {:.1f} MiB, {:.3f} bytes per weight; ratio vs BF16 {:.2f}x", double(rep.output_bytes) / (1 << 20),
                       double(rep.output_bytes) / double(w), 2.0 * double(w) / double(rep.output_bytes));
    if (rep.source_bytes)
      out += fmt::format(", vs source {:.2f}x (source {:.1f} MiB)", double(rep.source_bytes) / double(rep.output_bytes),
                         double(rep.source_bytes) / (1 << 20));
    out += fmt::format("; {:.1f} s\n", rep.seconds);
  }
  return out;
}

}  // namespace upg::compress
