#include "tessera/train/pipeline_executor.hpp"

#include <chrono>
#include <map>

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera {

namespace {

// Tags keep a microbatch's activation and gradient apart; MPI guarantees a tag's messages arrive in
// send order, so reusing tags after 16384 microbatches is safe.
int tag_for(std::int64_t microbatch, bool grad) { return static_cast<int>(microbatch % 16384) * 2 + (grad ? 1 : 0); }

struct InFlight {
  ActivationStore store;
  Tensor input;        // received activation, until its forward
  Tensor output_grad;  // received gradient, until its backward
};

}  // namespace

PipelineRun run_pipeline_steps(Model& model, const std::vector<PipelineStep>& steps,
                               const std::function<Batch(std::int64_t)>& microbatch, const PipelinePass& pass,
                               const Parallel& parallel) {
  using K = PipelineStep::Kind;
  Communicator& pp = *parallel.groups.pp;
  const int stage = parallel.layout.pp_rank();
  std::int64_t last_microbatch = -1;
  for (const PipelineStep& s : steps) last_microbatch = std::max(last_microbatch, s.microbatch);

  PipelineRun run;
  std::map<std::int64_t, InFlight> in_flight;
  std::map<std::int64_t, Tensor> outputs, input_grads;  // produced, until sent
  std::vector<CommRequest> sends;  // each keeps its tensor alive until it completes
  auto context = [&](std::int64_t m, ActivationStore& store) {
    StepContext ctx{store};
    ctx.training = pass.training;
    ctx.seed = pass.seed;
    ctx.iteration = pass.iteration;
    ctx.microbatch = pass.global_microbatch(m);
    ctx.loss_grad_scale = pass.loss_grad_scale;
    if (m == last_microbatch) ctx.grad_listener = pass.grad_listener;
    return ctx;
  };
  auto take = [&](std::map<std::int64_t, Tensor>& from, std::int64_t m) {
    auto it = from.find(m);
    if (it == from.end()) throw Error(fmt::format("pipeline stage {}: microbatch {} has nothing to send", stage, m));
    Tensor t = std::move(it->second);
    from.erase(it);
    return t;
  };
  using Clock = std::chrono::steady_clock;
  const auto seconds_since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  const auto start = Clock::now();
  auto receive = [&](std::int64_t m, int peer, bool grad) {
    Tensor t = Tensor::empty(model.stage_activation_shape(pass.micro_batch_size));
    const auto t0 = Clock::now();
    pp.recv(t, peer, tag_for(m, grad));
    run.seconds_receiving += seconds_since(t0);
    return t;
  };

  for (const PipelineStep& s : steps) {
    const std::int64_t m = s.microbatch;
    switch (s.kind) {
      case K::recv_activation:
        in_flight[m].input = receive(m, stage - 1, false);
        break;
      case K::forward: {
        InFlight& f = in_flight[m];
        StepContext ctx = context(m, f.store);
        StageOutput out = model.forward_stage(ctx, microbatch(m), f.input);
        f.input = Tensor();
        run.loss_sum += out.loss;
        if (out.activation.defined()) outputs[m] = out.activation;
        std::int64_t held = 0, held_microbatches = 0;
        for (const auto& [_, g] : in_flight) {
          held += g.store.held_elements();
          held_microbatches += g.store.empty() ? 0 : 1;
        }
        run.peak_held_elements = std::max(run.peak_held_elements, held);
        run.peak_microbatches_held = std::max(run.peak_microbatches_held, held_microbatches);
        if (!pass.training) in_flight.erase(m);
        break;
      }
      case K::send_activation:
        sends.push_back(pp.start_send(take(outputs, m), stage + 1, tag_for(m, false)));
        break;
      case K::recv_grad:
        in_flight[m].output_grad = receive(m, stage + 1, true);
        break;
      case K::backward: {
        auto it = in_flight.find(m);
        if (it == in_flight.end()) throw Error(fmt::format("pipeline stage {}: backward of microbatch {} before its forward", stage, m));
        StepContext ctx = context(m, it->second.store);
        Tensor dx = model.backward_stage(ctx, it->second.output_grad);
        if (!it->second.store.empty())
          throw Error("model backward left saved activations behind (a module saved but never took)");
        in_flight.erase(it);
        if (dx.defined()) input_grads[m] = dx;
        break;
      }
      case K::send_grad:
        sends.push_back(pp.start_send(take(input_grads, m), stage - 1, tag_for(m, true)));
        break;
    }
    for (CommRequest& r : sends) r.test();  // OpenMPI moves a send on only inside MPI calls
  }
  for (CommRequest& r : sends) r.wait();
  run.seconds = seconds_since(start);
  return run;
}

}  // namespace tessera
