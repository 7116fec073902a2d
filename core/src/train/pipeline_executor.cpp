#include "tessera/train/pipeline_executor.hpp"

#include <chrono>
#include <map>

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera {

namespace {

// Tags keep apart the activations and the gradients of each (microbatch, chunk); the tensors of one
// stage boundary share a tag and are matched in list order. MPI delivers a tag's messages between
// two ranks in send order and validate_steps requires every chunk's passes in microbatch order, so
// tags may repeat every 128 microbatches (they stay below MPI's guaranteed 32767 for up to 64
// chunks).
int tag_for(std::int64_t microbatch, int chunk, bool grad) {
  return static_cast<int>(microbatch % 128) * 128 + chunk * 2 + (grad ? 1 : 0);
}

using Key = std::pair<std::int64_t, int>;  // (microbatch, chunk)

struct InFlight {
  ActivationStore store;
  std::vector<Tensor> inputs;        // received activations, until their forward
  std::vector<Tensor> output_grads;  // received gradients, until their backward
  std::int64_t seq_length = 0;       // what the model set in forward, for its backward (StepContext)
};

}  // namespace

PipelineRun run_pipeline_steps(Model& model, const std::vector<PipelineStep>& steps,
                               const std::function<Batch(std::int64_t)>& microbatch, const PipelinePass& pass,
                               const Parallel& parallel) {
  using K = PipelineStep::Kind;
  Communicator& pp = *parallel.groups.pp;
  const int stage = parallel.layout.pp_rank(), stages = parallel.layout.pp();
  // Virtual stage c·pp + s follows c·pp + s − 1: activations go to the next rank, from the last rank
  // back to rank 0 (the next chunk); gradients the other way.
  const int next_rank = (stage + 1) % stages, previous_rank = (stage + stages - 1) % stages;
  // Gradients are final after the last backward pass (of any chunk) of the last microbatch.
  std::int64_t last_microbatch = -1;
  for (const PipelineStep& s : steps) last_microbatch = std::max(last_microbatch, s.microbatch);

  PipelineRun run;
  std::map<Key, InFlight> in_flight;
  std::map<Key, std::vector<Tensor>> outputs, input_grads;  // produced, until sent
  std::vector<CommRequest> sends;  // in flight; each keeps its tensor alive until it completes
  const auto weight = [&](std::int64_t m) {
    return pass.microbatch_weights.empty() ? 1.0 : pass.microbatch_weights.at(static_cast<std::size_t>(m));
  };
  auto context = [&](std::int64_t m, ActivationStore& store) {
    StepContext ctx{store};
    ctx.training = pass.training;
    ctx.seed = pass.seed;
    ctx.iteration = pass.iteration;
    ctx.microbatch = pass.global_microbatch(m);
    ctx.loss_grad_scale = static_cast<float>(pass.loss_grad_scale * weight(m));
    if (pass.training) {
      ctx.metrics = &run.metrics;
      ctx.buffer_statistics = &run.buffer_statistics;
    }
    return ctx;
  };
  // Virtual stage c·pp + stage sends across boundary c·pp + stage and receives across the one before.
  auto boundary_after = [&](int chunk) { return chunk * stages + stage; };
  auto take = [&](std::map<Key, std::vector<Tensor>>& from, const Key& k, int boundary) {
    auto it = from.find(k);
    if (it == from.end())
      throw Error(fmt::format("pipeline stage {}: microbatch {} (chunk {}) has nothing to send", stage, k.first, k.second));
    std::vector<Tensor> list = std::move(it->second);
    from.erase(it);
    // A mismatch here would otherwise surface on the receiver as a size error or a hang.
    const std::vector<TensorSpec> specs = model.stage_boundary(pass.micro_batch_size, boundary);
    bool match = list.size() == specs.size();
    for (std::size_t i = 0; match && i < list.size(); ++i)
      match = list[i].defined() && list[i].shape() == specs[i].shape && list[i].dtype() == specs[i].dtype;
    if (!match)
      throw Error(fmt::format("pipeline stage {}: microbatch {} (chunk {}) produced {} tensor(s) for stage boundary "
                              "{}, not the {} that the model's stage_boundary() lists (or not of their shapes)",
                              stage, k.first, k.second, list.size(), boundary, specs.size()));
    return list;
  };
  using Clock = std::chrono::steady_clock;
  const auto seconds_since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  const auto start = Clock::now();
  // A step's transfers as point-to-point operations; a receive's tensors are made here and land in
  // `into` once its requests complete.
  auto receive_ops = [&](const Key& k, int peer, bool grad, int boundary, std::vector<Tensor>& into) {
    std::vector<P2POp> ops;
    into.clear();
    for (const TensorSpec& spec : model.stage_boundary(pass.micro_batch_size, boundary)) {
      into.push_back(Tensor::empty(spec.shape, spec.dtype, pass.device));
      ops.push_back({P2POp::Kind::recv, into.back(), peer, tag_for(k.first, k.second, grad)});
    }
    return ops;
  };
  auto send_ops = [&](const std::vector<Tensor>& list, int peer, int tag) {
    std::vector<P2POp> ops;
    for (const Tensor& t : list) ops.push_back({P2POp::Kind::send, t, peer, tag});
    return ops;
  };
  // The transfer ops of a send or receive step (none for a pass).
  auto transfer_ops = [&](const PipelineStep& s) -> std::vector<P2POp> {
    const Key key{s.microbatch, s.chunk};
    switch (s.kind) {
      case K::recv_activation:
        return receive_ops(key, previous_rank, false, boundary_after(s.chunk) - 1, in_flight[key].inputs);
      case K::recv_grad:
        return receive_ops(key, next_rank, true, boundary_after(s.chunk), in_flight[key].output_grads);
      case K::send_activation:
        // Tagged with the receiver's chunk: from the last rank the next chunk's first layers read it.
        return send_ops(take(outputs, key, boundary_after(s.chunk)), next_rank,
                        tag_for(s.microbatch, stage == stages - 1 ? s.chunk + 1 : s.chunk, false));
      case K::send_grad:
        return send_ops(take(input_grads, key, boundary_after(s.chunk) - 1), previous_rank,
                        tag_for(s.microbatch, stage == 0 ? s.chunk - 1 : s.chunk, true));
      default: return {};
    }
  };
  // Starts the ops together (batched_with_next: a send with the receive after it); sends stay in
  // flight, receives are waited for.
  auto transfer = [&](std::vector<P2POp> ops) {
    std::vector<bool> is_send;
    for (const P2POp& op : ops) is_send.push_back(op.kind == P2POp::Kind::send);
    std::vector<CommRequest> requests = pp.start_batch(std::move(ops));
    const auto t0 = Clock::now();
    bool received = false;
    for (std::size_t i = 0; i < requests.size(); ++i) {
      if (is_send[i]) {
        sends.push_back(std::move(requests[i]));
      } else {
        requests[i].wait();
        received = true;
      }
    }
    if (received) run.seconds_receiving += seconds_since(t0);
  };

  for (std::size_t i = 0; i < steps.size(); ++i) {
    const PipelineStep& s = steps[i];
    const std::int64_t m = s.microbatch;
    const Key key{m, s.chunk};
    switch (s.kind) {
      case K::recv_activation:
      case K::recv_grad:
      case K::send_activation:
      case K::send_grad: {
        std::vector<P2POp> ops = transfer_ops(s);
        if (batched_with_next(steps, i)) {
          std::vector<P2POp> next = transfer_ops(steps[++i]);
          ops.insert(ops.end(), std::make_move_iterator(next.begin()), std::make_move_iterator(next.end()));
        }
        transfer(std::move(ops));
        break;
      }
      case K::forward: {
        InFlight& f = in_flight[key];
        StepContext ctx = context(m, f.store);
        StageOutput out = model.forward_stage(ctx, microbatch(m), f.inputs, s.chunk);
        f.inputs.clear();
        f.seq_length = ctx.seq_length;
        run.loss_sum += out.loss * weight(m);
        if (run.loss_part_sums.size() < out.loss_parts.size()) run.loss_part_sums.resize(out.loss_parts.size(), 0.0);
        for (std::size_t i = 0; i < out.loss_parts.size(); ++i) run.loss_part_sums[i] += out.loss_parts[i] * weight(m);
        if (!out.activations.empty()) outputs[key] = std::move(out.activations);
        std::int64_t held = 0, held_microbatches = 0;
        for (const auto& [_, g] : in_flight) {
          held += g.store.held_elements();
          held_microbatches += g.store.empty() ? 0 : 1;
        }
        run.peak_held_elements = std::max(run.peak_held_elements, held);
        run.peak_microbatches_held = std::max(run.peak_microbatches_held, held_microbatches);
        if (!pass.training) in_flight.erase(key);
        break;
      }
      case K::backward: {
        auto it = in_flight.find(key);
        if (it == in_flight.end())
          throw Error(fmt::format("pipeline stage {}: backward of microbatch {} (chunk {}) before its forward", stage, m,
                                  s.chunk));
        StepContext ctx = context(m, it->second.store);
        ctx.seq_length = it->second.seq_length;
        if (m == last_microbatch) ctx.grad_listener = pass.grad_listener;  // backward only
        std::vector<Tensor> dx = model.backward_stage(ctx, it->second.output_grads, s.chunk);
        if (!it->second.store.empty())
          throw Error("model backward left saved activations behind (a module saved but never took)");
        in_flight.erase(it);
        if (!dx.empty()) input_grads[key] = std::move(dx);
        break;
      }
    }
    // OpenMPI moves a send on only inside MPI calls; finished ones are dropped (their tensors freed).
    std::erase_if(sends, [](CommRequest& r) { return r.test(); });
  }
  for (CommRequest& r : sends) r.wait();
  run.seconds = seconds_since(start);
  return run;
}

}  // namespace tessera
