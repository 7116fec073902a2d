// The layers of each pipeline stage and model chunk (parallel/pipeline_layers.hpp) against a
// transcription of Megatron-Core's rule (transformer_block.py get_num_layers_to_build and
// transformer_layer.py get_transformer_layer_offset, with --num-layers-in-first/last-pipeline-stage,
// formerly --decoder-first/last-pipeline-num-layers), over every split of up to 24 layers on up to 6
// stages with up to 3 model chunks each, and with the embedding and/or loss counted as layers
// (--account-for-embedding/loss-in-pipeline-split); that every layer is held exactly once, round by
// round in stage order (the order the interleaved schedule runs the chunks in); and the errors.
#include <set>
#include <vector>

#include <catch2/catch.hpp>

#include "expect_error.hpp"
#include "tessera/error.hpp"
#include "tessera/parallel/pipeline_layers.hpp"

using namespace tessera;

namespace {

// Megatron-Core, written from its Python with None as 0.
std::int64_t megatron_layers_to_build(std::int64_t L, std::int64_t pp, std::int64_t vpp, std::int64_t first,
                                      std::int64_t last, std::int64_t rank) {
  std::int64_t per_rank = 0;
  if (first > 0 || last > 0) {
    std::int64_t to_distribute = L, stages_left = pp;
    if (first > 0) to_distribute -= first, stages_left -= 1;
    if (last > 0) to_distribute -= last, stages_left -= 1;
    per_rank = stages_left > 0 ? to_distribute / stages_left : 0;
    if (first > 0 && rank == 0) per_rank = first;
    if (last > 0 && rank == pp - 1) per_rank = last;
  } else {
    per_rank = L / pp;
  }
  return per_rank / vpp;
}

std::int64_t megatron_offset(std::int64_t L, std::int64_t pp, std::int64_t vpp, std::int64_t first, std::int64_t last,
                             std::int64_t rank, std::int64_t vp_stage) {
  if (first > 0 || last > 0) {
    const std::int64_t middle_stages = pp - (first > 0) - (last > 0);
    const std::int64_t middle_layers = L - first - last;
    if (vpp > 1) {
      const std::int64_t first_chunk = first / vpp, last_chunk = last / vpp, middle_chunk = middle_layers / vpp;
      const std::int64_t total_virtual_chunks = first_chunk + middle_chunk + last_chunk;
      if (rank == 0) return vp_stage * total_virtual_chunks;
      if (middle_stages == 0) return -1;  // Python's ZeroDivisionError
      return vp_stage * total_virtual_chunks + first_chunk + (rank - 1) * (middle_chunk / middle_stages);
    }
    const std::int64_t per_rank = middle_stages > 0 ? middle_layers / middle_stages : 0;
    const std::int64_t middle_rank = first > 0 ? rank - 1 : rank;
    return rank == 0 ? 0 : middle_rank * per_rank + first;
  }
  const std::int64_t per_rank = L / pp;
  if (vpp > 1) return vp_stage * (L / vpp) + rank * (per_rank / vpp);
  return rank * per_rank;
}

// Megatron-Core with account_for_embedding_in_pipeline_split (e) / account_for_loss_in_pipeline_split
// (l): get_num_layers_to_build and get_transformer_layer_offset's even branch.
std::int64_t megatron_counted_layers_to_build(std::int64_t L, std::int64_t pp, std::int64_t vpp, bool e, bool l,
                                              std::int64_t rank, std::int64_t vp_stage) {
  const std::int64_t n = L + e + l;
  std::int64_t to_build = vpp > 1 ? n / pp / vpp : n / pp;
  if (e && rank == 0 && vp_stage == 0) to_build -= 1;  // is_pipeline_first_stage(ignore_virtual=False)
  if (l && rank == pp - 1 && vp_stage == vpp - 1) to_build -= 1;
  return to_build;
}

std::int64_t megatron_counted_offset(std::int64_t L, std::int64_t pp, std::int64_t vpp, bool e, bool l,
                                     std::int64_t rank, std::int64_t vp_stage) {
  const std::int64_t n = L + e + l, per_rank = n / pp;
  std::int64_t offset = 0;
  if (vpp > 1) {
    offset = vp_stage * (n / vpp) + rank * (per_rank / vpp);
    if (e && !(vp_stage == 0 && rank == 0)) offset -= 1;
  } else {
    offset = rank * per_rank;
    if (e && rank != 0) offset -= 1;
  }
  return offset;
}

bool splits(std::int64_t L, const ParallelSizes& s) {
  try {
    check_pipeline_layers(L, s, "test");
    return true;
  } catch (const ConfigError&) {
    return false;
  }
}

}  // namespace

TEST_CASE("pipeline layers: Megatron-Core's split, every layer once, round by round", "[unit]") {
  int checked = 0, uneven_checked = 0;
  for (std::int64_t L = 1; L <= 24; ++L)
    for (int pp = 1; pp <= 6; ++pp)
      for (int vpp = 1; vpp <= 3; ++vpp)
        for (std::int64_t first = 0; first <= L; ++first)
          for (std::int64_t last = 0; last <= L; ++last) {
            if (vpp > 1 && pp == 1) continue;  // refused by the layout
            const ParallelSizes s{.pp = pp, .vpp = vpp, .first_stage_layers = first, .last_stage_layers = last};
            if (!splits(L, s)) continue;
            CAPTURE(L, pp, vpp, first, last);
            ++checked;
            if (first > 0 || last > 0) ++uneven_checked;
            // Layer order: round by round (chunk 0 of every stage, then chunk 1, …), stages in order.
            std::int64_t next = 0;
            for (int c = 0; c < vpp; ++c)
              for (int stage = 0; stage < pp; ++stage) {
                CAPTURE(stage, c);
                const LayerRange r = chunk_layers(L, s, stage, c);
                REQUIRE(r.count >= 1);
                REQUIRE(r.first == next);
                next += r.count;
                REQUIRE(r.count * vpp == stage_layers(L, s, stage));
                REQUIRE(r.count == megatron_layers_to_build(L, pp, vpp, first, last, stage));
                // Megatron-Core's offsets with virtual stages fail in two cases: with only the last
                // stage given they overlap (stage 1 takes stage 0's: it counts middle ranks from 1 as
                // if the first were given); with both given on two stages it divides by the zero
                // middle stages. Tessera's follow the same rule as every other case.
                const std::int64_t megatron = megatron_offset(L, pp, vpp, first, last, stage, c);
                if (!(vpp > 1 && first == 0 && last > 0) && megatron >= 0) REQUIRE(r.first == megatron);
              }
            REQUIRE(next == L);
            if (first > 0) REQUIRE(stage_layers(L, s, 0) == first);
            if (last > 0) REQUIRE(stage_layers(L, s, pp - 1) == last);
          }
  REQUIRE(uneven_checked > 500);  // the loops reach uneven splits, with and without virtual stages
  REQUIRE(checked > uneven_checked);
}

TEST_CASE("pipeline layers: the embedding and loss counted as layers, as Megatron-Core counts them", "[unit]") {
  int checked = 0, empty_chunks = 0;
  for (std::int64_t L = 1; L <= 24; ++L)
    for (int pp = 1; pp <= 6; ++pp)
      for (int vpp = 1; vpp <= 3; ++vpp)
        for (const bool e : {false, true})
          for (const bool l : {false, true}) {
            if ((vpp > 1 && pp == 1) || (!e && !l)) continue;
            const ParallelSizes s{.pp = pp, .vpp = vpp, .embedding_in_split = e, .loss_in_split = l};
            CAPTURE(L, pp, vpp, e, l);
            // Megatron-LM asserts that pp divides the layers counted and vpp each stage's.
            const std::int64_t n = L + e + l;
            REQUIRE(splits(L, s) == (n % pp == 0 && (n / pp) % vpp == 0));
            if (!splits(L, s)) continue;
            ++checked;
            std::int64_t next = 0;
            for (int c = 0; c < vpp; ++c)
              for (int stage = 0; stage < pp; ++stage) {
                CAPTURE(stage, c);
                const LayerRange r = chunk_layers(L, s, stage, c);
                REQUIRE(r.count == megatron_counted_layers_to_build(L, pp, vpp, e, l, stage, c));
                REQUIRE(r.count >= 0);
                if (r.count == 0) ++empty_chunks;
                REQUIRE(r.first == next);  // round by round, stages in order
                next += r.count;
                if (r.count > 0) REQUIRE(r.first == megatron_counted_offset(L, pp, vpp, e, l, stage, c));
              }
            REQUIRE(next == L);
            std::int64_t held = 0;
            for (int stage = 0; stage < pp; ++stage) held += stage_layers(L, s, stage);
            REQUIRE(held == L);
          }
  REQUIRE(checked > 100);
  REQUIRE(empty_chunks > 0);  // a chunk of one counted layer holds the embedding (loss) alone
}

TEST_CASE("pipeline layers: the header's example with the embedding and loss counted", "[unit]") {
  const ParallelSizes s{.pp = 4, .embedding_in_split = true, .loss_in_split = true};
  check_pipeline_layers(6, s, "test");
  const std::vector<std::int64_t> layers = {1, 2, 2, 1}, first = {0, 1, 3, 5};
  for (int stage = 0; stage < 4; ++stage) {
    REQUIRE(stage_layers(6, s, stage) == layers[stage]);
    REQUIRE(chunk_layers(6, s, stage, 0).first == first[stage]);
  }
  // Two chunks per stage, 2 layers and both counted: the embedding and the loss each fill a chunk.
  const ParallelSizes v{.pp = 2, .vpp = 2, .embedding_in_split = true, .loss_in_split = true};
  check_pipeline_layers(2, v, "test");
  REQUIRE(chunk_layers(2, v, 0, 0).count == 0);
  REQUIRE(chunk_layers(2, v, 1, 0).first == 0);
  REQUIRE(chunk_layers(2, v, 0, 1).first == 1);
  REQUIRE(chunk_layers(2, v, 1, 1).count == 0);
}

TEST_CASE("pipeline layers: the header's example", "[unit]") {
  const ParallelSizes s{.pp = 3, .vpp = 2, .first_stage_layers = 2, .last_stage_layers = 6};
  check_pipeline_layers(12, s, "test");
  const std::vector<std::vector<std::int64_t>> expected = {{0, 1, 6, 1}, {1, 2, 7, 2}, {3, 3, 9, 3}};
  for (int stage = 0; stage < 3; ++stage)
    for (int c = 0; c < 2; ++c) {
      const LayerRange r = chunk_layers(12, s, stage, c);
      REQUIRE(r.first == expected[stage][2 * c]);
      REQUIRE(r.count == expected[stage][2 * c + 1]);
    }
}

TEST_CASE("pipeline layers: errors name the keys", "[unit]") {
  using Catch::Matchers::Contains;
  // Even: pp·vpp must divide the layers.
  REQUIRE_THAT(message_of<ConfigError>([] { check_pipeline_layers(5, {.pp = 2}, "run.toml"); }),
               Contains("model.num_layers (5) in run.toml must be a multiple of parallel.pipeline_model_parallel_size (2)") &&
                   Contains("decoder_first_pipeline_num_layers"));
  // The rest must split evenly, at least one layer each.
  REQUIRE_THAT(message_of<ConfigError>([] { check_pipeline_layers(6, {.pp = 3, .first_stage_layers = 1}, "run.toml"); }),
               Contains("parallel.decoder_first_pipeline_num_layers = 1 the other 2 pipeline stage(s) share the "
                        "remaining 5 layers"));
  REQUIRE_THAT(message_of<ConfigError>([] {
                 check_pipeline_layers(4, {.pp = 3, .first_stage_layers = 2, .last_stage_layers = 2}, "run.toml");
               }),
               Contains("remaining 0 layers"));
  // Both stages given with pp 2: they hold every layer.
  REQUIRE_THAT(message_of<ConfigError>([] {
                 check_pipeline_layers(4, {.pp = 2, .first_stage_layers = 1, .last_stage_layers = 2}, "run.toml");
               }),
               Contains("the two stages must hold every layer"));
  // vpp must divide every stage's layers.
  REQUIRE_THAT(message_of<ConfigError>([] {
                 check_pipeline_layers(8, {.pp = 2, .vpp = 2, .first_stage_layers = 3}, "run.toml");
               }),
               Contains("pipeline stage 0 holds 3 layers, which parallel.virtual_pipeline_model_parallel_size (2) "
                        "must divide"));
  REQUIRE_THAT(message_of<ConfigError>([] { check_pipeline_layers(4, {.pp = 1, .first_stage_layers = 2}, "run.toml"); }),
               Contains("need parallel.pipeline_model_parallel_size > 1"));
  REQUIRE_THAT(message_of<ConfigError>([] {
                 check_pipeline_layers(4, {.pp = 2, .pipeline_split_rank = 1, .last_stage_layers = 2}, "run.toml");
               }),
               Contains("parallel.pipeline_model_parallel_split_rank"));
  // The embedding or loss counted: pp·vpp must divide the layers counted; not with uneven stages.
  REQUIRE_THAT(message_of<ConfigError>([] {
                 check_pipeline_layers(6, {.pp = 2, .vpp = 2, .embedding_in_split = true}, "run.toml");
               }),
               Contains("model.num_layers (6) in run.toml with parallel.account_for_embedding_in_pipeline_split = "
                        "true: the 7 layers counted must be a multiple of parallel.pipeline_model_parallel_size (2) "
                        "× parallel.virtual_pipeline_model_parallel_size (2)"));
  REQUIRE_THAT(message_of<ConfigError>([] {
                 check_pipeline_layers(6, {.pp = 2, .first_stage_layers = 2, .loss_in_split = true}, "run.toml");
               }),
               Contains("parallel.account_for_loss_in_pipeline_split = true cannot be combined with "
                        "parallel.decoder_first_pipeline_num_layers"));
  REQUIRE_THAT(message_of<ConfigError>([] {
                 check_pipeline_layers(6, {.pp = 2, .pipeline_split_rank = 1, .embedding_in_split = true}, "run.toml");
               }),
               Contains("parallel.pipeline_model_parallel_split_rank"));
}
