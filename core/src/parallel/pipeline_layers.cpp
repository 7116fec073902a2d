#include "tessera/parallel/pipeline_layers.hpp"

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera {

namespace {

bool uneven(const ParallelSizes& s) { return s.first_stage_layers > 0 || s.last_stage_layers > 0; }
bool counts_embedding_or_loss(const ParallelSizes& s) { return s.embedding_in_split || s.loss_in_split; }

// "parallel.account_for_embedding_in_pipeline_split = true"
std::string describe_counted(const ParallelSizes& s) {
  std::string keys;
  if (s.embedding_in_split) keys = "parallel.account_for_embedding_in_pipeline_split";
  if (s.loss_in_split) keys += (keys.empty() ? "" : " and ") + std::string("parallel.account_for_loss_in_pipeline_split");
  return keys + " = true";
}

// The layers counted in an even split with the embedding and/or loss counted as one each.
std::int64_t counted_layers(std::int64_t num_layers, const ParallelSizes& s) {
  return num_layers + (s.embedding_in_split ? 1 : 0) + (s.loss_in_split ? 1 : 0);
}

void check_counted_split(std::int64_t num_layers, const ParallelSizes& sizes, const std::string& num_layers_origin) {
  const std::string counted = describe_counted(sizes);
  if (uneven(sizes))
    throw ConfigError(fmt::format("{} cannot be combined with parallel.decoder_first_pipeline_num_layers / "
                                  "decoder_last_pipeline_num_layers (as in Megatron-LM): give the first and last "
                                  "stages' layers, or count the embedding and loss in an even split",
                                  counted));
  if (sizes.pipeline_split_rank != 0)
    throw ConfigError(fmt::format("{} cannot be combined with parallel.pipeline_model_parallel_split_rank "
                                  "(encoder-decoder models)",
                                  counted));
  const std::int64_t chunks = std::int64_t{sizes.pp} * sizes.vpp;
  if (counted_layers(num_layers, sizes) % chunks != 0)
    throw ConfigError(fmt::format("model.num_layers ({}) in {} with {}: the {} layers counted must be a multiple of "
                                  "parallel.pipeline_model_parallel_size ({}){}",
                                  num_layers, num_layers_origin, counted, counted_layers(num_layers, sizes), sizes.pp,
                                  sizes.vpp > 1 ? fmt::format(" × parallel.virtual_pipeline_model_parallel_size ({})",
                                                              sizes.vpp)
                                                : ""));
}

// "parallel.decoder_first_pipeline_num_layers = 2 and parallel.decoder_last_pipeline_num_layers = 6"
std::string describe_given(const ParallelSizes& s) {
  std::string first = s.first_stage_layers > 0
                          ? fmt::format("parallel.decoder_first_pipeline_num_layers = {}", s.first_stage_layers)
                          : "";
  std::string last = s.last_stage_layers > 0
                         ? fmt::format("parallel.decoder_last_pipeline_num_layers = {}", s.last_stage_layers)
                         : "";
  return first.empty() ? last : last.empty() ? first : first + " and " + last;
}

}  // namespace

void check_pipeline_layers(std::int64_t num_layers, const ParallelSizes& sizes, const std::string& num_layers_origin) {
  const std::int64_t pp = sizes.pp, vpp = sizes.vpp;
  if (counts_embedding_or_loss(sizes)) return check_counted_split(num_layers, sizes, num_layers_origin);
  if (!uneven(sizes)) {
    if (num_layers % (pp * vpp) != 0)
      throw ConfigError(fmt::format("model.num_layers ({}) in {} must be a multiple of parallel.pipeline_model_parallel_size "
                                    "({}){}: every pipeline stage{} holds the same number of layers (or give "
                                    "parallel.decoder_first_pipeline_num_layers / decoder_last_pipeline_num_layers)",
                                    num_layers, num_layers_origin, pp,
                                    vpp > 1 ? fmt::format(" × parallel.virtual_pipeline_model_parallel_size ({})", vpp) : "",
                                    vpp > 1 ? " chunk" : ""));
    return;
  }
  const std::string given = describe_given(sizes);
  if (pp < 2)
    throw ConfigError(fmt::format("{}: uneven pipeline stages need parallel.pipeline_model_parallel_size > 1", given));
  if (sizes.pipeline_split_rank != 0)
    throw ConfigError(fmt::format("{}: uneven pipeline stages cannot be combined with "
                                  "parallel.pipeline_model_parallel_split_rank (encoder-decoder models)",
                                  given));
  const std::int64_t middle_stages = pp - (sizes.first_stage_layers > 0) - (sizes.last_stage_layers > 0);
  const std::int64_t rest = num_layers - sizes.first_stage_layers - sizes.last_stage_layers;
  const bool fits = middle_stages == 0 ? rest == 0 : rest >= middle_stages && rest % middle_stages == 0;
  if (!fits)
    throw ConfigError(
        middle_stages == 0
            ? fmt::format("model.num_layers ({}) in {}: with {} and parallel.pipeline_model_parallel_size 2 the two "
                          "stages must hold every layer",
                          num_layers, num_layers_origin, given)
            : fmt::format("model.num_layers ({}) in {}: with {} the other {} pipeline stage(s) share the remaining "
                          "{} layers, which must be a positive multiple of {}",
                          num_layers, num_layers_origin, given, middle_stages, rest, middle_stages));
  for (int stage = 0; stage < sizes.pp; ++stage)
    if (stage_layers(num_layers, sizes, stage) % vpp != 0)
      throw ConfigError(fmt::format("model.num_layers ({}) in {} with {}: pipeline stage {} holds {} layers, which "
                                    "parallel.virtual_pipeline_model_parallel_size ({}) must divide (each of its "
                                    "model chunks holds the same number)",
                                    num_layers, num_layers_origin, given, stage,
                                    stage_layers(num_layers, sizes, stage), vpp));
}

std::int64_t stage_layers(std::int64_t num_layers, const ParallelSizes& sizes, int stage) {
  if (counts_embedding_or_loss(sizes)) {
    std::int64_t layers = 0;
    for (int c = 0; c < sizes.vpp; ++c) layers += chunk_layers(num_layers, sizes, stage, c).count;
    return layers;
  }
  std::int64_t rest = num_layers, middle_stages = sizes.pp;
  if (sizes.first_stage_layers > 0) {
    if (stage == 0) return sizes.first_stage_layers;
    rest -= sizes.first_stage_layers;
    --middle_stages;
  }
  if (sizes.last_stage_layers > 0) {
    if (stage == sizes.pp - 1) return sizes.last_stage_layers;
    rest -= sizes.last_stage_layers;
    --middle_stages;
  }
  return middle_stages > 0 ? rest / middle_stages : 0;
}

LayerRange chunk_layers(std::int64_t num_layers, const ParallelSizes& sizes, int stage, int chunk) {
  if (counts_embedding_or_loss(sizes)) {
    // Counted position: the embedding is position 0 when counted, the loss the last.
    const std::int64_t per_chunk = counted_layers(num_layers, sizes) / (std::int64_t{sizes.pp} * sizes.vpp);
    const std::int64_t start = chunk * per_chunk * sizes.pp + stage * per_chunk;
    const bool embedding = sizes.embedding_in_split && stage == 0 && chunk == 0;
    const bool loss = sizes.loss_in_split && stage == sizes.pp - 1 && chunk == sizes.vpp - 1;
    const std::int64_t first = sizes.embedding_in_split && !embedding ? start - 1 : start;
    return {first, per_chunk - (embedding ? 1 : 0) - (loss ? 1 : 0)};
  }
  // Round `chunk` starts after `chunk` rounds of num_layers / vpp layers; in it, each earlier stage's
  // chunk comes first.
  std::int64_t before = 0;
  for (int s = 0; s < stage; ++s) before += stage_layers(num_layers, sizes, s) / sizes.vpp;
  return {chunk * (num_layers / sizes.vpp) + before, stage_layers(num_layers, sizes, stage) / sizes.vpp};
}

}  // namespace tessera
