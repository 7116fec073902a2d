// A pipeline stage boundary carries a list of tensors (as T5's decoder stages pass the encoder
// output alongside the hidden state). A toy model of pp stages passes two tensors of different
// shapes, a [B, T] and a [B, 1], and reads two batch fields of its own ("x", "y"); under mpirun
// (pp = world size, 1F1B) its losses and weight gradients must equal the same stages run one after
// another in one process.
//
// Stage s has one weight w_s and maps (a, b) to (w_s·a, b + w_s·Σ_t a); the last stage's loss is
// Σ a + Σ b over the microbatch.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/model.hpp"
#include "tessera/plugin.hpp"
#include "tessera/schedule.hpp"
#include "tessera/train/pipeline_executor.hpp"

using namespace tessera;

namespace {

constexpr std::int64_t kMicrobatches = 5, kB = 2, kT = 3;

float weight(int stage) { return 1.0f + 0.25f * static_cast<float>(stage); }

Batch batch_for(std::int64_t m) {
  Batch b;
  Tensor x = Tensor::empty({kB, kT}), y = Tensor::empty({kB, 1});
  for (std::int64_t i = 0; i < kB * kT; ++i) x.data<float>()[i] = 0.1f * static_cast<float>((i * 3 + m) % 7) - 0.2f;
  for (std::int64_t i = 0; i < kB; ++i) y.data<float>()[i] = 0.5f * static_cast<float>(m + i);
  b.set("x", x);
  b.set("y", y);
  return b;
}

// One stage's forward: (a, b) → (w·a, b + w·Σ_t a).
std::vector<Tensor> stage_forward(float w, const Tensor& a, const Tensor& b) {
  Tensor a2 = Tensor::empty({kB, kT}), b2 = Tensor::empty({kB, 1});
  for (std::int64_t i = 0; i < kB; ++i) {
    float sum = 0;
    for (std::int64_t t = 0; t < kT; ++t) {
      a2.data<float>()[i * kT + t] = w * a.data<float>()[i * kT + t];
      sum += a.data<float>()[i * kT + t];
    }
    b2.data<float>()[i] = b.data<float>()[i] + w * sum;
  }
  return {a2, b2};
}

// Its backward: the gradients of (a, b) from those of (a2, b2); dw accumulates.
std::vector<Tensor> stage_backward(float w, const Tensor& a, const Tensor& da2, const Tensor& db2, double& dw) {
  Tensor da = Tensor::empty({kB, kT}), db = db2.clone();
  for (std::int64_t i = 0; i < kB; ++i) {
    float sum = 0;
    for (std::int64_t t = 0; t < kT; ++t) {
      const std::int64_t k = i * kT + t;
      da.data<float>()[k] = w * da2.data<float>()[k] + w * db2.data<float>()[i];
      dw += static_cast<double>(a.data<float>()[k]) * da2.data<float>()[k];
      sum += a.data<float>()[k];
    }
    dw += static_cast<double>(db2.data<float>()[i]) * sum;
  }
  return {da, db};
}

double loss_of(const Tensor& a, const Tensor& b) {
  double l = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) l += a.data<float>()[i];
  for (std::int64_t i = 0; i < b.numel(); ++i) l += b.data<float>()[i];
  return l;
}

class TwoTensorModel : public Model {
 public:
  TwoTensorModel(int stage, int stages) : stage_(stage), stages_(stages) {}
  FieldSpecs batch_fields() const override { return {{"x", DType::f32, {kT}}, {"y", DType::f32, {1}}}; }
  void collect_parameters(std::vector<Parameter*>&) override {}
  StageOutput forward_stage(StepContext& ctx, const Batch& batch, const std::vector<Tensor>& inputs, int) override {
    const bool first = stage_ == 0;
    REQUIRE(inputs.size() == (first ? 0u : 2u));
    const Tensor a = first ? batch.get("x") : inputs[0], b = first ? batch.get("y") : inputs[1];
    if (ctx.training) ctx.store().save(this, SavedTensor{a});
    std::vector<Tensor> out = stage_forward(weight(stage_), a, b);
    if (stage_ < stages_ - 1) return {out, 0.0, {}};
    return {{}, loss_of(out[0], out[1]), {}};
  }
  std::vector<Tensor> backward_stage(StepContext& ctx, const std::vector<Tensor>& grads, int) override {
    const bool last = stage_ == stages_ - 1;
    REQUIRE(grads.size() == (last ? 0u : 2u));
    const Tensor a = ctx.store().take<SavedTensor>(this).x;
    Tensor da2 = last ? Tensor::full({kB, kT}, ctx.loss_grad_scale) : grads[0];
    Tensor db2 = last ? Tensor::full({kB, 1}, ctx.loss_grad_scale) : grads[1];
    std::vector<Tensor> d = stage_backward(weight(stage_), a, da2, db2, dw);
    if (stage_ == 0) return {};
    return d;
  }
  std::vector<TensorSpec> stage_boundary(std::int64_t micro, int) const override {
    return {{{micro, kT}, DType::f32}, {{micro, 1}, DType::f32}};
  }
  std::int64_t seq_length() const override { return kT; }
  double flops_per_iteration(std::int64_t) const override { return 0; }
  std::string describe() const override { return "two tensors per stage boundary"; }

  double dw = 0;

 private:
  int stage_, stages_;
};

}  // namespace

TEST_CASE("a stage boundary carries a list of tensors", "[mpi]") {
  const int pp = Parallel::create(ParallelSizes{1, 1, 1, false})->layout.world_size();
  auto parallel = Parallel::create(ParallelSizes{1, pp, 1, false});
  const int stage = parallel->layout.pp_rank();
  TwoTensorModel model(stage, pp);
  const ScheduleSpec spec{pp, stage, kMicrobatches};
  auto schedule = create_plugin<Schedule>("schedule", "1f1b", Config::from_string("").section("schedule"));
  PipelinePass pass;
  pass.micro_batch_size = kB;
  pass.loss_grad_scale = 1.0f / kMicrobatches;
  const PipelineRun run = run_pipeline_steps(model, schedule->training_steps(spec), batch_for, pass, *parallel);

  // The same stages one after another in this process.
  double loss = 0;
  std::vector<double> dw(static_cast<std::size_t>(pp), 0.0);
  for (std::int64_t m = 0; m < kMicrobatches; ++m) {
    const Batch batch = batch_for(m);
    std::vector<std::vector<Tensor>> inputs{{batch.get("x"), batch.get("y")}};
    for (int s = 0; s < pp; ++s) inputs.push_back(stage_forward(weight(s), inputs.back()[0], inputs.back()[1]));
    loss += loss_of(inputs.back()[0], inputs.back()[1]);
    std::vector<Tensor> g{Tensor::full({kB, kT}, pass.loss_grad_scale), Tensor::full({kB, 1}, pass.loss_grad_scale)};
    for (int s = pp - 1; s >= 0; --s) {
      const auto k = static_cast<std::size_t>(s);
      g = stage_backward(weight(s), inputs[k][0], g[0], g[1], dw[k]);
    }
  }
  INFO(fmt::format("stage {} of {}", stage, pp));
  CHECK(model.dw == Approx(dw[static_cast<std::size_t>(stage)]).epsilon(1e-6));
  CHECK(run.loss_sum == (stage == pp - 1 ? Approx(loss).epsilon(1e-6) : Approx(0.0)));
}
