#include "upg/core/utf8.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg {
namespace {

// Moves the longest printable prefix of `pending` into the result: valid sequences as
// they are, invalid bytes as U+FFFD, and (unless `final`) a trailing sequence that is a
// valid-but-incomplete prefix stays in `pending` for the next token.
std::string take_printable(std::string& pending, bool final) {
  std::string out;
  size_t pos = 0;
  while (pos < pending.size()) {
    const auto seq = next_utf8(pending, pos);
    if (seq.kind == Utf8Seq::kValid) {
      out.append(pending, pos, seq.len);
      pos += seq.len;
    } else if (seq.kind == Utf8Seq::kIncomplete && !final) {
      break;
    } else {
      // A byte that cannot continue the text becomes one U+FFFD; a sequence cut short by
      // the end of the stream becomes one in all.
      out += kReplacementChar;
      pos += seq.kind == Utf8Seq::kIncomplete ? seq.len : 1;
    }
  }
  pending.erase(0, pos);
  return out;
}

}  // namespace

std::string StreamDecoder::push(int32_t id) {
  if (skip_special_ && tok_.is_special(id)) return {};
  pending_ += tok_.token_bytes(id);
  return take_printable(pending_, false);
}

std::string StreamDecoder::flush() { return take_printable(pending_, true); }

}  // namespace upg
