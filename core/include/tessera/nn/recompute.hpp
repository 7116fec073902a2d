// Activation recompute, with Megatron-LM's arguments and rules (the [model] keys
// recompute_granularity, recompute_method, recompute_num_layers; docs/configs.md):
//   selective  every layer's attention core is recomputed in backward (AttentionOptions::recompute_core);
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

struct RecomputeOptions {
  enum class Granularity { none, selective, full } granularity = Granularity::none;
  enum class Method { uniform, block } method = Method::uniform;
  std::int64_t num_layers = 1;
};

// Reads the three keys from a model section and checks them against the layers of each model chunk:
// a ConfigError naming the key and where it was set ("full" needs a method; "selective" and none
// take neither; uniform groups must tile the chunk; block covers at most the chunk).
RecomputeOptions read_recompute_options(const ConfigSection& s, std::int64_t layers_per_chunk);

// A run of consecutive layers of a chunk: layers [first, first + count), recomputed or kept.
struct RecomputeSegment {
  std::size_t first = 0, count = 0;
  bool recompute = false;
};
// How `layers` layers split into segments (one kept segment unless granularity is full).
std::vector<RecomputeSegment> recompute_segments(const RecomputeOptions& o, std::size_t layers);

}  // namespace tessera
