#pragma once
// Architectures are data: each one is a small file stating only what differs from the
// shared Llama-style decoder (how its projections are stored, what it requires of the
// config). Shared code looks an architecture up here and never switches on its name.
#include <string>

#include "model/weights.h"

namespace upg {

struct ArchSpec {
  const char* name;  // Hugging Face class name
  // Binds the attention and MLP projections of one layer; `prefix` is "model.layers.N.".
  void (*bind_layer)(WeightBinder& b, const std::string& prefix, LayerWeights& out);
  // Rejects configs this architecture cannot run (throws upg::Error); may be null.
  void (*check_config)(const ModelConfig& cfg);
};

// Throws upg::Error listing the supported architectures when `name` is unknown.
const ArchSpec& find_arch(const std::string& name);
std::string supported_archs();

// Shared binder for the common layout: separate q/k/v/o and gate/up/down projections,
// q/k/v biases when the config says so.
void bind_separate_projections(WeightBinder& b, const std::string& prefix, LayerWeights& out);

}  // namespace upg
