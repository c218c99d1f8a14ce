// Golden tests against the Hugging Face `tokenizers` library: the fixture holds ids it
// produced for the same GGUF (scripts/fixtures/reference-tokenizer.py).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/test-paths.h"
#include "upg/io/io.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg {
namespace {

std::string model_path() { return test::default_model_path(); }

class SmolLM2Tokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(model_path())) return;
    // Loaded once: the model's weights come with it and are not needed here.
    ModelSource src = load_model_source(model_path());
    ASSERT_TRUE(src.tokenizer.has_value()) << model_path() << " has no tokenizer";
    tok_ = std::make_unique<Tokenizer>(*src.tokenizer);
  }
  static void TearDownTestSuite() { tok_.reset(); }
  void SetUp() override {
    if (!tok_) GTEST_SKIP() << "model file " << model_path() << " is absent (set UPG_MODEL)";
  }
  static std::unique_ptr<Tokenizer> tok_;
};
std::unique_ptr<Tokenizer> SmolLM2Tokenizer::tok_;

TEST_F(SmolLM2Tokenizer, MatchesReferenceIds) {
  const std::string path = UPG_SOURCE_DIR "/tests/fixtures/tokenizer-smollm2.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing fixture " << path << " (run scripts/fixtures/reference-tokenizer.py)";
  const auto doc = nlohmann::json::parse(in);
  const auto& cases = doc.at("cases");
  ASSERT_GE(cases.size(), 20u);
  for (const auto& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const auto want = c.at("ids").get<std::vector<int32_t>>();
    const auto got = tok_->encode(text);
    EXPECT_EQ(got, want) << "text: " << text;
    EXPECT_EQ(tok_->decode(got), text);
  }
}

TEST_F(SmolLM2Tokenizer, VocabFacts) {
  EXPECT_EQ(tok_->vocab_size(), 49152);
  EXPECT_EQ(tok_->token_id("<|im_start|>"), 1);
  EXPECT_EQ(tok_->token_id("<|im_end|>"), 2);
  EXPECT_TRUE(tok_->is_special(1));
  EXPECT_FALSE(tok_->is_special(17));
  EXPECT_EQ(tok_->eos_id(), 2);
  EXPECT_FALSE(tok_->add_bos());
  EXPECT_EQ(tok_->stop_ids(), (std::vector<int32_t>{2}));
  // Without parse_special, the markers are encoded as ordinary text.
  const auto plain = tok_->encode("<|im_start|>", false, false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(tok_->decode(plain), "<|im_start|>");
}

TEST_F(SmolLM2Tokenizer, ChatTemplateFromGguf) {
  const std::string prompt = tok_->apply_chat_template({{"user", "Hi"}});
  EXPECT_EQ(prompt,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  const auto ids = tok_->encode(prompt);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(ids.back(), 198);  // "\n" after "assistant"
}

TEST_F(SmolLM2Tokenizer, EncodesAHundredKilobytesOfEnglish) {
  // Deterministic pseudo-prose; the word cache keeps this far below a second.
  const char* sentences[] = {
      "The committee reviewed the proposal in detail before voting. ",
      "In 1969, astronauts landed on the Moon and returned safely to Earth. ",
      "She said, \"It's not about the destination; it's about the journey.\" ",
      "Prices rose by 3.5% over the quarter, according to the latest report.\n",
      "Machine learning models require careful evaluation on held-out data. ",
      "They'll arrive tomorrow morning, weather permitting, around 9:45.\n\n",
      "Photosynthesis converts light energy into chemical energy stored in sugars. ",
      "A well-written function does one thing, and does it well. ",
  };
  std::string text;
  uint32_t state = 12345;
  while (text.size() < 100 * 1024) {
    state = state * 1664525u + 1013904223u;
    text += sentences[(state >> 16) % std::size(sentences)];
  }
  const auto t0 = std::chrono::steady_clock::now();
  const auto ids = tok_->encode(text);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("encoded %zu bytes into %zu tokens in %.1f ms\n", text.size(), ids.size(), ms);
  EXPECT_GT(ids.size(), text.size() / 8);
  EXPECT_LT(ids.size(), text.size() / 2);
  EXPECT_EQ(tok_->decode(ids), text);
}

}  // namespace
}  // namespace upg
