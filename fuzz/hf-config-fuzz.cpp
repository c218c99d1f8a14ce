// config.json: parse_hf_config and apply_generation_config on the text; a config that
// parses must survive the round trip through to_hf_config_json unchanged.
#include <cstdint>
#include <cstring>

#include "fuzz-util.h"
#include "upg/io/hf-config-writer.h"
#include "io/hf-config.h"
#include "upg/io/io.h"

using namespace upg;
using upg::fuzz::accept_errors;

namespace {

bool same_float(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }
bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!same_float(a[i], b[i])) return false;
  return true;
}

void check_same(const ModelConfig& a, const ModelConfig& b) {
  UPG_FUZZ_CHECK(a.architecture == b.architecture && a.model_type == b.model_type);
  UPG_FUZZ_CHECK(a.hidden_size == b.hidden_size && a.intermediate_size == b.intermediate_size);
  UPG_FUZZ_CHECK(a.num_layers == b.num_layers && a.num_heads == b.num_heads && a.num_kv_heads == b.num_kv_heads);
  UPG_FUZZ_CHECK(a.head_dim == b.head_dim && a.vocab_size == b.vocab_size);
  UPG_FUZZ_CHECK(a.max_position_embeddings == b.max_position_embeddings);
  UPG_FUZZ_CHECK(same_float(a.rms_norm_eps, b.rms_norm_eps) && same_float(a.rope_theta, b.rope_theta));
  UPG_FUZZ_CHECK(same_float(a.partial_rotary_factor, b.partial_rotary_factor));
  const RopeScaling &ra = a.rope_scaling, &rb = b.rope_scaling;
  UPG_FUZZ_CHECK(ra.type == rb.type && same_float(ra.factor, rb.factor));
  UPG_FUZZ_CHECK(same_float(ra.low_freq_factor, rb.low_freq_factor) &&
                 same_float(ra.high_freq_factor, rb.high_freq_factor));
  UPG_FUZZ_CHECK(ra.original_max_position_embeddings == rb.original_max_position_embeddings);
  UPG_FUZZ_CHECK(same_floats(ra.short_factor, rb.short_factor) && same_floats(ra.long_factor, rb.long_factor));
  UPG_FUZZ_CHECK(a.tie_word_embeddings == b.tie_word_embeddings && a.attention_bias == b.attention_bias);
  UPG_FUZZ_CHECK(a.hidden_act == b.hidden_act && a.sliding_window == b.sliding_window);
  UPG_FUZZ_CHECK(a.bos_token_id == b.bos_token_id && a.eos_token_ids == b.eos_token_ids);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = upg::fuzz::as_text(data, size);
  accept_errors([&] {
    const ModelConfig c = parse_hf_config(text, "config.json");
    std::string written;
    try {
      written = io::to_hf_config_json(c);
    } catch (const Error& e) {
      std::fprintf(stderr, "%s\n", e.what());
      upg::fuzz::invariant_failed("to_hf_config_json refuses a config that parse_hf_config accepted");
    }
    try {
      check_same(c, parse_hf_config(written, "written config.json"));
    } catch (const Error& e) {
      std::fprintf(stderr, "%s\n%s\n", e.what(), written.c_str());
      upg::fuzz::invariant_failed("parse_hf_config rejects what to_hf_config_json wrote");
    }
  });
  accept_errors([&] {
    ModelConfig c;
    io::apply_generation_config(text, "generation_config.json", c);
  });
  return 0;
}
