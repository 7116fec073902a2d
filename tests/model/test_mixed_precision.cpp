// Mixed precision (issue 10; docs/mixed-precision.md): the loss scaler against Megatron-LM's update
// rule, the precision and scaler keys' errors, f32 master weights with their bf16 copies after an
// optimizer step, and fp16 overflow: the step is skipped with nothing updated, the scale backs off by
// the hysteresis rule, and training then proceeds. The tiny config's bf16/fp16 loss curves against
// fp32: test_mixed_precision_tiny.cpp; layouts and resume in bf16/fp16: tests/parallel.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "expect_error.hpp"
#include "tensor_compare.hpp"
#include "tessera/config.hpp"
#include "tessera/half.hpp"
#include "tessera/logging.hpp"
#include "tessera/ops.hpp"
#include "tessera/optimizer.hpp"
#include "tessera/train/components.hpp"
#include "tessera/train/loss_scaler.hpp"
#include "tessera/train/precision.hpp"
#include "tessera/train/trainer.hpp"
#include "training_corpus.hpp"

using namespace tessera;
using test::bitwise_equal;

namespace {

// Megatron-LM's DynamicGradScaler.update (megatron/optimizer/grad_scaler.py), transcribed
// independently of loss_scaler.cpp.
struct MegatronScaler {
  double scale, min_scale, growth_factor, backoff_factor;
  std::int64_t growth_interval, hysteresis, growth_tracker = 0, hysteresis_tracker;
  void update(bool found_inf) {
    if (found_inf) {
      growth_tracker = 0;
      hysteresis_tracker -= 1;
      if (hysteresis_tracker <= 0) scale = std::max(scale * backoff_factor, min_scale);
    } else {
      growth_tracker += 1;
      if (growth_tracker == growth_interval) {
        growth_tracker = 0;
        hysteresis_tracker = hysteresis;
        scale = scale * growth_factor;
      }
    }
  }
};

LossScalerOptions dynamic(double initial, double min, std::int64_t window, std::int64_t hysteresis,
                          double growth = 2.0, double backoff = 0.5) {
  LossScalerOptions o;
  o.kind = LossScalerOptions::Kind::dynamic;
  o.initial_scale = initial;
  o.min_scale = min;
  o.growth_interval = window;
  o.hysteresis = hysteresis;
  o.growth_factor = growth;
  o.backoff_factor = backoff;
  return o;
}

std::string small_config(const std::string& training_extra) {
  return small_gpt_sections(2) + fmt::format(R"(
[training]
micro_batch_size = 2
global_batch_size = 4
train_iters = 12
seed = 5
num_threads = 2
{}
[optimizer]
plugin = "adam"
lr = 1e-3
lr_warmup_iters = 3
[logging]
log_interval = 100
)", training_extra);
}

}  // namespace

TEST_CASE("the dynamic loss scaler follows Megatron-LM's update rule", "[unit]") {
  // Hand-checked start: hysteresis 2 absorbs the first overflow, the second halves the scale, and
  // without growth the counter stays spent, so every further overflow halves it again.
  LossScaler s(dynamic(1024, 1, 3, 2));
  CHECK(s.scale() == 1024);
  s.update(true);
  CHECK(s.scale() == 1024);
  s.update(true);
  CHECK(s.scale() == 512);
  s.update(true);
  CHECK(s.scale() == 256);
  s.update(false);
  s.update(false);
  CHECK(s.scale() == 256);
  s.update(false);  // the third finite step in a row: grows, and refills the hysteresis
  CHECK(s.scale() == 512);
  s.update(true);
  CHECK(s.scale() == 512);
  CHECK(s.state().hysteresis_tracker == 1);

  // Long random walks, several settings, against the transcription; min_scale is a floor.
  std::mt19937 rng(7);
  for (const LossScalerOptions& o : {dynamic(4294967296.0, 1.0, 1000, 2), dynamic(65536, 4, 5, 1),
                                     dynamic(8, 1, 2, 3, 4.0, 0.25), dynamic(1e30, 1e-3, 7, 2, 1.5, 0.1)}) {
    LossScaler got(o);
    MegatronScaler want{o.initial_scale, o.min_scale, o.growth_factor, o.backoff_factor, o.growth_interval,
                        o.hysteresis, 0, o.hysteresis};
    std::bernoulli_distribution overflow(0.3);
    for (int step = 0; step < 5000; ++step) {
      const bool inf = step < 40 ? true : overflow(rng);  // a run of overflows reaches the floor
      got.update(inf);
      want.update(inf);
      INFO("step " << step);
      REQUIRE(got.scale() == want.scale);
      REQUIRE(got.state().growth_tracker == want.growth_tracker);
      REQUIRE(got.state().hysteresis_tracker == want.hysteresis_tracker);
    }
  }
  // A constant scale never moves, and none is 1.
  LossScalerOptions c;
  c.kind = LossScalerOptions::Kind::constant;
  c.loss_scale = 128;
  LossScaler constant(c);
  constant.update(true);
  CHECK(constant.scale() == 128);
  CHECK(constant.skips_nonfinite());  // Megatron skips overflowed steps with any grad scaler
  CHECK_FALSE(constant.dynamic());
  CHECK_FALSE(LossScaler().skips_nonfinite());
  CHECK(LossScaler().scale() == 1.0);
  CHECK_FALSE(LossScaler().active());
}

TEST_CASE("precision and loss-scaler keys: Megatron's names, defaults and clear errors", "[unit]") {
  const auto precision = [](const std::string& training) {
    return read_precision(Config::from_string("[training]\n" + training, "p.toml")).compute;
  };
  CHECK(precision("") == DType::f32);
  CHECK(precision("precision = \"bf16\"") == DType::bf16);
  CHECK(precision("fp16 = true") == DType::f16);
  CHECK(precision("bf16 = true\nprecision = \"bf16\"") == DType::bf16);
  CHECK_THROWS_WITH(precision("bf16 = true\nfp16 = true"), Catch::Contains("both true"));
  CHECK_THROWS_WITH(precision("fp16 = true\nprecision = \"bf16\""), Catch::Contains("contradicts"));
  CHECK_THROWS_WITH(precision("precision = \"fp8\""), Catch::Contains("fp32") && Catch::Contains("bf16"));
  // tf32: f32 tensors, TF32 matmuls — a GPU setting the CPU and sim backends refuse before any work.
  const PrecisionOptions tf32 = read_precision(Config::from_string("[training]\nprecision = \"tf32\"", "p.toml"));
  CHECK(tf32.compute == DType::f32);
  CHECK(tf32.tf32);
  CHECK(precision_name(tf32) == "tf32");
  CHECK_THROWS_WITH(check_precision_supported(tf32, Device::cpu()),
                    Catch::Contains("training.precision = \"tf32\"") && Catch::Contains("p.toml") &&
                        Catch::Contains("the cpu backend has no TF32 matmuls"));

  const auto scaler = [](const std::string& training, DType t) {
    return read_loss_scaler(Config::from_string("[training]\n" + training, "s.toml"), t);
  };
  const LossScalerOptions d = scaler("", DType::f16);
  CHECK(d.kind == LossScalerOptions::Kind::dynamic);
  CHECK(d.initial_scale == 4294967296.0);  // Megatron-LM's defaults
  CHECK(d.min_scale == 1.0);
  CHECK(d.growth_interval == 1000);
  CHECK(d.hysteresis == 2);
  CHECK(d.growth_factor == 2.0);
  CHECK(d.backoff_factor == 0.5);
  CHECK(scaler("", DType::bf16).kind == LossScalerOptions::Kind::none);
  CHECK(scaler("loss_scale = 512", DType::f16).kind == LossScalerOptions::Kind::constant);
  CHECK(scaler("loss_scale = 512", DType::bf16).loss_scale == 512);
  CHECK_THROWS_WITH(scaler("loss_scale = 0", DType::f16), Catch::Contains("training.loss_scale") && Catch::Contains("s.toml"));
  CHECK_THROWS_WITH(scaler("loss_scale = -2", DType::f16), Catch::Contains("positive"));
  CHECK_THROWS_WITH(scaler("loss_scale = 8", DType::f32), Catch::Contains("mixed precision"));
  CHECK_THROWS_WITH(scaler("hysteresis = 3", DType::bf16), Catch::Contains("fp16"));
  CHECK_THROWS_WITH(scaler("loss_scale = 8\nhysteresis = 3", DType::f16), Catch::Contains("constant"));
  CHECK_THROWS_WITH(scaler("backoff_factor = 1.0", DType::f16), Catch::Contains("backoff_factor"));

  // Bad values are reported before any work: the trainer's constructor, before data is opened.
  log_state().level = LogLevel::warn;
  CHECK_THROWS_WITH(Trainer(Config::from_string(small_config("precision = \"bf16\"\nfp16 = true"), "run.toml")),
                    Catch::Contains("contradicts"));
  CHECK_THROWS_WITH(Trainer(Config::from_string(small_config("precision = \"fp16\"\nloss_scale = 0"), "run.toml")),
                    Catch::Contains("training.loss_scale"));
}

TEST_CASE("mixed precision keeps f32 master weights; Adam writes their bf16/f16 copies in the same pass", "[unit]") {
  for (DType t : {DType::bf16, DType::f16}) {
    INFO(dtype_name(t));
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    Parameter mixed("w", {37, 5}), plain("w", {37, 5});
    for (std::int64_t i = 0; i < mixed.value.numel(); ++i) {
      mixed.value.data<float>()[i] = plain.value.data<float>()[i] = normal(rng);
      mixed.grad.data<float>()[i] = plain.grad.data<float>()[i] = 0.01f * normal(rng);
    }
    make_compute_copies({&mixed}, t);
    REQUIRE(mixed.compute.dtype() == t);
    CHECK(mixed.value.dtype() == DType::f32);
    CHECK(&mixed.weight() == &mixed.compute);
    CHECK(&plain.weight() == &plain.value);
    Config config = Config::from_string("[optimizer]\nplugin = \"adam\"\n", "o.toml");
    auto opt_mixed = build_optimizer(config, {&mixed});
    auto opt_plain = build_optimizer(config, {&plain});
    for (int step = 0; step < 3; ++step) {
      opt_mixed->step(UpdateRates{1e-2f, 0.1f}, 0.5f);
      opt_plain->step(UpdateRates{1e-2f, 0.1f}, 0.5f);
      // The master weight is exactly the f32 update of the f32 gradient…
      CHECK(mixed.value.dtype() == DType::f32);
      CHECK(bitwise_equal(mixed.value, plain.value));
      // …and the copy is that value, rounded once.
      Tensor want = Tensor::empty(mixed.value.shape(), t);
      ops::cast(mixed.value, want);
      CHECK(std::memcmp(want.raw(), mixed.compute.raw(), want.nbytes()) == 0);
    }
    // The copy is a 16-bit compute copy: an f32 one would be the master itself.
    Tensor m = Tensor::zeros(mixed.value.shape()), v = Tensor::zeros(mixed.value.shape()), f32_copy = mixed.value.clone();
    CHECK_THROWS_WITH(ops::adam_step(mixed.value, mixed.grad, m, v, ops::AdamParams{}, &f32_copy),
                      Catch::Contains("bf16 or f16"));
    const NamedTensors a = opt_mixed->state(), b = opt_plain->state();
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      CHECK((a[i].second.dtype() == DType::f32 || a[i].second.dtype() == DType::i64));  // moments f32
      CHECK(std::memcmp(a[i].second.raw(), b[i].second.raw(), a[i].second.nbytes()) == 0);
    }
  }
}

TEST_CASE("fp16 overflow skips the step: nothing updated, the scale backs off, then training proceeds", "[unit]") {
  log_state().level = LogLevel::warn;
  // A scale no fp16 gradient survives; hysteresis 2 lets the first overflow pass without backing
  // off; each later one divides the scale by 10⁶ until it is small enough.
  Trainer t(Config::from_string(small_config(R"(precision = "fp16"
initial_loss_scale = 1e30
hysteresis = 2
backoff_factor = 1e-6
min_loss_scale = 1.0)"),
                                "run.toml"));
  std::vector<Parameter*> params;
  t.model().collect_parameters(params);
  for (Parameter* p : params) {
    REQUIRE(p->value.dtype() == DType::f32);
    REQUIRE(p->compute.dtype() == DType::f16);
  }
  const auto snapshot = [&] {
    std::vector<Tensor> s;
    for (Parameter* p : params) {
      s.push_back(p->value.clone());
      s.push_back(p->compute.clone());
    }
    for (const auto& [name, tensor] : t.optimizer().state()) s.push_back(tensor.clone());
    return s;
  };
  const auto unchanged = [](const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (a[i].nbytes() != b[i].nbytes() || std::memcmp(a[i].raw(), b[i].raw(), a[i].nbytes()) != 0) return false;
    return true;
  };
  MegatronScaler want{1e30, 1.0, 2.0, 1e-6, 1000, 2, 0, 2};
  const double first_lr = t.learning_rate(1);
  std::int64_t it = 1;
  for (; it <= 8; ++it) {
    INFO("iteration " << it << ", scale " << t.loss_scaler().scale());
    REQUIRE(t.loss_scaler().scale() == Approx(want.scale).epsilon(1e-12));
    CHECK(t.learning_rate(it) == first_lr);  // no optimizer step yet: the schedule has not moved
    const std::vector<Tensor> before = snapshot();
    const auto [loss, norm] = t.train_step(it);
    CHECK(std::isfinite(loss));  // the loss itself is unscaled and finite
    const bool skipped = t.skipped_iterations() == it;
    want.update(skipped);
    if (!skipped) {
      CHECK_FALSE(unchanged(before, snapshot()));  // the first real step updates
      CHECK(std::isfinite(norm));
      break;
    }
    CHECK_FALSE(std::isfinite(norm));
    CHECK(unchanged(before, snapshot()));  // parameters, their copies, moments and Adam's step count
  }
  REQUIRE(it >= 3);  // 1e30 and 1e24 surely overflow: at least two iterations were skipped
  REQUIRE(it <= 8);
  CHECK(t.skipped_iterations() == it - 1);
  CHECK(t.loss_scaler().scale() == Approx(want.scale).epsilon(1e-12));
  // Adam counted one step (the skipped iterations none), and the schedule moved by one.
  const auto step = [&] {
    for (const auto& [name, tensor] : t.optimizer().state())
      if (name == "step") return tensor.data<std::int64_t>()[0];
    return std::int64_t{-1};
  };
  CHECK(step() == 1);
  CHECK(t.learning_rate(it + 1) != first_lr);  // warmup: the second step's rate differs from the first's
  for (std::int64_t next = it + 1; next <= it + 3; ++next) {
    const auto [loss, norm] = t.train_step(next);
    CHECK(std::isfinite(loss));
    CHECK(std::isfinite(norm));
  }
  CHECK(t.skipped_iterations() == it - 1);
}

TEST_CASE("mixed precision on a backend that cannot run it is a ConfigError before any work", "[unit]") {
  // The sim device claiming f32 only, as a device without bf16 would.
  REQUIRE(setenv("TESSERA_SIM_F32_ONLY", "1", 1) == 0);
  log_state().level = LogLevel::warn;
  CHECK_THROWS_WITH(Trainer(Config::from_string(small_config("device = \"sim\"\nprecision = \"bf16\""), "run.toml")),
                    Catch::Contains("training.precision = \"bf16\"") && Catch::Contains("run.toml") &&
                        Catch::Contains("sim backend cannot run") && Catch::Contains("linear_forward"));
  unsetenv("TESSERA_SIM_F32_ONLY");
}
