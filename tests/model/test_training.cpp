// The trainer on a small real corpus (byte tokens of Python sources): determinism, gradient
// accumulation equal to one big microbatch, loss falling, validation, config errors (the LR and
// weight-decay schedule: test_optimizer_param_schedule.cpp).
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
#include "tessera/train/components.hpp"
#include "tessera/train/iteration.hpp"
#include "tessera/train/trainer.hpp"
#include "gpt_batch.hpp"
#include "test_util.hpp"
#include "tiny_gpt.hpp"
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

TEST_CASE("logging.log_params_norm: the L2 norm of every weight after each step, as Megatron-LM's", "[unit]") {
  log_state().level = LogLevel::warn;
  Trainer t(Config::from_string(config_text(4, 8, 3), "test.toml", {"logging.log_params_norm=true"}));
  const TrainingRecord r = t.train();
  REQUIRE(r.params_norms.size() == 3);
  std::vector<Parameter*> params;
  t.model().collect_parameters(params);
  double sq = 0;
  for (const Parameter* p : params)
    for (std::int64_t i = 0; i < p->value.numel(); ++i) sq += double(p->value.data<float>()[i]) * p->value.data<float>()[i];
  CHECK(r.params_norms.back() == Approx(std::sqrt(sq)).epsilon(1e-12));
  CHECK(r.params_norms[1] != r.params_norms[2]);  // the weights moved (iteration 1's update has rate 0)
  CHECK(train(config_text(4, 8, 2)).params_norms.empty());  // off by default
}

TEST_CASE("logging.log_num_zeros_in_grad: the gradient's zeros before each step, as Megatron-LM's", "[unit]") {
  // Untied embeddings: the rows of token ids a batch lacks (among them the vocabulary's padding up to
  // 384) get exact zero gradients.
  log_state().level = LogLevel::warn;
  Trainer t(Config::from_string(config_text(4, 8, 3), "test.toml",
                                {"logging.log_num_zeros_in_grad=true", "model.untie_embeddings_and_output_weights=true"}));
  const TrainingRecord r = t.train();
  REQUIRE(r.num_zeros_in_grad.size() == 3);
  // The last step's gradients are still there: count them here.
  std::vector<Parameter*> params;
  t.model().collect_parameters(params);
  double zeros = 0;
  for (const Parameter* p : params)
    for (std::int64_t i = 0; i < p->grad.numel(); ++i) zeros += p->grad.data<float>()[i] == 0.0f;
  CHECK(r.num_zeros_in_grad.back() == zeros);
  CHECK(zeros >= (384 - 257) * 32);  // at least the padding rows × hidden
  CHECK(train(config_text(4, 8, 2)).num_zeros_in_grad.empty());  // off by default
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

TEST_CASE("calculate_per_token_loss: microbatches weighed by their tokens equal one microbatch of them all", "[unit]") {
  // Megatron-Core's --calculate-per-token-loss: the loss summed over the global batch's tokens and
  // divided by their count. Three sequences whose loss masks keep 16, 3 and 9 of their 16 tokens:
  // three microbatches per token equal one microbatch of all three (its mean is over all 28
  // tokens), in the loss and in every gradient; the mean of the three microbatches' means does not.
  constexpr std::int64_t kVocab = 37, T = 16;
  const std::vector<std::int64_t> kept = {16, 3, 9};
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> token(0, kVocab - 1);
  Batch all = gpt_batch(Tensor::empty({3, T}, DType::i32), Tensor::empty({3, T}, DType::i32), Tensor::zeros({3, T}));
  for (std::int64_t i = 0; i < 3 * T; ++i) {
    all.get("tokens").data<std::int32_t>()[i] = token(rng);
    all.get("labels").data<std::int32_t>()[i] = token(rng);
    all.get("loss_mask").data<float>()[i] = (i % T) < kept[static_cast<std::size_t>(i / T)] ? 1.0f : 0.0f;
  }
  const auto rows = [&](std::int64_t first, std::int64_t count) {
    Batch b;
    for (const char* name : {"tokens", "labels", "loss_mask"}) b.set(name, all.get(name).rows(first, first + count).clone());
    return b;
  };
  const auto run = [&](std::int64_t micro, bool per_token) {
    auto model = test::make_tiny_gpt(kVocab, "hidden_dropout = 0.0\nattention_dropout = 0.0\n");
    std::vector<Parameter*> params;
    model->collect_parameters(params);
    auto parallel = Parallel::single();
    auto optimizer = build_optimizer(Config::from_string("[optimizer]\nplugin = \"adam\"\n"), params,
                                     OptimizerContext{parallel, nullptr});
    IterationSettings s;
    s.num_microbatches = 3 / micro;
    s.micro_batch_size = micro;
    s.lr = 0.0;  // the gradients are compared, not the update
    s.clip_grad = 0.0;
    s.per_token_loss = per_token;
    const IterationResult r =
        run_iteration(*model, params, *optimizer, [&](std::int64_t m) { return rows(m * micro, micro); }, s, *parallel);
    std::vector<std::vector<float>> grads;
    for (const Parameter* p : params) grads.push_back(p->grad.to_vector<float>());
    return std::make_pair(r.loss, grads);
  };
  const auto relative = [](const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
    double err = 0, ref = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
      for (std::size_t k = 0; k < a[i].size(); ++k) {
        err += std::pow(double(a[i][k]) - double(b[i][k]), 2);
        ref += std::pow(double(b[i][k]), 2);
      }
    return std::sqrt(err / ref);
  };
  const auto [whole_loss, whole] = run(3, false);
  const auto [per_token_loss, per_token] = run(1, true);
  const auto [mean_loss, mean] = run(1, false);
  CHECK(per_token_loss == Approx(whole_loss).epsilon(1e-6));
  CHECK(relative(per_token, whole) < 1e-5);
  CHECK(std::abs(mean_loss - whole_loss) > 1e-3 * whole_loss);  // the microbatches' means differ
  CHECK(relative(mean, whole) > 1e-2);
  // One microbatch of them all: per token or not, the same.
  const auto [whole_per_token_loss, whole_per_token] = run(3, true);
  CHECK(whole_per_token_loss == Approx(whole_loss).epsilon(1e-6));
  CHECK(relative(whole_per_token, whole) < 1e-6);
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
