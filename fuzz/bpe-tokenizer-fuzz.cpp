// The byte-level BPE tokenizer on arbitrary text. One Tokenizer is built at start-up from
// tests/fixtures/tokenizer-small/ (the first 1024 tokens of SmolLM2's vocab and the
// merges among them, its control tokens and chat template). The first input byte picks
// the options (bit 0 parse_special, bit 1 add_bos, bit 2 skip_special), the rest is the
// text. Checked beyond "no crash": every id is in the vocab, encoding is deterministic
// (the second call hits the merge cache), decode(encode(text)) gives the text back byte
// for byte (every byte has a token), and the stream decoder gives the same text when it
// is valid UTF-8. The input bytes, read as little-endian 16-bit ids, are also decoded.
#include <cstdint>
#include <fstream>
#include <sstream>

#include "fuzz-util.h"
#include "upg/core/utf8.h"
#include "upg/tokenizer/tokenizer.h"

using namespace upg;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "bpe-tokenizer-fuzz: cannot read %s (set UPG_SOURCE_DIR to the source tree)\n", path.c_str());
    std::abort();
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const Tokenizer& small_tokenizer() {
  static const Tokenizer tok(
      parse_tokenizer_json(read_file(upg::fuzz::source_file("tests/fixtures/tokenizer-small/tokenizer.json")),
                           read_file(upg::fuzz::source_file("tests/fixtures/tokenizer-small/tokenizer_config.json")),
                           "tokenizer-small"));
  return tok;
}

bool valid_utf8(std::string_view s) {
  for (size_t pos = 0; pos < s.size();) {
    const auto seq = upg::next_utf8(s, pos);
    if (seq.kind != upg::Utf8Seq::kValid) return false;
    pos += seq.len;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)small_tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Tokenizer& tok = small_tokenizer();
  const bool parse_special = data[0] & 1, add_bos = data[0] & 2, skip_special = data[0] & 4;
  const std::string_view text = upg::fuzz::as_text(data + 1, size - 1);

  const std::vector<int32_t> ids = tok.encode(text, add_bos, parse_special);
  for (int32_t id : ids) UPG_FUZZ_CHECK(id >= 0 && id < tok.vocab_size());
  UPG_FUZZ_CHECK(tok.encode(text, add_bos, parse_special) == ids);

  std::string expect = add_bos && tok.bos_id() >= 0 ? tok.token_bytes(tok.bos_id()) : std::string();
  expect += text;
  const std::string decoded = tok.decode(ids, false);
  UPG_FUZZ_CHECK(decoded == expect);
  (void)tok.decode(ids, skip_special);

  StreamDecoder stream(tok, skip_special);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.push(id);
  streamed += stream.flush();
  if (!skip_special && valid_utf8(decoded)) UPG_FUZZ_CHECK(streamed == decoded);
  UPG_FUZZ_CHECK(valid_utf8(streamed));

  std::vector<int32_t> raw;
  for (size_t i = 1; i + 1 < size; i += 2) raw.push_back(int32_t(data[i] | data[i + 1] << 8) - 8);
  upg::fuzz::accept_errors([&] { (void)tok.decode(raw, skip_special); });
  for (int32_t id : raw) {
    upg::fuzz::accept_errors([&] {
      (void)tok.token_bytes(id);
      (void)tok.token_text(id);
      (void)tok.is_special(id);
    });
  }
  return 0;
}
