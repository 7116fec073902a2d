// Activation recompute, with Megatron-LM's arguments and rules (the [model] keys
// recompute_granularity, recompute_method, recompute_num_layers, recompute_modules,
// distribute_saved_activations; docs/configs.md):
//   selective  what recompute_modules names is recomputed in backward in every layer (Megatron-Core's
//              list; default ["core_attn"]): "core_attn" the attention core
//              (AttentionOptions::recompute_core), "mlp" the dense MLPs and "moe" the
//              mixture-of-experts layers whole (RecomputedModule), "shared_experts" a mixture's shared
//              expert, "moe_act" its experts' activations (MlpOptions::recompute_activation),
//              "layernorm" the norms' outputs (TransformerLayerOptions::recompute_norms);
//   full       layers are grouped into segments; a recomputed segment keeps only its input in forward
//              and runs its layers' forward again in backward. "uniform" checkpoints groups of
//              num_layers layers (each group's input); "block" checkpoints the first num_layers
//              layers of the chunk one by one and keeps the rest.
// TransformerBlock applies it to the layers of a pipeline stage's model chunk.
#pragma once
#include <cstdint>
#include <vector>

namespace tessera {

class ConfigSection;

// recompute_modules: what selective recompute recomputes.
struct RecomputeModules {
  bool core_attn = true, mlp = false, moe = false, shared_experts = false, moe_act = false, layernorm = false;
};

struct RecomputeOptions {
  enum class Granularity { none, selective, full } granularity = Granularity::none;
  enum class Method { uniform, block } method = Method::uniform;
  std::int64_t num_layers = 1;
  RecomputeModules modules;  // with selective only
  // Megatron-LM's --distribute-saved-activations (full only, tp > 1, not with sequence parallelism):
  // each tp rank keeps 1/tp of a recomputed group's input (a flat chunk) and backward all-gathers it.
  bool distribute_saved_activations = false;
  bool selective(bool RecomputeModules::*module) const {
    return granularity == Granularity::selective && modules.*module;
  }
};

// Reads the keys from a model section and checks them against the layers of each model chunk: a
// ConfigError naming the key and where it was set ("full" needs a method; "selective" and none take
// neither; uniform groups must tile the chunk; block covers at most the chunk; recompute_modules
// only with "selective", its mixture-of-experts names only with num_experts, "shared_experts" only
// with a shared expert, "moe" not with the parts it already recomputes; distribute_saved_activations
// only with "full", tp > 1 and no sequence parallelism).
// `tp` and `sequence_parallel`: the layout's, which distribute_saved_activations needs (tp > 1, no
// sequence parallelism).
RecomputeOptions read_recompute_options(const ConfigSection& s, std::int64_t layers_per_chunk, int tp = 1,
                                        bool sequence_parallel = false);

// A run of consecutive layers of a chunk: layers [first, first + count), recomputed or kept.
struct RecomputeSegment {
  std::size_t first = 0, count = 0;
  bool recompute = false;
};
// How `layers` layers split into segments (one kept segment unless granularity is full).
std::vector<RecomputeSegment> recompute_segments(const RecomputeOptions& o, std::size_t layers);

}  // namespace tessera
