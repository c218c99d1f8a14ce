// upg-fuzz-seeds: writes the seed corpora of the fuzz harnesses, fuzz/corpus/<harness>/seed-*,
// small valid inputs made with the project's own writers (GgufWriter, write_safetensors,
// UpgWriter, the format encoders, to_tokenizer_json) and the committed test fixtures.
// Old seed-* files are replaced; regression-* files (crashes found earlier) are kept.
//
//   build-fuzz/upg-fuzz-seeds [--smollm2 models/SmolLM2-135M-Instruct.Q4_1.gguf]
//
// With --smollm2 it first rewrites tests/fixtures/tokenizer-small/ (the BPE harness's
// tokenizer: SmolLM2's first 1024 tokens, every byte token, the merges among them).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "io/gguf-reader.h"
#include "io/gguf-tokenizer.h"
#include "io/safetensors-reader.h"
#include "upg/io/gguf-writer.h"
#include "io/safetensors-writer.h"
#include "upg/io/upg-file.h"
#include "upg/tokenizer/byte-level.h"
#include "upg/core/error.h"
#include "upg/core/tensor.h"
#include "upg/format/format.h"
#include "upg/tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using namespace upg;
using namespace upg::io;
using Json = nlohmann::ordered_json;

namespace {

fs::path g_root;  // source tree

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error("cannot read " + p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& p, std::string_view bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) throw Error("cannot write " + p.string());
}

// fuzz/corpus/<harness>/, emptied of its seed-* files.
fs::path corpus(const std::string& harness) {
  fs::path dir = g_root / "fuzz" / "corpus" / harness;
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().starts_with("seed-")) fs::remove(e.path());
  return dir;
}

std::vector<std::byte> pattern_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> b(n);
  for (auto& x : b) x = std::byte(rng() & 0xff);
  return b;
}

// Finite small floats as bytes, so F16/BF16/F32 data holds no NaN patterns by accident.
std::vector<std::byte> float_bytes(DType t, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> b(dtype_bytes(t, n));
  for (int64_t i = 0; i < n; ++i) {
    const float f = float(int(rng() % 200) - 100) / 64.0f;
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if (t == DType::F32) {
      std::memcpy(b.data() + 4 * i, &f, 4);
    } else if (t == DType::BF16) {
      const uint16_t h = uint16_t(u >> 16);
      std::memcpy(b.data() + 2 * i, &h, 2);
    } else {  // F16: the values above are exact in half precision
      const uint32_t sign = (u >> 16) & 0x8000, exp = (u >> 23) & 0xff, man = u & 0x7fffff;
      const uint16_t h = f == 0 ? uint16_t(sign) : uint16_t(sign | ((exp - 112) << 10) | (man >> 13));
      std::memcpy(b.data() + 2 * i, &h, 2);
    }
  }
  return b;
}

// ---- tokenizer-small (from SmolLM2) ----

void make_small_tokenizer(const std::string& model) {
  const GgufFile g = GgufFile::open(model);
  auto full = gguf_tokenizer_spec(g);
  if (!full) throw Error(model + ": no tokenizer");
  constexpr size_t kVocab = 1024;
  TokenizerSpec s = *full;
  s.vocab.resize(kVocab);
  if (!s.token_types.empty()) s.token_types.resize(kVocab);
  std::set<std::string, std::less<>> kept(s.vocab.begin(), s.vocab.end());
  // Every byte keeps a token of its own (rare bytes sit far down the vocab), so any text
  // can be encoded and decoded back.
  for (int b = 0; b < 256; ++b) {
    const std::string t = tokenizer::bytes_to_byte_level(std::string(1, char(b)));
    if (kept.insert(t).second) {
      s.vocab.push_back(t);
      if (!s.token_types.empty()) s.token_types.push_back(1);
    }
  }
  s.merges.clear();
  for (const std::string& m : full->merges) {
    const size_t sp = m.find(' ');
    const std::string l = m.substr(0, sp), r = m.substr(sp + 1);
    if (kept.count(l) && kept.count(r) && kept.count(l + r)) s.merges.push_back(m);
  }
  for (int32_t* id : {&s.bos_id, &s.eos_id, &s.pad_id, &s.unk_id})
    if (*id >= int32_t(kVocab)) *id = -1;
  // tokenizer.json lists only the tokenizer_config.json side's special tokens as added
  // tokens; keep those below the cut.
  std::erase_if(s.added_tokens, [&](const TokenizerSpec::Added& a) { return a.id >= int32_t(kVocab); });
  const fs::path dir = g_root / "tests" / "fixtures" / "tokenizer-small";
  write_file(dir / "tokenizer.json", to_tokenizer_json(s));
  write_file(dir / "tokenizer_config.json", to_tokenizer_config_json(s));
  std::printf("tokenizer-small: %zu tokens, %zu merges\n", s.vocab.size(), s.merges.size());
}

// ---- bpe-tokenizer-fuzz and chat-template-fuzz ----

void bpe_seeds() {
  const fs::path dir = corpus("bpe-tokenizer-fuzz");
  const Json cases = Json::parse(read_file(g_root / "tests" / "fixtures" / "tokenizer-smollm2.json"));
  int i = 0;
  for (const auto& c : cases["cases"]) {
    const std::string text = c["text"].get<std::string>();
    if (text.size() > 512) continue;
    std::string seed(1, char(i % 8));  // the flags byte cycles through every option
    seed += text;
    char name[32];
    std::snprintf(name, sizeof name, "seed-%03d", i++);
    write_file(dir / name, seed);
  }
}

// Every committed model template (tests/fixtures/chat-templates/) over a chat with a
// system turn, with and without a generation prompt and tools, plus a few small ones.
void chat_template_seeds() {
  const fs::path dir = corpus("chat-template-fuzz");
  const std::string chat = std::string("system\0Be brief.\0user\0Hi\0assistant\0Hello!\0user\0Bye", 49);
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(g_root / "tests" / "fixtures" / "chat-templates"))
    if (e.path().extension() == ".jinja") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  int i = 0;
  for (const fs::path& f : files) {
    const std::string flags(1, char(i % 4));  // generation prompt and tools in turn
    write_file(dir / ("seed-" + f.stem().string()), flags + read_file(f) + '\0' + chat);
    ++i;
  }
  const std::pair<const char*, std::string> small[] = {
      {"seed-loop", "{% for m in messages %}{{ loop.index }}{{ m.role | upper }}{{ m['content'] | trim }}{% endfor %}"},
      {"seed-namespace", "{% set ns = namespace(n=0) %}{% for m in messages if m.role == 'user' %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}"},
      {"seed-macro", "{% macro f(x, y='-') %}{{ x ~ y }}{% endmacro %}{{ f(messages | length) }}{{ messages | tojson(indent=2) }}"},
      {"seed-raise", "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}"},
      {"seed-slices", "{{ messages[1:][::-1] | map(attribute='content') | join(', ') }}{{ 'a,b'.split(',') }}"},
  };
  for (const auto& [name, text] : small) write_file(dir / name, std::string(1, '\1') + text + '\0' + chat);
}

// ---- tokenizer-json-fuzz ----

Json byte_vocab(int first = 0, int last = 255) {
  Json v = Json::object();
  int id = 0;
  for (int b = first; b <= last; ++b) v[tokenizer::bytes_to_byte_level(std::string(1, char(b)))] = id++;
  return v;
}

void tokenizer_json_seeds() {
  const fs::path dir = corpus("tokenizer-json-fuzz");
  auto save = [&](const char* name, const Json& tok, const Json& cfg) {
    std::string s = tok.dump();
    if (!cfg.is_null()) s += '\0' + cfg.dump();
    write_file(dir / name, s);
  };
  // Plain byte-level BPE, merges as strings, added tokens, a config with every field.
  {
    Json vocab = byte_vocab();
    vocab["\xC4\xA0t"] = 256;
    vocab["he"] = 257;
    vocab["\xC4\xA0the"] = 258;
    vocab["<|im_start|>"] = 259;
    vocab["<|im_end|>"] = 260;
    Json tok = {{"version", "1.0"},
                {"normalizer", nullptr},
                {"model",
                 {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"\xC4\xA0 t", "h e", "\xC4\xA0t he"}},
                  {"dropout", nullptr}, {"ignore_merges", false}}},
                {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
                {"decoder", {{"type", "ByteLevel"}}},
                {"added_tokens",
                 {{{"id", 259}, {"content", "<|im_start|>"}, {"special", true}},
                  {{"id", 260}, {"content", "<|im_end|>"}, {"special", true}}}}};
    Json cfg = {{"bos_token", "<|im_start|>"},
                {"eos_token", {{"content", "<|im_end|>"}, {"lstrip", false}}},
                {"pad_token", nullptr},
                {"add_bos_token", true},
                {"chat_template", "{{'<|im_start|>' + message['content'] + '<|im_end|>'}}"}};
    save("seed-byte-level", tok, cfg);
  }
  // Llama-3 style: Sequence of Split(Regex) and ByteLevel(use_regex=false), merges as
  // pairs, ignore_merges, a TemplateProcessing bos, a list of named chat templates.
  {
    Json vocab = byte_vocab();
    vocab["in"] = 256;
    vocab["ing"] = 257;
    vocab["<|begin_of_text|>"] = 258;
    Json tok = {
        {"model",
         {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array({Json::array({"i", "n"}), Json::array({"in", "g"})})}, {"ignore_merges", true}}},
        {"pre_tokenizer",
         {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"},
             {"pattern", {{"Regex", R"((?i:'s|'t)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+|\s+)"}}},
             {"behavior", "Isolated"},
             {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
        {"post_processor",
         {{"type", "TemplateProcessing"},
          {"single", {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}}}}}},
        {"decoder", {{"type", "ByteLevel"}}},
        {"added_tokens", {{{"id", 258}, {"content", "<|begin_of_text|>"}, {"special", true}}}}};
    Json cfg = {{"bos_token", "<|begin_of_text|>"},
                {"chat_template", {{{"name", "default"}, {"template", "<|im_start|>{{ m }}<|im_sep|>"}},
                                   {{"name", "tool_use"}, {"template", "x"}}}}};
    save("seed-llama3", tok, cfg);
    save("seed-llama3-no-config", tok, nullptr);
  }
  // SmolLM2 style: NFC, Sequence[Digits, ByteLevel], String split, an unk token, a part
  // of the byte range only.
  {
    Json vocab = byte_vocab(32, 126);
    vocab["<unk>"] = 95;
    vocab["12"] = 96;
    Json tok = {{"normalizer", {{"type", "NFC"}}},
                {"model", {{"vocab", vocab}, {"merges", {"1 2"}}, {"unk_token", "<unk>"}}},
                {"pre_tokenizer",
                 {{"type", "Sequence"},
                  {"pretokenizers",
                   {{{"type", "Digits"}, {"individual_digits", false}},
                    {{"type", "Split"}, {"pattern", {{"String", "."}}}, {"behavior", "Isolated"}},
                    {{"type", "ByteLevel"}, {"add_prefix_space", false}}}}}},
                {"decoder", {{"type", "ByteLevel"}}}};
    save("seed-smollm2-style", tok, Json{{"unk_token", "<unk>"}, {"add_bos_token", false}});
  }
}

// ---- hf-config-fuzz ----

void hf_config_seeds() {
  const fs::path dir = corpus("hf-config-fuzz");
  for (const char* m : {"llama", "mistral", "qwen2", "phi3"}) {
    const fs::path d = g_root / "tests" / "fixtures" / "tiny" / m;
    write_file(dir / (std::string("seed-tiny-") + m), read_file(d / "config.json"));
    write_file(dir / (std::string("seed-tiny-") + m + "-generation"), read_file(d / "generation_config.json"));
  }
  const Json llama3 = {{"architectures", {"LlamaForCausalLM"}},
                       {"model_type", "llama"},
                       {"hidden_size", 64},
                       {"intermediate_size", 128},
                       {"num_hidden_layers", 2},
                       {"num_attention_heads", 4},
                       {"num_key_value_heads", 2},
                       {"head_dim", 16},
                       {"vocab_size", 256},
                       {"max_position_embeddings", 131072},
                       {"rms_norm_eps", 1e-5},
                       {"rope_theta", 500000.0},
                       {"rope_scaling",
                        {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192}}},
                       {"tie_word_embeddings", true},
                       {"bos_token_id", 0},
                       {"eos_token_id", {1, 2}}};
  write_file(dir / "seed-llama3-rope", llama3.dump(2));
  std::vector<float> shortf, longf;
  for (int i = 0; i < 4; ++i) {
    shortf.push_back(1.0f + 0.25f * float(i));
    longf.push_back(2.0f + 0.5f * float(i));
  }
  const Json phi3 = {{"architectures", {"Phi3ForCausalLM"}},
                     {"model_type", "phi3"},
                     {"hidden_size", 64},
                     {"intermediate_size", 128},
                     {"num_hidden_layers", 2},
                     {"num_attention_heads", 4},
                     {"num_key_value_heads", 4},
                     {"vocab_size", 256},
                     {"max_position_embeddings", 4096},
                     {"original_max_position_embeddings", 512},
                     {"partial_rotary_factor", 0.5},
                     {"rope_scaling", {{"type", "longrope"}, {"short_factor", shortf}, {"long_factor", longf}}},
                     {"sliding_window", 2047},
                     {"hidden_act", "silu"},
                     {"eos_token_id", 3}};
  write_file(dir / "seed-phi3-longrope", phi3.dump(2));
}

// ---- gguf-reader-fuzz ----

void add_quant(GgufWriter& w, const std::string& name, uint32_t ggml_type, std::vector<uint64_t> ne, uint32_t seed) {
  const DType t = *ggml_to_dtype(ggml_type);
  int64_t n = 1;
  for (uint64_t d : ne) n *= int64_t(d);
  const auto bytes = dtype_is_quantized(t) ? pattern_bytes(dtype_bytes(t, n), seed) : float_bytes(t, n, seed);
  w.add_tensor(name, ggml_type, std::move(ne), bytes);
}

void gguf_tokenizer(GgufWriter& w, const char* pre) {
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", pre);
  w.set_string_array("tokenizer.ggml.tokens",
                     {"<|im_start|>", "<|im_end|>", "a", "b", "ab", "\xC4\xA0", "\xC4\xA0" "ab", "1", "<tool>"});
  w.set_i32_array("tokenizer.ggml.token_type", {3, 3, 1, 1, 1, 1, 1, 1, 4});
  w.set_string_array("tokenizer.ggml.merges", {"a b", "\xC4\xA0 ab"});
  w.set_u32("tokenizer.ggml.bos_token_id", 0);
  w.set_u32("tokenizer.ggml.eos_token_id", 1);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_string("tokenizer.chat_template", "{{'<|im_start|>' + message['role'] + '\n' + message['content']}}");
}

void gguf_arch(GgufWriter& w, const std::string& arch, uint32_t hidden, uint32_t heads, uint32_t kv_heads,
               uint32_t ffn) {
  w.set_string("general.architecture", arch);
  w.set_string("general.name", "fuzz seed");
  w.set_u32("general.file_type", 7);
  w.set_u32(arch + ".context_length", 256);
  w.set_u32(arch + ".embedding_length", hidden);
  w.set_u32(arch + ".block_count", 1);
  w.set_u32(arch + ".feed_forward_length", ffn);
  w.set_u32(arch + ".attention.head_count", heads);
  w.set_u32(arch + ".attention.head_count_kv", kv_heads);
  w.set_f32(arch + ".attention.layer_norm_rms_epsilon", 1e-6f);
  w.set_f32(arch + ".rope.freq_base", 10000.0f);
}

void gguf_seeds() {
  const fs::path dir = corpus("gguf-reader-fuzz");
  // llama, v3: every block type the dequantizer knows, Q/K tensors that get un-permuted.
  {
    GgufWriter w(3);
    gguf_arch(w, "llama", 32, 4, 2, 64);
    gguf_tokenizer(w, "smollm");
    add_quant(w, "token_embd.weight", GGML_Q8_0, {32, 9}, 1);
    add_quant(w, "blk.0.attn_q.weight", GGML_Q4_0, {32, 32}, 2);
    add_quant(w, "blk.0.attn_k.weight", GGML_F16, {32, 16}, 3);
    add_quant(w, "blk.0.attn_v.weight", GGML_Q4_1, {32, 16}, 4);
    add_quant(w, "blk.0.attn_output.weight", GGML_BF16, {32, 4}, 5);
    add_quant(w, "blk.0.ffn_gate.weight", GGML_Q4_K, {256, 1}, 6);
    add_quant(w, "blk.0.ffn_up.weight", GGML_Q5_K, {256, 1}, 7);
    add_quant(w, "blk.0.ffn_down.weight", GGML_Q6_K, {256, 1}, 8);
    add_quant(w, "blk.0.attn_norm.weight", GGML_F32, {32}, 9);
    add_quant(w, "output_norm.weight", GGML_F32, {32}, 10);
    const auto b = w.build();
    write_file(dir / "seed-llama-v3.gguf", {reinterpret_cast<const char*>(b.data()), b.size()});
  }
  // qwen2, v2, alignment 64, q/k/v biases, arrays of arrays and every scalar type.
  {
    GgufWriter w(2);
    w.set_alignment(64);
    gguf_arch(w, "qwen2", 16, 2, 1, 32);
    gguf_tokenizer(w, "qwen2");
    w.set("general.tags", GgufWriter::str("x"));
    GgufArray inner;
    inner.elem_type = GgufType::INT16;
    inner.ints = {1, uint64_t(-2)};
    GgufArray outer;
    outer.elem_type = GgufType::ARRAY;
    outer.arrays = {inner, inner};
    w.set("general.nested", GgufWriter::array(outer));
    w.set_u64("general.u64", 1ull << 40);
    w.set_i32("general.i32", -5);
    w.set_f32_array("general.floats", {0.5f, -1.0f});
    add_quant(w, "token_embd.weight", GGML_F32, {16, 9}, 11);
    add_quant(w, "blk.0.attn_q.weight", GGML_F16, {16, 16}, 12);
    add_quant(w, "blk.0.attn_q.bias", GGML_F32, {16}, 13);
    add_quant(w, "blk.0.attn_k.bias", GGML_F32, {8}, 14);
    add_quant(w, "output.weight", GGML_Q8_0, {32, 4}, 15);
    const auto b = w.build();
    write_file(dir / "seed-qwen2-v2.gguf", {reinterpret_cast<const char*>(b.data()), b.size()});
  }
  // phi3 with linear rope scaling, a llama-bpe tokenizer, no tensors.
  {
    GgufWriter w(3);
    gguf_arch(w, "phi3", 32, 4, 4, 64);
    w.set_u32("phi3.rope.dimension_count", 4);
    w.set_string("phi3.rope.scaling.type", "linear");
    w.set_f32("phi3.rope.scaling.factor", 2.0f);
    gguf_tokenizer(w, "llama-bpe");
    const auto b = w.build();
    write_file(dir / "seed-phi3-no-tensors.gguf", {reinterpret_cast<const char*>(b.data()), b.size()});
  }
  write_file(dir / "seed-quant-types.gguf", read_file(g_root / "tests" / "fixtures" / "gguf" / "quant-types.gguf"));
}

// ---- safetensors-reader-fuzz ----

void safetensors_seeds(const fs::path& tmp) {
  const fs::path dir = corpus("safetensors-reader-fuzz");
  struct Owned {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<std::byte> bytes;
  };
  std::vector<Owned> owned = {
      {"a.f32", DType::F32, {2, 3}, float_bytes(DType::F32, 6, 1)},
      {"b.bf16", DType::BF16, {3}, float_bytes(DType::BF16, 3, 2)},
      {"c.u8", DType::U8, {5}, pattern_bytes(5, 3)},  // leaves the next tensor misaligned
      {"d.f16", DType::F16, {2, 2}, float_bytes(DType::F16, 4, 4)},
      {"e.i64", DType::I64, {1}, pattern_bytes(8, 5)},
      {"f.bool", DType::BOOL, {2}, {std::byte(0), std::byte(1)}},
      {"g.empty", DType::F32, {0, 4}, {}},
      {"h.scalar", DType::I32, {}, pattern_bytes(4, 6)},
  };
  std::vector<TensorView> views;
  for (const auto& o : owned) {
    TensorView v;
    v.name = o.name;
    v.dtype = o.dtype;
    v.shape = o.shape;
    v.data = o.bytes.data();
    v.nbytes = o.bytes.size();
    views.push_back(v);
  }
  const fs::path p = tmp / "a.safetensors";
  write_safetensors(p.string(), views, {{"format", "pt"}, {"note", "fuzz seed"}});
  write_file(dir / "seed-dtypes.safetensors", read_file(p));
  write_safetensors(p.string(), {}, {});
  write_file(dir / "seed-empty.safetensors", read_file(p));
}

// ---- compressed-tensors-fuzz ----

// config.json, NUL, a safetensors file of one module of each fixture checkpoint (the
// package's own output: tests/fixtures/compressed-tensors), small enough for -max_len.
void compressed_tensors_seeds(const fs::path& tmp) {
  const fs::path dir = corpus("compressed-tensors-fuzz");
  const std::string module = "model.layers.0.self_attn.k_proj.";
  for (const char* v : {"w4-mixed", "w4-channel", "w8-channel", "sparse24", "sparse24-w8", "bitmask-w8"}) {
    const fs::path src = g_root / "tests" / "fixtures" / "compressed-tensors" / v;
    const SafetensorsFile st = read_safetensors((src / "model.safetensors").string());
    std::vector<TensorView> keep;
    for (const TensorView& t : st.tensors)
      if (t.name.starts_with(module)) keep.push_back(t);
    const fs::path p = tmp / "ct.safetensors";
    write_safetensors(p.string(), keep);
    write_file(dir / (std::string("seed-") + v), read_file(src / "config.json") + '\0' + read_file(p));
  }
}

// ---- upg-reader-fuzz ----

std::vector<format::SparseRow> rows_of(int64_t rows, int64_t cols, int every, format::Encoding enc, int k) {
  std::vector<format::SparseRow> out(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    auto& row = out[size_t(r)];
    row.scale = 0.01f * float(r + 1);
    for (int64_t c = r % every; c < cols; c += every) {
      row.cols.push_back(uint32_t(c));
      const int32_t i = int32_t(c + r) % 7 + 1;
      row.codes.push_back(enc == format::Encoding::Int8      ? (c % 2 ? i : -i)
                          : enc == format::Encoding::Prime    ? (i | (c % 2 ? format::kPrimeSignBit : 0))
                                                               : i % (k - 1) + 1);
    }
  }
  return out;
}

std::vector<format::SparseRow> nm_rows_of(int64_t rows, int64_t cols, int n, int m) {
  std::vector<format::SparseRow> out(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    auto& row = out[size_t(r)];
    row.scale = 0.02f * float(r + 1);
    for (int64_t g = 0; g < cols / m; ++g) {
      const int keep = (r + g) % 3 == 2 ? n - 1 : n;
      for (int i = 0; i < keep; ++i) {
        row.cols.push_back(uint32_t(g * m + (i * 2 + r) % m));
        row.codes.push_back(int32_t(i + 1));
      }
      std::sort(row.cols.end() - keep, row.cols.end());
    }
  }
  return out;
}

void upg_seeds(const fs::path& tmp) {
  using format::Encoding;
  const fs::path dir = corpus("upg-reader-fuzz");
  const char* config = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
  "num_key_value_heads": 1, "vocab_size": 3, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
  "tie_word_embeddings": true, "bos_token_id": 0, "eos_token_id": 1})";
  UpgHeader h;
  h.config_json = config;
  h.compression_json = R"({"tool": "upg fuzz seed", "pattern": "mixed", "sparsity": 0.5})";
  h.tokenizer_json = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
  "merges": ["a b"]}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
  "decoder": {"type": "ByteLevel"}})";
  h.tokenizer_config_json = R"({"bos_token": "a", "eos_token": "b", "chat_template": "{{ x }}"})";
  std::vector<float> codebook(8);
  for (int i = 1; i < 8; ++i) codebook[size_t(i)] = float(i - 4) / 8.0f;
  const std::vector<float> norm(8, 1.0f);

  const fs::path p = tmp / "a.upg";
  {
    UpgWriter w(p.string(), h);
    w.add_dense("model.norm.weight", DType::F32, {8}, std::as_bytes(std::span(norm)));
    // 300 columns with a row keeping only 0 and 299: a gap over 255 needs a padding entry.
    auto wide = rows_of(2, 300, 50, Encoding::Int8, 0);
    wide[0].cols = {0, 299};
    wide[0].codes = {3, -4};
    w.add_compressed("model.layers.0.self_attn.q_proj.weight", format::encode_mdcsr(300, wide, Encoding::Int8));
    w.add_compressed("model.layers.0.self_attn.k_proj.weight",
                     format::encode_mdcsr(24, rows_of(3, 24, 3, Encoding::Prime, 0), Encoding::Prime));
    w.add_compressed("model.layers.0.self_attn.v_proj.weight",
                     format::encode_mdcsr(24, rows_of(2, 24, 2, Encoding::Codebook, 8), Encoding::Codebook, codebook));
    w.add_compressed("model.layers.0.mlp.gate_proj.weight", format::encode_nm(16, nm_rows_of(3, 16, 2, 4), 2, 4));
    w.add_compressed("model.layers.0.mlp.up_proj.weight", format::encode_nm(24, nm_rows_of(2, 24, 4, 8), 4, 8));
    w.finish();
  }
  write_file(dir / "seed-every-kind.upg", read_file(p));
  {
    UpgHeader bare;
    bare.config_json = config;
    UpgWriter w(p.string(), bare);
    w.add_compressed("model.layers.0.mlp.down_proj.weight",
                     format::encode_mdcsr(16, rows_of(8, 16, 4, Encoding::Int8, 0), Encoding::Int8));
    w.finish();
  }
  write_file(dir / "seed-minimal.upg", read_file(p));
  {
    // int4 (docs/FORMAT.md 4.3): dense with zero points and a partial last group, and 2:4.
    UpgHeader bare;
    bare.config_json = config;
    UpgWriter w(p.string(), bare);
    std::vector<format::SparseRow> dense(3);
    std::vector<format::Int4Groups> dense_groups(3, {{fp32_to_fp16(0.5f), fp32_to_fp16(0.25f)}, {8, 3}});
    for (auto& row : dense)
      for (uint32_t c = 0; c < 40; ++c) row.cols.push_back(c), row.codes.push_back(int32_t(c % 16));
    w.add_compressed("model.layers.0.self_attn.q_proj.weight", format::encode_dense_int4(40, dense, dense_groups, 32));
    auto nm = nm_rows_of(2, 32, 2, 4);
    for (auto& row : nm)
      for (int32_t& c : row.codes) c = c % 16;
    const std::vector<format::Int4Groups> nm_groups(2, {{fp32_to_fp16(0.125f)}, {}});
    w.add_compressed("model.layers.0.mlp.gate_proj.weight", format::encode_nm_int4(32, nm, nm_groups, 2, 4, 32));
    w.finish();
  }
  write_file(dir / "seed-int4.upg", read_file(p));
  {
    // int3 and int2 (docs/FORMAT.md 4.3, bit planes): with zero points and a partial last
    // vector of 64, and symmetric in groups of 64.
    UpgHeader bare;
    bare.config_json = config;
    UpgWriter w(p.string(), bare);
    for (int bits : {3, 2}) {
      std::vector<format::SparseRow> rows(3);
      for (auto& row : rows)
        for (uint32_t c = 0; c < 70; ++c) row.cols.push_back(c), row.codes.push_back(int32_t(c % (1u << bits)));
      const bool zeros = bits == 3;
      const int group = zeros ? 32 : 64;
      const std::vector<format::Int4Groups> groups(
          3, {std::vector<uint16_t>(format::int4_groups(70, group), fp32_to_fp16(0.25f)),
              zeros ? std::vector<uint8_t>{4, 1, 7} : std::vector<uint8_t>{}});
      w.add_compressed(bits == 3 ? "model.layers.0.mlp.up_proj.weight" : "model.layers.0.mlp.down_proj.weight",
                       format::encode_dense_grouped(format::grouped_encoding(bits), 70, rows, groups, group));
    }
    w.finish();
  }
  write_file(dir / "seed-lowbit.upg", read_file(p));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const char* env = std::getenv("UPG_SOURCE_DIR");
    g_root = env && *env ? env : UPG_SOURCE_DIR;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--smollm2" && i + 1 < argc) {
        make_small_tokenizer(argv[++i]);
      } else {
        std::fprintf(stderr, "usage: %s [--smollm2 SmolLM2-135M-Instruct.Q4_1.gguf]\n", argv[0]);
        return 2;
      }
    }
    const fs::path tmp = fs::temp_directory_path() / ("upg-fuzz-seeds-" + std::to_string(::getpid()));
    fs::create_directories(tmp);
    bpe_seeds();
    chat_template_seeds();
    tokenizer_json_seeds();
    hf_config_seeds();
    gguf_seeds();
    safetensors_seeds(tmp);
    compressed_tensors_seeds(tmp);
    upg_seeds(tmp);
    fs::remove_all(tmp);
    std::printf("seeds written under %s\n", (g_root / "fuzz" / "corpus").c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "upg-fuzz-seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
