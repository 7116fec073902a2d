// A norm as a factory with a cost (NormSpec): what a transformer layer builds for its ln1/ln2 and
// attention for its q/k norms (qk_layernorm), LayerNorm or RMSNorm, or a plugin's own.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "tessera/nn/module.hpp"
#include "tessera/nn/module_cost.hpp"

namespace tessera {

// Built for `channels` with epsilon `eps`; its cost over `rows` rows of that many channels.
struct NormSpec {
  std::string name;  // for messages and docs: "layer_norm"
  std::function<std::unique_ptr<Module>(const std::string& name, std::int64_t channels, float eps)> build;
  std::function<ModuleCost(std::int64_t channels, std::int64_t rows)> cost;
  // Its module keeps its input for its backward (saved in the step's store): recompute_modules
  // "layernorm" then recomputes its output from that input at no extra memory.
  bool keeps_input = false;
};
NormSpec layer_norm_spec();     // LayerNorm (with bias)
NormSpec layer_norm_1p_spec();  // LayerNorm scaling by 1 + γ, γ from 0 (Megatron's apply_layernorm_1p)
NormSpec rms_norm_spec();    // RMSNorm (weight only; Llama)

}  // namespace tessera
