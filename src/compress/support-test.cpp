// The small helpers: SHA-256 against published vectors, the progress bar, the report.
#include <gtest/gtest.h>

#include "compress/progress.h"
#include "compress/report.h"
#include "compress/sha256.h"

namespace upg::compress {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // Fed in odd-sized pieces, the same digest as in one go.
  std::string million(1000000, 'a');
  Sha256 h;
  for (size_t i = 0; i < million.size(); i += 997) h.update(million.data() + i, std::min<size_t>(997, million.size() - i));
  EXPECT_EQ(h.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Progress, Bar) {
  EXPECT_EQ(Progress::bar(0, 10, 10), "[          ]");
  EXPECT_EQ(Progress::bar(5, 10, 10), "[#####     ]");
  EXPECT_EQ(Progress::bar(10, 10, 10), "[##########]");
  EXPECT_EQ(Progress::bar(3, 0, 4), "[####]");
  EXPECT_EQ(Progress::eta(30.0, 3, 10), " ETA 70s");
  EXPECT_EQ(Progress::eta(30.0, 0, 10), "");
  EXPECT_EQ(Progress::eta(30.0, 10, 10), "");
}

TEST(Progress, LineModeWritesOneLinePerTensor) {
  char buf[512] = {};
  std::FILE* f = fmemopen(buf, sizeof buf, "w");
  Progress p(2, f, 0);
  p.step(1, "a.weight");
  p.step(2, "b.weight");
  p.finish();
  std::fclose(f);
  const std::string s = buf;
  EXPECT_NE(s.find("1/2"), std::string::npos);
  EXPECT_NE(s.find(" ETA "), std::string::npos);
  EXPECT_NE(s.find("b.weight\n"), std::string::npos);
  EXPECT_EQ(s.find('\r'), std::string::npos);
}

TEST(Report, AggregatesByKind) {
  CompressReport r;
  r.tensors.push_back({"model.layers.0.mlp.up_proj.weight", "mdcsr", 2, 100, 60, 1.0, 4.0, 50, ""});
  r.tensors.push_back({"model.layers.1.mlp.up_proj.weight", "mdcsr", 2, 100, 60, 0.0, 4.0, 50, ""});
  r.tensors.push_back({"model.norm.weight", "dense", 1, 10, 40, 0, 1, 0, ""});
  r.output_bytes = 200;
  r.source_bytes = 400;
  const std::string s = format_report(r, false);
  EXPECT_NE(s.find("up_proj"), std::string::npos);
  EXPECT_NE(s.find("norm/bias"), std::string::npos);
  EXPECT_NE(s.find("0.35355"), std::string::npos);  // sqrt((1 + 0) / (4 + 4)): errors pool, not average
  EXPECT_NE(s.find("ratio vs BF16 2.10x"), std::string::npos);
  EXPECT_NE(s.find("vs source 2.00x"), std::string::npos);
  EXPECT_EQ(tensor_kind("model.layers.0.self_attn.qkv_proj.weight", 2), "qkv_proj");
  EXPECT_EQ(tensor_kind("lm_head.weight", 2), "lm_head");
}

TEST(Report, CountsTheChosenSettings) {
  CompressReport r;
  r.tensors.push_back({"model.layers.0.mlp.up_proj.weight", "dense", 2, 100, 60, 1.0, 4.0, 100, "int4-g32-zp"});
  r.tensors.push_back({"model.layers.1.mlp.up_proj.weight", "dense", 2, 100, 60, 1.0, 4.0, 100, "int4-g32-zp"});
  r.tensors.push_back({"model.layers.2.mlp.up_proj.weight", "int8-dense", 2, 100, 104, 0.1, 4.0, 0, "int8"});
  const std::string kinds = format_report(r, false), each = format_report(r, true);
  EXPECT_NE(kinds.find("mixed (int4-g32-zp x2, int8 x1)"), std::string::npos) << kinds;
  EXPECT_NE(each.find("int8-dense (int8)\n"), std::string::npos) << each;
}

}  // namespace
}  // namespace upg::compress
