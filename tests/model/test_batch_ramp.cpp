// Megatron-LM's batch-size ramp-up (training.rampup_batch_size, --rampup-batch-size there): each
// iteration's batch and the run's iterations against a transcription of Megatron's calculator and
// update_train_iters; the keys' errors; and the trainer: batches, consumed samples, the schedule
// counted in the updates' samples, and a resume that goes on as the run would have.
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "expect_error.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/train/batch_ramp.hpp"
#include "tessera/train/checkpoint.hpp"
#include "tessera/train/trainer.hpp"
#include "test_util.hpp"
#include "training_corpus.hpp"

using namespace tessera;

namespace {

// Megatron-LM's RampupBatchsizeNumMicroBatchesCalculator (megatron/core/num_microbatches_calculator.py)
// and update_train_iters (megatron/training/training.py), transcribed.
struct MegatronRamp {
  std::int64_t global, start, increment, samples;

  std::int64_t current(std::int64_t consumed_samples) const {
    const std::int64_t num_increments = (global - start) / increment;
    const double rampup_samples_per_increment = double(samples) / double(num_increments);
    if (consumed_samples > samples) return global;
    const auto steps = static_cast<std::int64_t>(double(consumed_samples) / rampup_samples_per_increment);
    const std::int64_t gbs = start + steps * increment;
    REQUIRE(gbs <= global);
    return gbs;
  }

  std::int64_t train_iters(std::int64_t train_samples) const {
    std::int64_t iterations = 0, consumed_samples = 0;
    while (consumed_samples <= samples && consumed_samples <= train_samples) {
      consumed_samples += current(consumed_samples);
      iterations += 1;
    }
    if (train_samples > consumed_samples) iterations += (train_samples - consumed_samples) / global;
    return iterations;
  }
};

std::string by_samples(std::int64_t train_samples, const std::string& ramp) {
  std::string text = small_gpt_run(2, "cpu", 4);  // micro 2, global 4
  const auto at = text.find("train_iters = 4\n");
  REQUIRE(at != std::string::npos);
  return text.replace(at, 16, fmt::format("train_samples = {}\n{}\n", train_samples, ramp));
}

}  // namespace

TEST_CASE("the batch ramp follows Megatron-LM's calculator and update_train_iters", "[unit]") {
  // By hand: 8 → 32 by 8 over 100 samples (an increment every 33.3 samples): batches 8 ×5, 16 ×2,
  // 24 ×2 (120 samples, past 100), then 32s: 300 samples are 9 + 5 iterations.
  const BatchRamp hand{8, 8, 100, 32};
  std::vector<std::int64_t> batches;
  for (std::int64_t consumed = 0; batches.size() < 11; consumed += batches.back()) batches.push_back(hand.batch_at(consumed));
  CHECK(batches == std::vector<std::int64_t>{8, 8, 8, 8, 8, 16, 16, 24, 24, 32, 32});
  CHECK(hand.iterations(300) == 14);
  CHECK(hand.consumed_after(9) == 120);
  CHECK(hand.consumed_after(14) == 280);
  // Megatron's GPT-3 175B ramp and others, every consumed count of the ramp and the iterations.
  for (const auto& [global, start, increment, samples, train] :
       std::vector<std::array<std::int64_t, 5>>{{1536, 16, 16, 5859375, 146484375},
                                                {32, 8, 8, 100, 300},
                                                {12, 4, 4, 7, 100},
                                                {64, 8, 4, 1000, 999},
                                                {16, 8, 8, 64, 40}}) {
    INFO(global << " " << start << " " << increment << " " << samples << " " << train);
    const BatchRamp r{start, increment, samples, global};
    const MegatronRamp m{global, start, increment, samples};
    std::int64_t consumed = 0, n = 0, mismatches = 0;
    for (; consumed <= samples + global; ++n) {
      mismatches += r.batch_at(consumed) != m.current(consumed);
      consumed += m.current(consumed);
    }
    CHECK(mismatches == 0);
    CHECK(r.iterations(train) == m.train_iters(train));
    CHECK(r.consumed_after(n) == consumed);
  }
  CHECK(BatchRamp{}.batch_at(123) == 0);  // no ramp: the global batch (unset here)
}

TEST_CASE("rampup_batch_size errors name the key and what Megatron-LM requires", "[unit]") {
  const auto error = [](const std::string& extra, bool samples = true) {
    const Config c = Config::from_string("[training]\n" + extra + "\n", "r.toml");
    return message_of<ConfigError>([&] { read_batch_ramp(c.section("training"), 32, 4, samples); });
  };
  CHECK_THAT(error("rampup_batch_size = [8, 8, 100]", false), Catch::Contains("needs a run by samples"));
  CHECK_THAT(error("rampup_batch_size = [8, 8]"), Catch::Contains("three integers"));
  CHECK_THAT(error("rampup_batch_size = [8, 0, 100]"), Catch::Contains("three integers"));
  CHECK_THAT(error("rampup_batch_size = [8, \"8\", 100]"), Catch::Contains("array of integers"));
  CHECK_THAT(error("rampup_batch_size = [32, 8, 100]"), Catch::Contains("below training.global_batch_size (32)"));
  CHECK_THAT(error("rampup_batch_size = [8, 16, 100]"), Catch::Contains("not a multiple of the increment 16"));
  CHECK_THAT(error("rampup_batch_size = [6, 2, 100]"), Catch::Contains("micro_batch_size × data-parallel size = 4"));
  CHECK_THAT(error("rampup_batch_size = [4, 4, 100000000000]"), Catch::Contains("iterations of ramp"));
  log_state().level = LogLevel::warn;
  CHECK_THAT(message_of<ConfigError>([] {
               Trainer t(Config::from_string(small_gpt_run(2, "cpu", 4), "r.toml",
                                             {"training.rampup_batch_size=[2, 2, 10]"}));
             }),
             Catch::Contains("training.rampup_batch_size") && Catch::Contains("train_samples"));
}

TEST_CASE("a ramped run: each iteration's batch, its samples in the schedule, and a resume that goes on", "[unit]") {
  log_state().level = LogLevel::warn;
  // micro 2, global 4; 2 → 4 over 10 samples: five batches of 2, then 4s (the sixth batch starts at
  // 10 ≤ 10, still in the ramp's count); 40 samples are 6 + 6 iterations (Megatron's count), the
  // last 2 samples dropped.
  const std::string text = by_samples(40, "rampup_batch_size = [2, 2, 10]");
  TrainingRecord whole;
  {
    Trainer t(Config::from_string(text, "ramp.toml", {"training.eval_interval=6"}));
    REQUIRE(t.options().train_iters == 12);
    whole = t.train();
  }
  CHECK(whole.batch_sizes == std::vector<std::int64_t>{2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 4});
  // The logged rate is the schedule's after the update: at the samples of the updates so far.
  const OptimizerParamSchedule schedule =
      read_optimizer_param_schedule(Config::from_string(text, "ramp.toml"), RunLength{12, 4, 40});
  std::int64_t samples = 0;
  for (std::size_t i = 0; i < whole.batch_sizes.size(); ++i) {
    samples += whole.batch_sizes[i];
    CHECK(whole.learning_rates[i] == Approx(schedule.lr.at(samples)).epsilon(1e-12));
  }
  CHECK(whole.tokens == 38.0 * 24);  // the samples read, of 24 tokens

  // Stopped after 5 iterations (exit_interval saves a checkpoint), then resumed: iterations 6–12
  // log what the whole run logged.
  test::TempDir dir;
  const std::string save = "checkpoint.save=\"" + (dir / "run") + "\"";
  {
    Trainer t(Config::from_string(text, "ramp.toml", {save, "training.exit_interval=5"}));
    REQUIRE(t.train().losses.size() == 5);
  }
  Trainer resumed(Config::from_string(text, "ramp.toml", {save, "checkpoint.load=\"" + (dir / "run") + "\""}));
  const TrainingRecord rest = resumed.train();
  REQUIRE(rest.losses.size() == 7);
  for (std::size_t i = 0; i < 7; ++i) {
    CHECK(rest.losses[i] == whole.losses[5 + i]);
    CHECK(rest.learning_rates[i] == whole.learning_rates[5 + i]);
    CHECK(rest.batch_sizes[i] == whole.batch_sizes[5 + i]);
  }
  // 12 samples: Megatron's count gives 6 iterations (the sixth batch, of 4, starts at 10 ≤ 12) that read
  // 14 samples; the train split is asked for those (a blend of exactly 12 would run dry).
  {
    test::TempDir cache;
    Trainer t(Config::from_string(by_samples(12, "rampup_batch_size = [2, 2, 10]"), "ramp.toml",
                                  {"data.data_cache_path=\"" + cache.path.string() + "\""}));
    CHECK(t.options().train_iters == 6);
    bool asked_14 = false;
    for (const auto& f : std::filesystem::directory_iterator(cache.path))
      asked_14 = asked_14 || f.path().filename().string().find("_train_indexmap_14ns_") != std::string::npos;
    CHECK(asked_14);
  }
  // A ramp's record needs the schedule's (its num_steps are not whole global batches).
  {
    const std::string meta_path = dir / "run/iter_0000005/metadata.json";
    std::string meta = test::read_text(meta_path);
    const auto at = meta.find("\"opt_param_scheduler\"");
    REQUIRE(at != std::string::npos);
    meta.replace(at, 21, "\"no_scheduler_record\"");
    CHECK_THAT(message_of<FormatError>([&] { parse_checkpoint_metadata(meta, meta_path); }),
               Catch::Contains("'rampup_batch_size' without 'opt_param_scheduler'"));
  }
  // Another ramp would place the rest of the data elsewhere: refused.
  CHECK_THAT(message_of<ConfigError>([&] {
               Trainer t(Config::from_string(by_samples(40, "rampup_batch_size = [2, 2, 20]"), "ramp.toml",
                                             {"checkpoint.load=\"" + (dir / "run/iter_0000005") + "\""}));
             }),
             Catch::Contains("rampup_batch_size [2, 2, 10], this run has [2, 2, 20]"));
}
