// The trainer on a small real corpus (byte tokens of Python sources): determinism, gradient
// accumulation equal to one big microbatch, loss falling, validation, LR schedule, config errors.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/config.hpp"
#include "tessera/data/indexed_dataset.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/nn/parameter.hpp"
#include "tessera/train/lr_schedule.hpp"
#include "tessera/train/trainer.hpp"
#include "test_util.hpp"
#include "training_corpus.hpp"

using namespace tessera;

namespace {

std::string config_text(std::int64_t micro, std::int64_t global, std::int64_t iters) {
  return small_gpt_sections(2) + fmt::format(R"(
[training]
micro_batch_size = {}
global_batch_size = {}
train_iters = {}
eval_interval = 10
eval_iters = 1
seed = 42
num_threads = 2
[optimizer]
plugin = "adam"
lr = 3e-3
lr_warmup_iters = 2
clip_grad = 1.0
[logging]
log_interval = 100
)", micro, global, iters);
}

TrainingRecord train(const std::string& text, const std::vector<std::string>& overrides = {}) {
  log_state().level = LogLevel::warn;
  Trainer t(Config::from_string(text, "test.toml", overrides));
  return t.train();
}

}  // namespace

TEST_CASE("the same seed gives the same losses twice", "[unit]") {
  auto a = train(config_text(4, 8, 4));
  auto b = train(config_text(4, 8, 4));
  REQUIRE(a.losses.size() == 4);
  for (std::size_t i = 0; i < a.losses.size(); ++i) {
    CHECK(a.losses[i] == b.losses[i]);
    CHECK(a.grad_norms[i] == b.grad_norms[i]);
  }
  auto c = train(config_text(4, 8, 4), {"training.seed=43"});
  CHECK(c.losses[0] != a.losses[0]);
}

TEST_CASE("gradient accumulation equals one large microbatch", "[unit]") {
  // Without dropout, 4 microbatches of 2 and 1 of 8 see the same samples and must agree.
  auto no_dropout = [](std::int64_t micro) { return train(config_text(micro, 8, 5), {"model.hidden_dropout=0.0"}); };
  auto one = no_dropout(8), four = no_dropout(2);
  for (std::size_t i = 0; i < one.losses.size(); ++i) {
    CHECK(std::abs(one.losses[i] - four.losses[i]) / one.losses[i] < 1e-5);
    CHECK(std::abs(one.grad_norms[i] - four.grad_norms[i]) / one.grad_norms[i] < 1e-4);
  }
}

TEST_CASE("the loss falls and validation runs", "[unit]") {
  auto r = train(config_text(4, 8, 40));
  REQUIRE(r.losses.size() == 40);
  CHECK(r.losses.front() > 5.0);  // ≈ ln(257) at initialisation
  // The corpus is this repository's core/src/nn, so any edit there changes the curve: compare the
  // mean of the last 5 losses (one microbatch's loss swings by ±0.15), with a margin (measured: the
  // mean falls by ~2.1 in 40 iterations, the last single loss by 1.9–2.1 depending on the sources).
  double tail = 0;
  for (std::size_t i = r.losses.size() - 5; i < r.losses.size(); ++i) tail += r.losses[i] / 5;
  CHECK(tail < r.losses.front() - 1.5);
  REQUIRE(r.valid_losses.size() == 4);
  CHECK(r.valid_losses.back().second < r.valid_losses.front().second);
}

namespace {

// Megatron-LM's OptimizerParamScheduler (megatron/optimizer_param_scheduler.py), transcribed: its
// steps count samples (the global batch per successful optimizer.step()); it is built with
// step(0), and train_step calls step() after optimizer.step(), so the rate an update applies is
// get_lr() as it stood before that update.
struct MegatronScheduler {
  double max_lr, min_lr;
  std::int64_t warmup_steps, decay_steps;
  std::string style;
  std::int64_t num_steps = 0;

  double get_lr() const {
    if (warmup_steps > 0 && num_steps <= warmup_steps) return max_lr * double(num_steps) / double(warmup_steps);
    if (style == "constant") return max_lr;
    if (num_steps > decay_steps) return min_lr;
    if (style == "inverse-square-root") {
      const double w = double(std::max<std::int64_t>(warmup_steps, 1)), n = double(std::max<std::int64_t>(num_steps, 1));
      return std::max(min_lr, max_lr * std::sqrt(w) / std::sqrt(n));
    }
    const double ratio = double(num_steps - warmup_steps) / double(decay_steps - warmup_steps);
    const double coeff = style == "linear" ? 1.0 - ratio : 0.5 * (std::cos(M_PI * ratio) + 1.0);
    return min_lr + coeff * (max_lr - min_lr);
  }
};

}  // namespace

TEST_CASE("learning-rate schedule follows Megatron-LM", "[unit]") {
  LrSchedule s;
  s.lr = 1.0;
  s.min_lr = 0.1;
  s.warmup_iters = 10;
  s.decay_iters = 110;
  s.style = "cosine";
  CHECK(s.at(0) == 0.0);
  CHECK(s.at(5) == Approx(0.5));
  CHECK(s.at(10) == Approx(1.0));
  CHECK(s.at(60) == Approx(0.55));  // halfway: min + ½(1 + cos(π/2))(max − min)
  CHECK(s.at(110) == Approx(0.1));
  CHECK(s.at(500) == Approx(0.1));
  s.style = "linear";
  CHECK(s.at(60) == Approx(0.55));
  CHECK(s.at(35) == Approx(0.775));
  s.style = "constant";
  CHECK(s.at(60) == Approx(1.0));
  // Every style, with and without warmup, against the transcription (global batch 8: its steps are
  // samples), including step 0 and past the decay (inverse-square-root drops to min_lr there too).
  for (const std::string style : {"constant", "linear", "cosine", "inverse-square-root"})
    for (const std::int64_t warmup : {0, 3}) {
      INFO(style << ", warmup " << warmup);
      s.style = style;
      s.warmup_iters = warmup;
      s.decay_iters = 20;
      const std::int64_t batch = 8;
      s.samples_per_iteration = batch;
      MegatronScheduler m{s.lr, s.min_lr, warmup * batch, s.decay_iters * batch, style};
      for (std::int64_t steps = 0; steps <= 30; ++steps, m.num_steps += batch) {
        INFO("after " << steps << " steps");
        CHECK(s.at(steps) == Approx(m.get_lr()).epsilon(1e-12));
      }
    }
}

TEST_CASE("the update of iteration k applies Megatron-LM's rate (the schedule before it); the log shows the rate after it", "[unit]") {
  log_state().level = LogLevel::warn;
  // Warmup 2 and cosine decay to 0 at iteration 6: Megatron applies 0, lr/2, lr, … and logs lr/2, lr, ….
  Trainer t(Config::from_string(config_text(4, 8, 6), "test.toml", {"optimizer.lr_decay_iters=6"}));
  std::vector<Parameter*> params;
  t.model().collect_parameters(params);
  REQUIRE_FALSE(params.empty());
  const auto values = [&] {
    std::vector<std::vector<float>> out;
    for (const Parameter* p : params)
      out.emplace_back(p->value.data<float>(), p->value.data<float>() + p->value.numel());
    return out;
  };
  LrSchedule schedule;
  schedule.lr = 3e-3;
  schedule.warmup_iters = 2;
  schedule.decay_iters = 6;
  MegatronScheduler m{3e-3, 0.0, 2 * 8, 6 * 8, "cosine"};
  for (std::int64_t it = 1; it <= 6; ++it) {
    INFO("iteration " << it);
    CHECK(t.learning_rate(it) == Approx(m.get_lr()).epsilon(1e-12));  // what this update applies
    const auto before = values();
    t.train_step(it);
    m.num_steps += 8;
    CHECK(t.logged_learning_rate(it) == Approx(m.get_lr()).epsilon(1e-12));  // Megatron's log line
    // The first update's rate is 0: Adam moves nothing (weight decay scales by 1 − lr·wd = 1).
    CHECK((values() == before) == (it == 1));
  }
  // The logged rates of a whole run are the ones the log lines show: lr/2, lr, then the cosine to 0.
  const TrainingRecord r = train(config_text(4, 8, 6), {"optimizer.lr_decay_iters=6"});
  REQUIRE(r.learning_rates.size() == 6);
  for (std::int64_t it = 1; it <= 6; ++it) CHECK(r.learning_rates[it - 1] == Approx(schedule.at(it)).epsilon(1e-12));
  CHECK(r.learning_rates.back() == 0.0);
}

TEST_CASE("the validation split is asked for Megatron-LM's sample count, so its indices are Megatron's", "[unit]") {
  // Megatron: valid = (train_iters / eval_interval + 1) · eval_iters · global batch. Here (10 / 3 + 1)
  // · 2 · 8 = 64; the count names the cached index files, as Megatron's.
  const tessera::test::TempDir cache;
  train(config_text(4, 8, 10), {"training.eval_interval=3", "training.eval_iters=2",
                                "data.data_cache_path=\"" + cache.path.string() + "\""});
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(cache.path)) names.push_back(e.path().filename().string());
  const auto has = [&](const std::string& part) {
    return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return n.find(part) != std::string::npos; });
  };
  INFO(fmt::format("{}", fmt::join(names, " ")));
  CHECK(has("_train_indexmap_80ns_"));
  CHECK(has("_valid_indexmap_64ns_"));
  CHECK_FALSE(has("_test_indexmap_"));  // training never reads the test split
}

TEST_CASE("config mistakes are clear errors before any work", "[unit]") {
  log_state().level = LogLevel::error;
  std::string typo = config_text(4, 8, 2);
  typo.replace(typo.find("num_layers"), 10, "num_layer");
  try {
    Trainer t(Config::from_string(typo, "typo.toml"));
    FAIL("no error for an unknown key");
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    CHECK(m.find("num_layer") != std::string::npos);
    CHECK(m.find("typo.toml") != std::string::npos);
    CHECK(m.find("num_layers") != std::string::npos);  // the allowed key is listed
  }
  std::string bad_plugin = config_text(4, 8, 2);
  bad_plugin.replace(bad_plugin.find("plugin = \"adam\""), 15, "plugin = \"adma\"");
  try {
    Trainer t(Config::from_string(bad_plugin, "plugin.toml"));
    FAIL("no error for a missing plugin");
  } catch (const PluginError& e) {
    const std::string m = e.what();
    CHECK(m.find("adma") != std::string::npos);
    CHECK(m.find("adam") != std::string::npos);  // what exists is listed
  }
  CHECK_THROWS_AS(Trainer(Config::from_string(config_text(3, 8, 2), "batch.toml")), ConfigError);
  // Adam's betas must be below 1 (beta = 1 zeroes the bias correction: NaN updates), which the
  // inclusive config ranges alone would let through.
  for (const std::string set : {"optimizer.adam_beta1=1.0", "optimizer.adam_beta2=1", "optimizer.adam_beta1=-0.5"}) {
    INFO(set);
    try {
      Trainer t(Config::from_string(config_text(4, 8, 2), "adam.toml", {set}));
      FAIL("no error for " << set);
    } catch (const ConfigError& e) {
      const std::string m = e.what();
      CHECK(m.find(set.substr(0, set.find('='))) != std::string::npos);
      CHECK(m.find("[0, 1)") != std::string::npos);
      CHECK(m.find("--set") != std::string::npos);  // where the value came from
    }
  }
  try {
    std::string text = config_text(4, 8, 2);
    text.insert(text.find("[logging]"), "adam_beta2 = 1.0\n");
    Trainer t(Config::from_string(text, "adam.toml"));
    FAIL("no error for adam_beta2 = 1.0 in the file");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find("adam.toml") != std::string::npos);
  }
  // min_lr above lr: the message says that the bound is lr's.
  CHECK_THROWS_WITH(Trainer(Config::from_string(config_text(4, 8, 2), "lr.toml", {"optimizer.min_lr=0.01"})),
                    Catch::Contains("optimizer.min_lr = 0.01 (--set) is above optimizer.lr = 0.003"));
  std::string missing = config_text(4, 8, 2);
  missing.replace(missing.find(training_corpus()), training_corpus().size(), "no_such_dataset");
  CHECK_THROWS_AS(Trainer(Config::from_string(missing, "data.toml")), FormatError);
}
