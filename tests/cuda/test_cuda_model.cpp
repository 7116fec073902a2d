// GPT training on the GPU against the CPU (label cuda; exits 77 — skipped — without a GPU):
// - f32: three iterations of the small GPT on cuda and on the CPU: every loss within 1e-5 relative,
//   every gradient norm within 1e-4, and the parameters after them within 1e-4 relative L2;
// - tf32 on cuda against f32 on the CPU: three losses within 1e-3 relative (and not bit-equal: TF32 is on);
// - bf16 on cuda against f32 on the CPU: ten losses within 0.05 each (llm.c's bf16 bar);
// - fp16 with a forced overflow (initial scale 1e30): the first steps are skipped and the scale backs off,
//   then training proceeds;
// - host↔device traffic per iteration stays small and independent of depth (the sim device's rule);
// - model.attention_dropout > 0 is refused at start (the kernels do not draw its masks yet), and so
//   is data.reset_attention_mask (nor do they take per-query first keys);
// - f32 with model.kv_channels 12 (heads wider than hidden / heads) equals the CPU's.
#define CATCH_CONFIG_RUNNER
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tessera/backend.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/model.hpp"
#include "tessera/nn/parameter.hpp"
#include "tessera/train/trainer.hpp"
#include "device_traffic.hpp"
#include "training_corpus.hpp"

using namespace tessera;

namespace {

std::string config_text(int layers, const std::string& device, std::int64_t iters, const std::string& training_extra = "") {
  return small_gpt_run(layers, device, iters, training_extra);
}

// Every parameter's f32 value, concatenated in the model's order, read back to the host.
std::vector<double> parameter_values(Trainer& t) {
  std::vector<Parameter*> params;
  t.model().collect_parameters(params);
  std::vector<double> out;
  for (Parameter* p : params)
    for (float v : p->value.to(Device::cpu()).to_vector<float>()) out.push_back(v);
  return out;
}

double rel_l2(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

}  // namespace

TEST_CASE("f32 training on cuda equals the CPU's within float tolerance", "[cuda]") {
  log_state().level = LogLevel::warn;
  Trainer cpu(Config::from_string(config_text(2, "cpu", 3), "cpu.toml"));
  Trainer gpu(Config::from_string(config_text(2, "cuda", 3), "cuda.toml"));
  const TrainingRecord a = cpu.train(), b = gpu.train();
  REQUIRE(a.losses.size() == 3);
  REQUIRE(b.losses.size() == 3);
  for (std::size_t i = 0; i < a.losses.size(); ++i) {
    INFO("iteration " << i + 1 << ": cpu " << a.losses[i] << " cuda " << b.losses[i]);
    CHECK(std::abs(a.losses[i] - b.losses[i]) <= 1e-5 * std::abs(a.losses[i]));
    CHECK(std::abs(a.grad_norms[i] - b.grad_norms[i]) <= 1e-4 * std::abs(a.grad_norms[i]));
  }
  const double d = rel_l2(parameter_values(gpu), parameter_values(cpu));
  INFO("parameters after 3 steps, relative L2 difference " << d);
  CHECK(d <= 1e-4);
}

TEST_CASE("f32 training with kv_channels (heads wider than hidden / heads) on cuda equals the CPU's", "[cuda]") {
  // Heads of 12 channels (32 / 4 = 8 by default): q and the output projection 48 wide, not 32.
  log_state().level = LogLevel::warn;
  Trainer cpu(Config::from_string(config_text(2, "cpu", 3), "cpu.toml", {"model.kv_channels=12"}));
  Trainer gpu(Config::from_string(config_text(2, "cuda", 3), "cuda.toml", {"model.kv_channels=12"}));
  const TrainingRecord a = cpu.train(), b = gpu.train();
  REQUIRE(b.losses.size() == 3);
  for (std::size_t i = 0; i < a.losses.size(); ++i)
    CHECK(std::abs(a.losses[i] - b.losses[i]) <= 1e-5 * std::abs(a.losses[i]));
  CHECK(rel_l2(parameter_values(gpu), parameter_values(cpu)) <= 1e-4);
}

TEST_CASE("tf32 training on cuda follows the CPU's f32 losses within 1e-3 relative", "[cuda]") {
  log_state().level = LogLevel::warn;
  Trainer cpu(Config::from_string(config_text(2, "cpu", 3), "cpu.toml"));
  Trainer gpu(Config::from_string(config_text(2, "cuda", 3, "precision = \"tf32\""), "cuda.toml"));
  const TrainingRecord a = cpu.train(), b = gpu.train();
  REQUIRE(b.losses.size() == 3);
  bool differs = false;  // TF32 rounds the products' inputs to 10 mantissa bits: not bit-equal to f32
  for (std::size_t i = 0; i < a.losses.size(); ++i) {
    INFO("iteration " << i + 1 << ": cpu f32 " << a.losses[i] << " cuda tf32 " << b.losses[i]);
    CHECK(std::abs(a.losses[i] - b.losses[i]) <= 1e-3 * std::abs(a.losses[i]));
    differs = differs || a.losses[i] != b.losses[i];
  }
  CHECK(differs);
}

TEST_CASE("bf16 training on cuda follows the CPU's f32 losses within 0.05", "[cuda]") {
  log_state().level = LogLevel::warn;
  Trainer cpu(Config::from_string(config_text(2, "cpu", 10), "cpu.toml"));
  Trainer gpu(Config::from_string(config_text(2, "cuda", 10, "precision = \"bf16\""), "cuda.toml"));
  const TrainingRecord a = cpu.train(), b = gpu.train();
  REQUIRE(b.losses.size() == 10);
  for (std::size_t i = 0; i < a.losses.size(); ++i) {
    INFO("iteration " << i + 1 << ": cpu f32 " << a.losses[i] << " cuda bf16 " << b.losses[i]);
    CHECK(std::abs(a.losses[i] - b.losses[i]) <= 0.05);
  }
}

TEST_CASE("fp16 on cuda: a forced overflow skips steps and backs the scale off, then training proceeds", "[cuda]") {
  log_state().level = LogLevel::warn;
  // A scale no fp16 gradient survives, divided by 10⁶ at each overflow (tests/model/test_mixed_precision.cpp).
  const std::string fp16 =
      "precision = \"fp16\"\ninitial_loss_scale = 1e30\nhysteresis = 1\nbackoff_factor = 1e-6\nmin_loss_scale = 1.0";
  Trainer gpu(Config::from_string(config_text(2, "cuda", 6, fp16), "cuda.toml"));
  const TrainingRecord b = gpu.train();
  REQUIRE(b.skipped.size() == 6);
  CHECK(b.skipped[0]);
  CHECK(b.skipped[1]);  // 1e30 and 1e24 surely overflow
  CHECK_FALSE(b.skipped.back());
  CHECK(b.loss_scales.back() < b.loss_scales.front());
  for (std::size_t i = 0; i < b.losses.size(); ++i) CHECK(std::isfinite(b.losses[i]));
  CHECK(std::isfinite(b.grad_norms.back()));
}

TEST_CASE("host-device traffic per iteration on cuda is small and independent of depth", "[cuda]") {
  log_state().level = LogLevel::warn;
  const TransferStats two = traffic_per_iteration("cuda", 2), six = traffic_per_iteration("cuda", 6);
  CHECK(two.to_device == six.to_device);
  CHECK(two.to_host == six.to_host);
  CHECK(two.synchronizations == six.synchronizations);
  CHECK(two.to_host == 2 * 2 + 1);  // as on the sim device: Σ mask and the loss per microbatch, the grad norm
}

TEST_CASE("attention dropout, which the cuda kernels lack, is a ConfigError naming the key before any work", "[cuda]") {
  log_state().level = LogLevel::warn;
  const auto build = [] {
    Trainer t(Config::from_string(config_text(2, "cuda", 1), "cuda.toml", {"model.attention_dropout=0.1"}));
  };
  REQUIRE_THROWS_AS(build(), ConfigError);
  REQUIRE_THROWS_WITH(build(), Catch::Matchers::Contains("model.attention_dropout = 0.1") &&
                                   Catch::Matchers::Contains("set model.attention_dropout = 0"));
}

TEST_CASE("document masks, which the cuda kernels lack, are a ConfigError naming the key before any work", "[cuda]") {
  log_state().level = LogLevel::warn;
  const auto build = [] {
    Trainer t(Config::from_string(config_text(2, "cuda", 1), "cuda.toml", {"data.reset_attention_mask=true"}));
  };
  REQUIRE_THROWS_AS(build(), ConfigError);
  REQUIRE_THROWS_WITH(build(), Catch::Matchers::Contains("data.reset_attention_mask") &&
                                   Catch::Matchers::Contains("set data.reset_attention_mask = false"));
}

int main(int argc, char** argv) {
  // Skipped (CTest SKIP_RETURN_CODE 77) where the cuda backend does not load or has no GPU.
  try {
    const Device d = device_named("cuda");
    if (backend_of(d).device_count() == 0) {
      std::printf("no GPU here (%s): the cuda tests are skipped\n", backend_of(d).unavailable_reason().c_str());
      return 77;
    }
  } catch (const Error& e) {
    std::printf("the cuda backend does not load here (%s): the cuda tests are skipped\n", e.what());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
