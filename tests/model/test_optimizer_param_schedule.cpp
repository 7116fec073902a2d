// The learning-rate and weight-decay schedule against a transcription of Megatron-LM's
// OptimizerParamScheduler: every decay style (WSD's four anneals too), warmups by iterations, by
// fraction and from lr_warmup_init, the weight-decay increment; the keys' errors; what the trainer
// applies per update; and resuming, where the checkpoint's schedule must match unless
// override_opt_param_scheduler or use_checkpoint_opt_param_scheduler says otherwise.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "expect_error.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/nn/parameter.hpp"
#include "tessera/train/checkpoint.hpp"
#include "tessera/train/optimizer_param_schedule.hpp"
#include "tessera/train/trainer.hpp"
#include "test_util.hpp"
#include "training_corpus.hpp"

using namespace tessera;

namespace {

// Megatron-LM's OptimizerParamScheduler (megatron/core/optimizer_param_scheduler.py), transcribed:
// its steps count samples (the global batch per successful optimizer.step()); it is built with
// step(0), and train_step calls step() after optimizer.step(), so the rates an update applies are
// get_lr() and get_wd() as they stood before that update.
struct MegatronScheduler {
  double init_lr, max_lr, min_lr, lr_warmup_steps;
  std::int64_t lr_decay_steps;
  std::string lr_decay_style;
  std::int64_t wsd_decay_steps = 0;
  std::string lr_wsd_decay_style = "exponential";
  double start_wd = 0.01, end_wd = 0.01;
  std::int64_t wd_incr_steps = 1;
  std::string wd_incr_style = "constant";
  std::int64_t num_steps = 0;

  double get_lr() const {
    if (lr_warmup_steps > 0 && double(num_steps) <= lr_warmup_steps)
      return init_lr + (max_lr - init_lr) * double(num_steps) / lr_warmup_steps;
    if (lr_decay_style == "constant") return max_lr;
    if (num_steps > lr_decay_steps) return min_lr;
    if (lr_decay_style == "inverse-square-root") {
      const double w = std::max(lr_warmup_steps, 1.0), n = double(std::max<std::int64_t>(num_steps, 1));
      return std::max(min_lr, max_lr * std::pow(w, 0.5) / std::pow(n, 0.5));
    }
    const double decay_ratio = (double(num_steps) - lr_warmup_steps) / (double(lr_decay_steps) - lr_warmup_steps);
    REQUIRE(decay_ratio >= 0.0);
    REQUIRE(decay_ratio <= 1.0);
    double coeff = 0;
    if (lr_decay_style == "linear") {
      coeff = 1.0 - decay_ratio;
    } else if (lr_decay_style == "cosine") {
      coeff = 0.5 * (std::cos(M_PI * decay_ratio) + 1.0);
    } else {
      REQUIRE(lr_decay_style == "WSD");
      const std::int64_t anneal_start = lr_decay_steps - wsd_decay_steps;
      if (num_steps <= anneal_start) {
        coeff = 1.0;
      } else {
        const double r = double(num_steps - anneal_start) / double(wsd_decay_steps);
        if (lr_wsd_decay_style == "linear") coeff = 1.0 - r;
        else if (lr_wsd_decay_style == "cosine") coeff = 0.5 * (std::cos(M_PI * r) + 1.0);
        else if (lr_wsd_decay_style == "exponential") coeff = 2.0 * std::pow(0.5, r) - 1.0;
        else coeff = 1.0 - std::sqrt(r);  // minus_sqrt
      }
    }
    return min_lr + coeff * (max_lr - min_lr);
  }

  double get_wd() const {
    if (num_steps > wd_incr_steps) return end_wd;
    if (wd_incr_style == "constant") return end_wd;
    const double incr_ratio = double(num_steps) / double(wd_incr_steps);
    const double coeff = wd_incr_style == "linear" ? incr_ratio : 0.5 * (std::cos(M_PI * (1 - incr_ratio)) + 1.0);
    return start_wd + coeff * (end_wd - start_wd);
  }
};

OptimizerParamSchedule read(const std::vector<std::string>& keys, std::int64_t train_iters = 20,
                            std::int64_t batch = 8) {
  return read_optimizer_param_schedule(Config::from_string("[optimizer]\n", "s.toml", keys), RunLength{train_iters, batch});
}

TrainingRecord train(const std::string& text, const std::vector<std::string>& overrides = {}) {
  log_state().level = LogLevel::warn;
  Trainer t(Config::from_string(text, "test.toml", overrides));
  return t.train();
}

std::vector<std::vector<float>> values(const std::vector<Parameter*>& params) {
  std::vector<std::vector<float>> out;
  for (const Parameter* p : params) out.emplace_back(p->value.data<float>(), p->value.data<float>() + p->value.numel());
  return out;
}

}  // namespace

TEST_CASE("the learning rate follows Megatron-LM's scheduler, every style and warmup", "[unit]") {
  LrSchedule s;
  s.lr = 1.0;
  s.min_lr = 0.1;
  s.warmup_samples = 10;
  s.decay_samples = 110;
  s.style = "cosine";
  CHECK(s.at(0) == 0.0);
  CHECK(s.at(5) == Approx(0.5));
  CHECK(s.at(10) == Approx(1.0));
  CHECK(s.at(60) == Approx(0.55));  // halfway: min + ½(1 + cos(π/2))(max − min)
  CHECK(s.at(110) == Approx(0.1));
  CHECK(s.at(500) == Approx(0.1));
  s.style = "linear";
  CHECK(s.at(35) == Approx(0.775));
  s.style = "WSD";  // constant until the last 20 samples, then 2·0.5^r − 1: halfway 2/√2 − 1
  s.wsd_decay_samples = 20;
  CHECK(s.at(90) == Approx(1.0));
  CHECK(s.at(100) == Approx(0.1 + 0.9 * (std::sqrt(2.0) - 1.0)));
  CHECK(s.at(110) == Approx(0.1));

  // Every style and anneal, warmups by iterations, by a fraction that ends between iterations and
  // from lr_warmup_init, through the keys as tessera reads them, against the transcription.
  const std::int64_t batch = 8, train_iters = 20;
  struct Warmup {
    std::vector<std::string> keys;
    double init_lr, samples;
  };
  const std::vector<Warmup> warmups = {{{}, 0.0, 0.0},
                                       {{"optimizer.lr_warmup_iters=3"}, 0.0, 24.0},
                                       {{"optimizer.lr_warmup_fraction=0.13"}, 0.0, 0.13 * 160},
                                       {{"optimizer.lr_warmup_iters=3", "optimizer.lr_warmup_init=0.25"}, 0.25, 24.0}};
  for (const std::string style : {"constant", "linear", "cosine", "inverse-square-root", "WSD"})
    for (const std::string anneal : {"exponential", "linear", "cosine", "minus_sqrt"})
      for (const Warmup& w : warmups) {
        if (style != "WSD" && anneal != "exponential") continue;
        std::vector<std::string> keys = {"optimizer.lr=1.0", "optimizer.min_lr=0.1",
                                         "optimizer.lr_decay_style=\"" + style + "\""};
        keys.insert(keys.end(), w.keys.begin(), w.keys.end());
        if (style == "WSD") {
          keys.push_back("optimizer.lr_wsd_decay_iters=6");
          keys.push_back("optimizer.lr_wsd_decay_style=\"" + anneal + "\"");
        }
        INFO(fmt::format("{}", fmt::join(keys, " ")));
        const OptimizerParamSchedule p = read(keys, train_iters, batch);
        MegatronScheduler m{w.init_lr, 1.0, 0.1, w.samples, train_iters * batch, style, 6 * batch, anneal};
        for (std::int64_t steps = 0; steps <= 30; ++steps, m.num_steps += batch) {
          INFO("after " << steps << " steps");
          CHECK(p.lr.at(steps * batch) == Approx(m.get_lr()).epsilon(1e-12).margin(1e-15));
        }
      }
}

TEST_CASE("the weight decay follows Megatron-LM's scheduler: constant, linear or cosine increment", "[unit]") {
  const std::int64_t batch = 4, train_iters = 10;
  for (const std::string style : {"constant", "linear", "cosine"}) {
    INFO(style);
    const std::vector<std::string> keys =
        style == "constant" ? std::vector<std::string>{"optimizer.weight_decay=0.1"}
                            : std::vector<std::string>{"optimizer.weight_decay_incr_style=\"" + style + "\"",
                                                       "optimizer.start_weight_decay=0.02",
                                                       "optimizer.end_weight_decay=0.3"};
    const OptimizerParamSchedule p = read(keys, train_iters, batch);
    MegatronScheduler m{0, 1, 0, 0, 1, "constant"};
    m.start_wd = style == "constant" ? 0.1 : 0.02;
    m.end_wd = style == "constant" ? 0.1 : 0.3;
    m.wd_incr_steps = train_iters * batch;
    m.wd_incr_style = style;
    for (std::int64_t steps = 0; steps <= 14; ++steps, m.num_steps += batch) {
      INFO("after " << steps << " steps");
      CHECK(p.weight_decay.at(steps * batch) == Approx(m.get_wd()).epsilon(1e-12));
    }
  }
  CHECK(read({}).weight_decay.end == 0.01);  // Megatron-LM's default weight decay
}

TEST_CASE("schedule keys that contradict or lack each other are ConfigErrors naming them", "[unit]") {
  const auto error = [](const std::vector<std::string>& keys) { return message_of<ConfigError>([&] { read(keys); }); };
  CHECK_THAT(error({"optimizer.lr_warmup_iters=2", "optimizer.lr_warmup_fraction=0.1"}),
             Catch::Contains("lr_warmup_iters = 2") && Catch::Contains("lr_warmup_fraction") &&
                 Catch::Contains("one or the other"));
  CHECK_THAT(error({"optimizer.lr_warmup_fraction=1.5"}), Catch::Contains("lr_warmup_fraction"));
  CHECK_THAT(error({"optimizer.lr=1e-3", "optimizer.lr_warmup_init=1e-2"}),
             Catch::Contains("lr_warmup_init = 0.01") && Catch::Contains("above optimizer.lr"));
  CHECK_THAT(error({"optimizer.lr_decay_style=\"WSD\""}), Catch::Contains("needs optimizer.lr_wsd_decay_iters"));
  CHECK_THAT(error({"optimizer.weight_decay_incr_style=\"cosine\"", "optimizer.start_weight_decay=0.1",
                    "optimizer.end_weight_decay=0.01"}),
             Catch::Contains("end_weight_decay = 0.01") && Catch::Contains("below optimizer.start_weight_decay"));
  CHECK_THAT(error({"optimizer.lr_decay_style=\"wsd\""}), Catch::Contains("WSD") && Catch::Contains("cosine"));
  CHECK_THAT(error({"optimizer.lr_decay_style=\"WSD\"", "optimizer.lr_wsd_decay_iters=2",
                    "optimizer.lr_wsd_decay_style=\"step\""}),
             Catch::Contains("minus_sqrt"));
  CHECK_THAT(error({"optimizer.start_weight_decay=0.1"}),
             Catch::Contains("start_weight_decay") && Catch::Contains("weight_decay_incr_style"));
  CHECK_THAT(error({"optimizer.weight_decay_incr_style=\"linear\"", "optimizer.start_weight_decay=0"}),
             Catch::Contains("needs optimizer.end_weight_decay"));
  CHECK_THAT(message_of<ConfigError>([] {
               read_schedule_on_resume(Config::from_string(
                   "[optimizer]\noverride_opt_param_scheduler = true\nuse_checkpoint_opt_param_scheduler = true\n", "s.toml"));
             }),
             Catch::Contains("both true"));
  // A warmup by fraction may end between iterations, as Megatron's: 0.1 × 25 iterations × 8 = 20
  // samples, 2.5 iterations.
  // WSD anneals of 0 (stable to the end of the decay, then min_lr) and longer than the decay (under
  // way when the warmup ends) are Megatron's too.
  for (const std::int64_t wsd : {0, 25}) {
    INFO("lr_wsd_decay_iters " << wsd);
    const OptimizerParamSchedule w = read({"optimizer.lr=1", "optimizer.min_lr=0.1", "optimizer.lr_decay_style=\"WSD\"",
                                           "optimizer.lr_warmup_iters=2", fmt::format("optimizer.lr_wsd_decay_iters={}", wsd)});
    MegatronScheduler m{0.0, 1.0, 0.1, 16.0, 160, "WSD", wsd * 8};
    for (std::int64_t steps = 0; steps <= 22; ++steps, m.num_steps += 8)
      CHECK(w.lr.at(steps * 8) == Approx(m.get_lr()).epsilon(1e-12).margin(1e-15));
  }
  const OptimizerParamSchedule p = read({"optimizer.lr=1", "optimizer.lr_warmup_fraction=0.1", "optimizer.lr_decay_iters=25"});
  CHECK(p.lr.warmup_samples == 20.0);
  CHECK(p.lr.at(2 * 8) == Approx(16.0 / 20.0));
  CHECK(p.describe().find("linear warmup from 0 over 2.5 iterations") != std::string::npos);
}

TEST_CASE("the update of iteration k applies Megatron-LM's rates (the schedule before it); the log shows the rate after it", "[unit]") {
  log_state().level = LogLevel::warn;
  // Warmup 2 and cosine decay to 0 at iteration 6, weight decay rising linearly from 0 to 0.5 over
  // the 6 iterations: Megatron applies lr 0, lr/2, lr, … and logs lr/2, lr, ….
  const std::vector<std::string> keys = {"optimizer.lr_warmup_iters=2", "optimizer.weight_decay_incr_style=\"linear\"",
                                         "optimizer.start_weight_decay=0", "optimizer.end_weight_decay=0.5"};
  Trainer t(Config::from_string(small_gpt_run(2, "cpu", 6), "test.toml", keys));
  std::vector<Parameter*> params;
  t.model().collect_parameters(params);
  REQUIRE_FALSE(params.empty());
  MegatronScheduler m{0.0, 3e-3, 0.0, 2 * 4, 6 * 4, "cosine"};
  m.start_wd = 0.0, m.end_wd = 0.5, m.wd_incr_steps = 6 * 4, m.wd_incr_style = "linear";
  for (std::int64_t it = 1; it <= 6; ++it) {
    INFO("iteration " << it);
    CHECK(t.learning_rate(it) == Approx(m.get_lr()).epsilon(1e-12));  // what this update applies
    CHECK(t.weight_decay(it) == Approx(m.get_wd()).epsilon(1e-12));
    const auto before = values(params);
    t.train_step(it);
    m.num_steps += 4;
    CHECK(t.logged_learning_rate(it) == Approx(m.get_lr()).epsilon(1e-12));  // Megatron's log line
    // The first update's rate is 0: Adam moves nothing (weight decay scales by 1 − lr·wd = 1).
    CHECK((values(params) == before) == (it == 1));
  }
  // The logged rates of a whole run are the ones the log lines show: lr/2, lr, then the cosine to 0.
  const TrainingRecord r = train(small_gpt_run(2, "cpu", 6), keys);
  REQUIRE(r.learning_rates.size() == 6);
  for (std::int64_t it = 1; it <= 6; ++it)
    CHECK(r.learning_rates[it - 1] == Approx(t.param_schedule().lr.at(it * 4)).epsilon(1e-12));
  CHECK(r.learning_rates.back() == 0.0);
}

TEST_CASE("the optimizer applies the scheduled weight decay of each update", "[unit]") {
  log_state().level = LogLevel::warn;
  // No warmup: update 1 applies weight decay 0 in both runs, update 2 applies 0 in one and 2.5 in
  // the other (0 → 5 over 2 iterations).
  const auto run = [](const std::vector<std::string>& wd) {
    std::vector<std::string> keys = {"optimizer.lr_decay_style=\"constant\""};
    keys.insert(keys.end(), wd.begin(), wd.end());
    Trainer t(Config::from_string(small_gpt_run(2, "cpu", 2), "test.toml", keys));
    std::vector<Parameter*> params;
    t.model().collect_parameters(params);
    std::vector<std::vector<std::vector<float>>> after;
    for (std::int64_t it = 1; it <= 2; ++it) {
      t.train_step(it);
      after.push_back(values(params));
    }
    return after;
  };
  const auto none = run({"optimizer.weight_decay=0"});
  const auto rising = run({"optimizer.weight_decay_incr_style=\"linear\"", "optimizer.start_weight_decay=0",
                           "optimizer.end_weight_decay=5"});
  CHECK(none[0] == rising[0]);
  CHECK(none[1] != rising[1]);
}

TEST_CASE("decoupled_lr: the embedding and output layer run the schedule with their own peak and floor", "[unit]") {
  // Megatron-Core's --decoupled-lr / --decoupled-min-lr: the same warmup and decay, another max_lr
  // and min_lr (min_lr by default) for the parameters it marks is_embedding_or_output_parameter.
  const OptimizerParamSchedule s = read({"optimizer.lr=1e-3", "optimizer.min_lr=1e-4", "optimizer.decoupled_lr=5e-3",
                                         "optimizer.decoupled_min_lr=5e-4", "optimizer.lr_warmup_iters=2",
                                         "optimizer.lr_decay_style=\"cosine\""});
  REQUIRE(s.decoupled());
  MegatronScheduler decoupled{0.0, 5e-3, 5e-4, 2 * 8, 20 * 8, "cosine"}, plain{0.0, 1e-3, 1e-4, 2 * 8, 20 * 8, "cosine"};
  for (std::int64_t n = 0; n <= 24 * 8; n += 4) {
    decoupled.num_steps = plain.num_steps = n;
    CHECK(s.decoupled_schedule().at(n) == Approx(decoupled.get_lr()).epsilon(1e-12));
    CHECK(s.lr.at(n) == Approx(plain.get_lr()).epsilon(1e-12));
  }
  CHECK(read({"optimizer.min_lr=1e-4", "optimizer.decoupled_lr=5e-3"}).decoupled_min_lr == 1e-4);
  CHECK_FALSE(read({}).decoupled());
  CHECK_THAT(message_of<ConfigError>([] { read({"optimizer.decoupled_min_lr=1e-5"}); }),
             Catch::Contains("optimizer.decoupled_min_lr (--set) is the floor of optimizer.decoupled_lr, which is not set"));
  CHECK_THAT(message_of<ConfigError>([] { read({"optimizer.decoupled_lr=1e-5", "optimizer.min_lr=1e-4", "optimizer.lr=1e-3"}); }),
             Catch::Contains("optimizer.decoupled_min_lr = 0.0001 (its default, optimizer.min_lr) is above "
                             "optimizer.decoupled_lr = 1e-05"));
  CHECK_THAT(s.describe(), Catch::Contains("the embedding and output layer at decoupled_lr 0.005 (min 0.0005)"));
  OptimizerParamSchedule other = s;
  other.decoupled_lr = 6e-3;
  CHECK(schedule_differences(s, other) == std::vector<std::string>{"decoupled_lr: 0.005 in the checkpoint, 0.006 here"});
  other.decoupled_lr = -1;
  CHECK(schedule_differences(s, other) == std::vector<std::string>{"decoupled_lr: 0.005 in the checkpoint, none here"});

  // One Adam update at a constant rate: the word embeddings and an untied output layer move by
  // decoupled_lr / lr = 4 times as much as without it (Adam's step and its decoupled weight decay are
  // both proportional to the rate), every other parameter exactly as without it.
  log_state().level = LogLevel::warn;
  const auto update = [](const std::vector<std::string>& more) {
    std::vector<std::string> keys = {"optimizer.lr_decay_style=\"constant\"", "optimizer.weight_decay=0.1",
                                     "model.untie_embeddings_and_output_weights=true"};
    keys.insert(keys.end(), more.begin(), more.end());
    Trainer t(Config::from_string(small_gpt_run(2, "cpu", 1), "test.toml", keys));
    std::vector<Parameter*> params;
    t.model().collect_parameters(params);
    const auto before = values(params);
    t.train_step(1);
    std::vector<std::pair<std::string, std::vector<double>>> deltas;
    const auto after = values(params);
    for (std::size_t i = 0; i < params.size(); ++i) {
      std::vector<double> d(after[i].size());
      for (std::size_t k = 0; k < d.size(); ++k) d[k] = double(after[i][k]) - double(before[i][k]);
      deltas.emplace_back(params[i]->embedding_or_output ? params[i]->name : "", d);
    }
    return deltas;
  };
  const auto base = update({});
  const auto faster = update({"optimizer.decoupled_lr=0.012"});
  REQUIRE(base.size() == faster.size());
  std::vector<std::string> marked;
  for (std::size_t i = 0; i < base.size(); ++i) {
    const auto& [name, d] = faster[i];
    if (name.empty()) {
      CHECK(d == base[i].second);
      continue;
    }
    marked.push_back(name);
    double err = 0, ref = 0;
    for (std::size_t k = 0; k < d.size(); ++k) {
      err += std::pow(d[k] - 4.0 * base[i].second[k], 2);
      ref += std::pow(4.0 * base[i].second[k], 2);
    }
    INFO(name);
    CHECK(ref > 0);
    CHECK(std::sqrt(err / ref) < 1e-4);
  }
  std::sort(marked.begin(), marked.end());
  CHECK(marked == std::vector<std::string>{"embedding.word_embeddings.weight", "output_layer.weight"});
}

TEST_CASE("a resumed run keeps its checkpoint's schedule unless a key says which to follow", "[unit]") {
  log_state().level = LogLevel::warn;
  test::TempDir dir;
  const std::string save = dir / "run";
  const std::vector<std::string> first = {"checkpoint.save=\"" + save + "\"", "checkpoint.save_interval=4",
                                          "optimizer.lr_warmup_iters=2"};
  train(small_gpt_run(2, "cpu", 4), first);
  const std::string meta_path = save + "/iter_0000004/metadata.json";
  const CheckpointMetadata meta = parse_checkpoint_metadata(test::read_text(meta_path), meta_path);
  REQUIRE(meta.param_schedule);
  CHECK(meta.param_schedule->lr.decay_samples == 16);
  CHECK(meta.param_schedule->lr.warmup_samples == 8.0);

  const auto resumed = [&](std::vector<std::string> more) {
    more.push_back("checkpoint.load=\"" + save + "\"");
    more.push_back("checkpoint.save=\"\"");
    more.push_back("checkpoint.save_interval=0");
    more.push_back("optimizer.lr_warmup_iters=2");
    return Config::from_string(small_gpt_run(2, "cpu", 8), "resume.toml", more);
  };
  // Doubling train_iters doubles the default lr_decay_iters: Megatron-LM refuses that, and so does this.
  const std::string msg = message_of<ConfigError>([&] { Trainer t(resumed({})); });
  CHECK_THAT(msg, Catch::Contains("another learning-rate or weight-decay schedule") &&
                      Catch::Contains("lr decay: 16 samples (4 iterations) in the checkpoint, 32 samples (8 iterations) here") &&
                      Catch::Contains("override_opt_param_scheduler = true to follow this config from iteration 5") &&
                      Catch::Contains("use_checkpoint_opt_param_scheduler = true"));
  // The constant weight decay is the same: its increment length does not count.
  CHECK_THAT(msg, !Catch::Contains("weight-decay increment"));
  {  // The same decay as the checkpoint's: it goes on with it.
    Trainer t(resumed({"optimizer.lr_decay_iters=4"}));
    CHECK(t.learning_rate(5) == meta.param_schedule->lr.at(4 * 4));
  }
  {  // This config's schedule from iteration 5 on: cosine from 2 to 8, 2/6 of the way.
    Trainer t(resumed({"optimizer.override_opt_param_scheduler=true"}));
    CHECK(t.learning_rate(5) == Approx(3e-3 * 0.5 * (std::cos(M_PI / 3) + 1)).epsilon(1e-12));
    CHECK(t.train().losses.size() == 4);
  }
  {  // The checkpoint's: the decay ended at iteration 4, so min_lr.
    Trainer t(resumed({"optimizer.use_checkpoint_opt_param_scheduler=true"}));
    CHECK(t.param_schedule().lr.decay_samples == 16);
    CHECK(t.learning_rate(5) == 0.0);
    CHECK(t.learning_rate(6) == 0.0);
  }
  // A changed peak and weight decay are named too.
  CHECK_THAT(message_of<ConfigError>([&] {
               Trainer t(resumed({"optimizer.lr_decay_iters=4", "optimizer.lr=1e-3", "optimizer.weight_decay=0.1"}));
             }),
             Catch::Contains("lr: 0.003 in the checkpoint, 0.001 here") &&
                 Catch::Contains("weight_decay: 0.01 in the checkpoint, 0.1 here"));

  // metadata.json's record is checked like its other fields; a checkpoint of an older Tessera has
  // none, and then nothing is compared.
  const std::string text = test::read_text(meta_path);
  const auto edited = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    const auto at = t.find(from);
    REQUIRE(at != std::string::npos);
    return t.replace(at, from.size(), to);
  };
  CHECK_THAT(message_of<FormatError>([&] {
               parse_checkpoint_metadata(edited("\"lr_decay_style\": \"cosine\"", "\"lr_decay_style\": \"bogus\""), "m");
             }),
             Catch::Contains("opt_param_scheduler.lr_decay_style") && Catch::Contains("\"bogus\""));
  CHECK_THAT(message_of<FormatError>([&] {
               parse_checkpoint_metadata(edited("\"num_steps\": 16", "\"num_steps\": 12"), "m");
             }),
             Catch::Contains("num_steps' 12 is not optimizer_steps 4"));
  CHECK_THAT(message_of<FormatError>([&] {
               parse_checkpoint_metadata(edited("\"max_lr\": 0.003", "\"max_lr\": -1"), "m");
             }),
             Catch::Contains("opt_param_scheduler.max_lr"));
  const std::string older = edited("\"opt_param_scheduler\"", "\"no_scheduler_record\"");
  CHECK_FALSE(parse_checkpoint_metadata(older, "m").param_schedule);
}

TEST_CASE("a run by samples (train_samples) counts its schedule in samples, as Megatron-LM's", "[unit]") {
  // Megatron's GPT-3 example: --train-samples, --lr-decay-samples, --lr-warmup-samples. 1000 samples
  // of global batch 8 are 125 iterations; the lengths need not be whole batches.
  const RunLength run{125, 8, 1000};
  const auto read_samples = [&](const std::vector<std::string>& keys) {
    return read_optimizer_param_schedule(Config::from_string("[optimizer]\n", "s.toml", keys), run);
  };
  for (const std::string style : {"linear", "cosine", "WSD"}) {
    INFO(style);
    const OptimizerParamSchedule p = read_samples({"optimizer.lr=1", "optimizer.min_lr=0.1",
                                                   "optimizer.lr_decay_style=\"" + style + "\"",
                                                   "optimizer.lr_decay_samples=900", "optimizer.lr_warmup_samples=50",
                                                   "optimizer.lr_wsd_decay_samples=300"});
    MegatronScheduler m{0.0, 1.0, 0.1, 50.0, 900, style, 300};
    for (std::int64_t steps = 0; steps <= 130; ++steps, m.num_steps += 8) {
      INFO("after " << steps << " steps");
      CHECK(p.lr.at(steps * 8) == Approx(m.get_lr()).epsilon(1e-12).margin(1e-15));
    }
  }
  CHECK(read_samples({}).lr.decay_samples == 1000);  // lr_decay_samples defaults to train_samples
  // Described in samples (a batch ramp makes iterations uneven).
  CHECK_THAT(read_samples({"optimizer.lr_warmup_samples=50", "optimizer.lr_decay_samples=900"}).describe(),
             Catch::Contains("linear warmup from 0 over 50 samples") && Catch::Contains("min_lr 0 at sample 900"));
  CHECK(read_samples({"optimizer.weight_decay_incr_style=\"linear\"", "optimizer.start_weight_decay=0",
                      "optimizer.end_weight_decay=1"})
            .weight_decay.incr_samples == 1000);
  CHECK(read_samples({"optimizer.lr_warmup_fraction=0.01"}).lr.warmup_samples == 10.0);
  // The lengths come in the run's unit; the other's keys are errors saying which to use.
  CHECK_THAT(message_of<ConfigError>([&] { read_samples({"optimizer.lr_decay_iters=100"}); }),
             Catch::Contains("optimizer.lr_decay_iters") && Catch::Contains("set optimizer.lr_decay_samples instead"));
  CHECK_THAT(message_of<ConfigError>([&] { read({"optimizer.lr_warmup_samples=10"}); }),
             Catch::Contains("optimizer.lr_warmup_samples") && Catch::Contains("set optimizer.lr_warmup_iters instead"));
  // As Megatron's validate_args: a warmup of 0 in the other unit is no conflict.
  CHECK(read_samples({"optimizer.lr_warmup_iters=0"}).lr.warmup_samples == 0.0);

  // The trainer: train_iters = 37 // 4 = 9, the train split sized for all 37 samples (Megatron asks
  // train_samples of it), the schedule over 37 samples.
  log_state().level = LogLevel::warn;
  std::string text = small_gpt_run(2, "cpu", 4);
  const auto at = text.find("train_iters = 4\n");
  REQUIRE(at != std::string::npos);
  const std::string by_samples = std::string(text).replace(at, 16, "train_samples = 37\n");
  {
    test::TempDir cache;
    Trainer t(Config::from_string(by_samples, "samples.toml", {"data.data_cache_path=\"" + cache.path.string() + "\""}));
    CHECK(t.options().train_iters == 9);
    CHECK(t.param_schedule().lr.decay_samples == 37);
    // The sample count names the cached index files, as Megatron's (…_train_indexmap_37ns_…).
    bool asked_37 = false;
    for (const auto& f : std::filesystem::directory_iterator(cache.path))
      asked_37 = asked_37 || f.path().filename().string().find("_train_indexmap_37ns_") != std::string::npos;
    CHECK(asked_37);
  }
  CHECK_THAT(message_of<ConfigError>([&] {
               Trainer t(Config::from_string(by_samples, "samples.toml", {"training.train_iters=4"}));
             }),
             Catch::Contains("train_iters") && Catch::Contains("train_samples") && Catch::Contains("both set"));
  CHECK_THAT(message_of<ConfigError>([&] {
               Trainer t(Config::from_string(by_samples, "samples.toml", {"training.train_samples=3"}));
             }),
             Catch::Contains("train_samples"));
}
