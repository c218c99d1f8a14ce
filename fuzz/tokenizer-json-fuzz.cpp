// tokenizer.json (+ tokenizer_config.json after a NUL byte, when there is one):
// parse_tokenizer_json, a Tokenizer built from the spec (pre-tokenizer regexes from the
// file are compiled and run), encode/decode of a fixed text, and the writer's round trip
// (to_tokenizer_json must give a file that parses back).
#include <cstdint>

#include "fuzz-util.h"
#include "upg/tokenizer/tokenizer.h"

using namespace upg;
using upg::fuzz::accept_errors;

namespace {

constexpr std::string_view kSample =
    "Hello world! It's 2024: caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 <|im_start|>user\n  x\t\t<|im_end|>";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = upg::fuzz::split_nul(upg::fuzz::as_text(data, size), 2);
  const std::string_view config = parts.size() > 1 ? parts[1] : std::string_view();
  accept_errors([&] {
    const TokenizerSpec spec = parse_tokenizer_json(parts[0], config, "tokenizer.json");
    const Tokenizer tok(spec);
    const std::vector<int32_t> ids = tok.encode(kSample, true, true);
    (void)tok.decode(ids, true);
    (void)tok.stop_ids();
    accept_errors([&] { (void)tok.apply_chat_template({{"user", "hi"}}); });
    std::string json, cfg;
    accept_errors([&] {
      json = to_tokenizer_json(spec);
      cfg = to_tokenizer_config_json(spec);
    });
    if (json.empty()) return;
    try {
      (void)Tokenizer(parse_tokenizer_json(json, cfg, "written tokenizer.json"));
    } catch (const Error& e) {
      std::fprintf(stderr, "%s\n", e.what());
      upg::fuzz::invariant_failed("parse_tokenizer_json rejects what to_tokenizer_json wrote");
    }
  });
  return 0;
}
