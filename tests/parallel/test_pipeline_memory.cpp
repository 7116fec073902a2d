// Pipeline memory under mpirun (pp = world size): a GPT split into stages runs one iteration of 8
// microbatches through the executor with the 1f1b schedule and with a GPipe order (every forward,
// then every backward). The executor's measurement must show 1F1B holding at most pp − stage
// microbatches' activations on each stage — pp on the first — while GPipe holds all 8, and the
// held elements must scale with the held microbatches (every microbatch saves the same tensors).
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/model.hpp"
#include "tessera/plugin.hpp"
#include "tessera/schedule.hpp"
#include "tessera/train/pipeline_executor.hpp"
#include "gpt_batch.hpp"

using namespace tessera;

namespace {

constexpr std::int64_t kMicrobatches = 8, kB = 2, kT = 16, kVocab = 97;

Batch fixed_batch(std::int64_t m) {
  Batch b = gpt_batch(Tensor::empty({kB, kT}, DType::i32), Tensor::empty({kB, kT}, DType::i32),
                      Tensor::full({kB, kT}, 1.0f));
  for (std::int64_t i = 0; i < kB * kT; ++i) {
    b.get("tokens").data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 7 + m) % kVocab);
    b.get("labels").data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 5 + m + 1) % kVocab);
  }
  return b;
}

// GPipe: all forwards (with their transfers), then all backwards.
std::vector<PipelineStep> gpipe_steps(const ScheduleSpec& spec) {
  std::vector<PipelineStep> steps = forward_only_steps(spec);
  for (std::int64_t m = 0; m < spec.num_microbatches; ++m) append_backward(steps, spec, m);
  return steps;
}

}  // namespace

TEST_CASE("1F1B holds at most pp - stage microbatches; GPipe holds them all", "[mpi]") {
  const int pp = Parallel::create(ParallelSizes{1, 1, 1, false})->layout.world_size();
  auto parallel = Parallel::create(ParallelSizes{1, pp, 1, false});
  const Config config = Config::from_string(fmt::format(R"(
[model]
plugin = "gpt"
num_layers = {}
hidden_size = 24
num_attention_heads = 4
seq_length = {}
)", pp, kT));
  auto model = create_plugin<Model>("model", "gpt", config.section("model"), ModelContext{kVocab, 3, parallel});
  auto schedule = create_plugin<Schedule>("schedule", "1f1b", config.section("schedule"));
  const int stage = parallel->layout.pp_rank();
  const ScheduleSpec spec{pp, stage, kMicrobatches};
  PipelinePass pass;
  pass.micro_batch_size = kB;
  pass.loss_grad_scale = 1.0f / kMicrobatches;

  const std::vector<PipelineStep> one_f_one_b = schedule->training_steps(spec);
  validate_steps(one_f_one_b, spec, true, "1f1b");
  const PipelineRun a = run_pipeline_steps(*model, one_f_one_b, fixed_batch, pass, *parallel);
  const PipelineRun g = run_pipeline_steps(*model, gpipe_steps(spec), fixed_batch, pass, *parallel);

  INFO(fmt::format("stage {} of {}: 1F1B held {} microbatches ({} elements), GPipe {} ({})", stage, pp,
                   a.peak_microbatches_held, a.peak_held_elements, g.peak_microbatches_held, g.peak_held_elements));
  CHECK(a.peak_microbatches_held == pp - stage);
  CHECK(g.peak_microbatches_held == kMicrobatches);
  REQUIRE(a.peak_held_elements > 0);
  CHECK(a.peak_held_elements * kMicrobatches == g.peak_held_elements * (pp - stage));
  // Only the last stage computes losses; both orders give the same sum.
  if (stage == pp - 1) {
    CHECK(a.loss_sum > 0);
    CHECK(a.loss_sum == Approx(g.loss_sum).epsilon(1e-6));
  } else {
    CHECK(a.loss_sum == 0);
  }
}

TEST_CASE("a pipeline size that does not divide the layers is a ConfigError naming both keys", "[mpi]") {
  const int pp = Parallel::create(ParallelSizes{1, 1, 1, false})->layout.world_size();
  auto parallel = Parallel::create(ParallelSizes{1, pp, 1, false});
  const Config config = Config::from_string(fmt::format("[model]\nnum_layers = {}\n", pp + 1));
  try {
    create_plugin<Model>("model", "gpt", config.section("model"), ModelContext{kVocab, 3, parallel});
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Catch::Contains(fmt::format("model.num_layers ({})", pp + 1)) &&
                             Catch::Contains(fmt::format("parallel.pipeline_model_parallel_size ({})", pp)));
  }
}
