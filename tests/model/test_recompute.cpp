// Activation recompute ([model] recompute_granularity / recompute_method / recompute_num_layers)
// against no recompute on one GPT microbatch: every parameter gradient bitwise equal, the loss
// equal, grad-ready reported once per parameter during backward, and the activations held after
// forward smaller by exactly what the recomputed parts would have saved (gpt_plan.cpp's per-layer
// count, derived from the modules' store.save calls).
#include <cstring>
#include <map>
#include <random>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "expect_error.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/model.hpp"
#include "tessera/train/components.hpp"
#include "gpt_batch.hpp"

using namespace tessera;

namespace {

constexpr std::int64_t kVocab = 301, kLayers = 4, kHidden = 32, kHeads = 4, kFfn = 48, kSeq = 12, kMicro = 2;

std::string config_text(std::int64_t groups, const std::string& recompute) {
  return fmt::format(R"(
[model]
plugin = "gpt"
num_layers = {}
hidden_size = {}
num_attention_heads = {}
num_query_groups = {}
ffn_hidden_size = {}
seq_length = {}
hidden_dropout = 0.1
make_vocab_size_divisible_by = 16
{}
)", kLayers, kHidden, kHeads, groups, kFfn, kSeq, recompute);
}

struct CountingListener : GradReadyListener {
  std::map<const Parameter*, int> calls;
  void grad_ready(Parameter& p) override { ++calls[&p]; }
};

struct Result {
  double loss = 0;
  std::int64_t held = 0;
  std::vector<Tensor> grads;
  std::map<std::string, int> ready;  // parameter name → grad_ready calls
};

Result run_once(std::int64_t groups, const std::string& recompute) {
  PluginPtr<Model> model = build_model(Config::from_string(config_text(groups, recompute)), kVocab, 7);
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> token(0, kVocab - 1);
  Batch b = gpt_batch(Tensor::empty({kMicro, kSeq}, DType::i32), Tensor::empty({kMicro, kSeq}, DType::i32),
                      Tensor::full({kMicro, kSeq}, 1.0f));
  for (std::int64_t i = 0; i < kMicro * kSeq; ++i) {
    b.get("tokens").data<std::int32_t>()[i] = token(rng);
    b.get("labels").data<std::int32_t>()[i] = token(rng);
  }
  ActivationStore store;
  CountingListener listener;
  StepContext ctx{store};
  ctx.seed = 11;
  ctx.iteration = 5;
  ctx.microbatch = 2;
  ctx.grad_listener = &listener;
  Result r;
  r.loss = model->forward_stage(ctx, b, {}, 0).loss;
  r.held = store.held_elements();
  model->backward_stage(ctx, {}, 0);
  REQUIRE(store.empty());
  for (Parameter* p : params) {
    r.grads.push_back(p->grad);
    r.ready[p->name] = listener.calls.count(p) ? listener.calls.at(p) : 0;
  }
  return r;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data<float>(), b.data<float>(), sizeof(float) * a.numel()) == 0;
}

}  // namespace

TEST_CASE("activation recompute: bit-identical gradients, fewer held activations", "[unit]") {
  log_state().level = LogLevel::warn;
  for (std::int64_t groups : {kHeads, std::int64_t{1}}) {
    INFO("query groups " << groups);
    const Result none = run_once(groups, "");
    const std::int64_t N = kMicro * kSeq, h = kHidden, kv = 2 * groups * (kHidden / kHeads);
    // What one layer saves (gpt_plan.cpp): its input N·h (ln1) is part of it.
    const std::int64_t lse = kMicro * kHeads * kSeq;  // attention's log-sum-exp per query row
    const std::int64_t layer = 4 * N * h + 4 * N + 2 * N * h + N * kv + lse + 2 * N * kFfn;
    CHECK(none.held == kLayers * layer + 2 * N + 2 * N * h + 2 * N);
    // Kept per recomputed layer (selective) / per recomputed group of `count` layers (full).
    struct Case {
      std::string toml;
      std::int64_t saved_less;
    };
    const std::vector<Case> cases = {
        {"recompute_granularity = \"selective\"", kLayers * lse},
        {"recompute_activations = true", kLayers * lse},  // Megatron-LM's shorthand for selective
        {"recompute_granularity = \"full\"\nrecompute_method = \"uniform\"\nrecompute_num_layers = 1",
         kLayers * (layer - N * h)},
        {"recompute_granularity = \"full\"\nrecompute_method = \"uniform\"\nrecompute_num_layers = 2",
         kLayers * layer - 2 * N * h},
        {"recompute_granularity = \"full\"\nrecompute_method = \"uniform\"\nrecompute_num_layers = 4",
         kLayers * layer - N * h},
        {"recompute_granularity = \"full\"\nrecompute_method = \"block\"\nrecompute_num_layers = 1", layer - N * h},
        {"recompute_granularity = \"full\"\nrecompute_method = \"block\"\nrecompute_num_layers = 3",
         3 * (layer - N * h)},
    };
    for (const Case& c : cases) {
      INFO(c.toml);
      const Result r = run_once(groups, c.toml);
      CHECK(r.loss == none.loss);
      CHECK(r.held == none.held - c.saved_less);
      CHECK(r.held < none.held);
      REQUIRE(r.grads.size() == none.grads.size());
      for (std::size_t i = 0; i < r.grads.size(); ++i) CHECK(bitwise_equal(r.grads[i], none.grads[i]));
      CHECK(r.ready == none.ready);
      for (const auto& [name, calls] : r.ready) {
        INFO(name);
        // The tied embedding does not report (DESIGN: a shared weight's second += lands late).
        CHECK(calls <= 1);
      }
    }
  }
}

TEST_CASE("activation recompute: Megatron-LM's rules for the keys are ConfigErrors naming them", "[unit]") {
  const auto error = [](const std::string& toml) {
    return message_of<ConfigError>([&] { build_model(Config::from_string(config_text(kHeads, toml)), kVocab, 7); });
  };
  CHECK_THAT(error("recompute_granularity = \"full\""),
             Catch::Contains("model.recompute_granularity = \"full\"") && Catch::Contains("model.recompute_method"));
  CHECK_THAT(error("recompute_granularity = \"selective\"\nrecompute_method = \"uniform\""),
             Catch::Contains("model.recompute_method") && Catch::Contains("selective"));
  CHECK_THAT(error("recompute_method = \"block\""), Catch::Contains("model.recompute_granularity"));
  CHECK_THAT(error("recompute_granularity = \"full\"\nrecompute_method = \"uniform\"\nrecompute_num_layers = 3"),
             Catch::Contains("model.recompute_num_layers (3)") && Catch::Contains("must divide the 4 layers"));
  CHECK_THAT(error("recompute_granularity = \"full\"\nrecompute_method = \"block\"\nrecompute_num_layers = 5"),
             Catch::Contains("model.recompute_num_layers (5)") && Catch::Contains("exceeds the 4 layers"));
  CHECK_THAT(error("recompute_granularity = \"full\"\nrecompute_method = \"block\"\nrecompute_num_layers = 0"),
             Catch::Contains("recompute_num_layers"));
  CHECK_THAT(error("recompute_granularity = \"partial\""), Catch::Contains("recompute_granularity"));
  CHECK_THAT(error("recompute_activations = true\nrecompute_granularity = \"full\"\nrecompute_method = \"uniform\""),
             Catch::Contains("model.recompute_activations = true") && Catch::Contains("give one of them"));
}
