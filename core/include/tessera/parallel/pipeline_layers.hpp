// Which transformer layers each pipeline stage and model chunk holds, split as Megatron-Core splits
// them (megatron/core/transformer/transformer_block.py: get_num_layers_to_build and
// TransformerBlock._get_layer_offset).
//
// Evenly, each of the pp·vpp model chunks holds num_layers / (pp·vpp) layers. With uneven stages
// (ParallelSizes::first_stage_layers / last_stage_layers, Megatron-LM's
// --decoder-first-pipeline-num-layers / --decoder-last-pipeline-num-layers) the first and/or last
// stage holds the given number and the stages between share the rest evenly. A stage's layers split
// evenly over its vpp chunks, and the model's layers run round by round, as the interleaved schedule
// runs the chunks: chunk 0 of stages 0, 1, …, pp−1, then chunk 1 of each, and so on. Example: 12
// layers, pp 3, vpp 2, 2 on the first stage and 6 on the last: stage 0 holds layers 0 and 6, stage 1
// layers 1–2 and 7–8, stage 2 layers 3–5 and 9–11.
//
// With the embedding and/or the loss counted in the split (ParallelSizes::embedding_in_split /
// loss_in_split, Megatron-Core's account_for_embedding/loss_in_pipeline_split), num_layers + 1 (or
// + 2) "layers" split evenly into the pp·vpp chunks, round by round as above, and the very first
// chunk (stage 0, chunk 0) holds one transformer layer fewer, the embedding taking its place, as the
// very last (stage pp−1, chunk vpp−1) does for the loss. A chunk may then hold no transformer layer.
// Example: 6 layers, pp 4, both counted: the stages hold 1, 2, 2 and 1 layers.
#pragma once
#include <cstdint>
#include <string>

#include "tessera/parallel/parallel_layout.hpp"

namespace tessera {

struct LayerRange {
  std::int64_t first = 0;  // the global index of the range's first layer
  std::int64_t count = 0;
};

// Throws ConfigError, naming the keys, unless num_layers splits as above: evenly, pp·vpp must divide
// it; with uneven stages pp must be > 1 without a split rank (encoder-decoder models), the layers
// left after the given stages' must split evenly, at least one each, over the stages between (none
// may be left when every stage is given), and vpp must divide every stage's layers. With the
// embedding or loss counted, pp·vpp must divide the layers counted, and the stages must be even.
// `num_layers_origin` says where model.num_layers was set.
void check_pipeline_layers(std::int64_t num_layers, const ParallelSizes& sizes, const std::string& num_layers_origin);

// The layers of pipeline stage `stage`, over all its model chunks (after check_pipeline_layers).
std::int64_t stage_layers(std::int64_t num_layers, const ParallelSizes& sizes, int stage);
// The layers of model chunk `chunk` of pipeline stage `stage`.
LayerRange chunk_layers(std::int64_t num_layers, const ParallelSizes& sizes, int stage, int chunk);

}  // namespace tessera
