// What Model::from_file refuses in a file that otherwise parses: weights of layers the
// config does not have, non-finite norms. On copies of the tiny llama fixture.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "io/safetensors-reader.h"
#include "model/test-util.h"
#include "upg/core/error.h"
#include "upg/model/model.h"

namespace upg {
namespace {

namespace fs = std::filesystem;

class TinyCopy : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("upg-load-checks-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::copy(test::fixture("tiny/llama"), dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string error_of() {
    try {
      Model::from_file(dir_.string());
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  }
  fs::path dir_;
};

TEST_F(TinyCopy, LoadsAsIs) { EXPECT_EQ(error_of(), "no error"); }

TEST_F(TinyCopy, TensorsOfLayersPastTheConfigAreAnError) {
  // The second layer's weights were ignored without a word.
  nlohmann::json cfg = test::load_json((dir_ / "config.json").string());
  cfg["num_hidden_layers"] = 1;
  std::ofstream((dir_ / "config.json").string()) << cfg.dump();
  const std::string msg = error_of();
  EXPECT_NE(msg.find("belongs to layer 1, but the config has 1 layers"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'model.layers.1."), std::string::npos) << msg;
}

TEST_F(TinyCopy, NonFiniteNormWeightIsAnError) {
  // A NaN norm made every logit NaN: exit 0 with empty output.
  const std::string path = (dir_ / "model.safetensors").string();
  size_t at = 0;
  {
    io::SafetensorsFile f = io::read_safetensors(path);
    for (const TensorView& t : f.tensors)
      if (t.name == "model.layers.1.post_attention_layernorm.weight") at = size_t(t.data - f.file->data());
  }
  ASSERT_GT(at, 0u);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
  io.seekp(std::streamoff(at + 7 * sizeof(float)));
  io.write(reinterpret_cast<const char*>(&nan), sizeof nan);
  io.close();
  const std::string msg = error_of();
  EXPECT_NE(msg.find("tensor 'model.layers.1.post_attention_layernorm.weight' holds a non-finite value (nan) at index 7"),
            std::string::npos)
      << msg;
}

}  // namespace
}  // namespace upg
