#include "tessera/train/iteration.hpp"

#include <chrono>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/ops.hpp"
#include "tessera/train/gradient_reducer.hpp"
#include "tessera/train/pipeline_executor.hpp"

namespace tessera {

double all_reduce_sum(Communicator& group, double value) {
  if (group.size() == 1) return value;
  // In double: losses and squared norms summed over ranks keep their precision (a float sum of
  // large squared norms loses digits the single-process value has).
  Tensor v = Tensor::from<double>({1}, {value});
  group.all_reduce(v);
  return v.data<double>()[0];
}

std::vector<double> all_reduce_sum(Communicator& group, std::vector<double> values) {
  if (group.size() == 1 || values.empty()) return values;
  Tensor v = Tensor::from<double>({static_cast<std::int64_t>(values.size())}, values);
  group.all_reduce(v);
  return v.to_vector<double>();
}

std::vector<double> mean_loss_parts(const Parallel& parallel, std::vector<double> sums, std::size_t parts,
                                    double microbatches) {
  sums.resize(parts, 0.0);  // stages before the last have none
  std::vector<double> total = all_reduce_sum(*parallel.groups.dp, all_reduce_sum(*parallel.groups.pp, std::move(sums)));
  for (double& t : total) t /= microbatches;
  return total;
}

std::vector<double> mean_metrics(const Parallel& parallel, const std::vector<std::string>& names,
                                 const StepMetrics& metrics) {
  if (names.empty()) return {};
  std::vector<double> sums;  // (Σ value, count) of each name, by position: every rank's names agree
  for (const std::string& name : names) {
    const auto it = metrics.sums.find(name);
    sums.push_back(it == metrics.sums.end() ? 0.0 : it->second.first);
    sums.push_back(it == metrics.sums.end() ? 0.0 : it->second.second);
  }
  const std::vector<double> total =
      all_reduce_sum(*parallel.groups.dp, all_reduce_sum(*parallel.groups.pp, std::move(sums)));
  std::vector<double> out;
  for (std::size_t i = 0; i < names.size(); ++i) out.push_back(total[2 * i + 1] > 0 ? total[2 * i] / total[2 * i + 1] : 0.0);
  return out;
}

void apply_buffer_statistics(const Parallel& parallel, const BufferStatistics& statistics) {
  if (statistics.entries.empty()) return;
  std::vector<double> sums;  // every entry's, in name order: the same buffers on every dp rank of a stage
  for (const auto& [name, entry] : statistics.entries) sums.insert(sums.end(), entry.sums.begin(), entry.sums.end());
  const std::vector<double> total = all_reduce_sum(*parallel.groups.dp, std::move(sums));
  std::size_t at = 0;
  for (const auto& [name, entry] : statistics.entries) {
    entry.apply(std::vector<double>(total.begin() + static_cast<std::ptrdiff_t>(at),
                                    total.begin() + static_cast<std::ptrdiff_t>(at + entry.sums.size())));
    at += entry.sums.size();
  }
}

namespace {

using ShardField = Optimizer::ShardField;
// A reduction adding into an f64 [1] (ops::sum_squares, ops::count_zeros).
using Reduction = void (*)(const Tensor&, Tensor&, bool);

// Σ reduce(field) over every parameter's gradient or f32 value, each element counted once as the
// grad norm counts it; with gradient shards, over the optimizer's shards instead, which every dp
// rank holds only its part of. Reduced on the parameters' device, read once.
double global_sum(const std::vector<Parameter*>& params, Optimizer& optimizer, const Parallel& parallel,
                  ShardField field, Reduction reduce) {
  Tensor Parameter::*member = field == ShardField::grad ? &Parameter::grad : &Parameter::value;
  // Expert-parallel parameters apart: each expert-parallel rank holds other experts, so their sum
  // is summed over the ep group too (and, as shards, over the expert-data-parallel group first).
  Tensor device_sum =
      params.empty() ? Tensor::zeros({2}, DType::f64) : (params.front()->*member).new_zeros({2}, DType::f64);
  Tensor dense_sum = device_sum.rows(0, 1), expert_sum = device_sum.rows(1, 2);
  const bool shards = optimizer.gradient_shards() != nullptr;
  if (shards) {
    optimizer.visit_shards(field, [&](const Tensor& piece, const Parameter& of) {
      reduce(piece, of.expert_parallel ? expert_sum : dense_sum, /*accumulate=*/true);
    });
  } else {
    for (const Parameter* p : params)
      if (counts_in_grad_norm(*p, parallel.layout.tp_rank()))
        reduce(p->*member, p->expert_parallel ? expert_sum : dense_sum, /*accumulate=*/true);
  }
  const std::vector<double> sums = device_sum.to_vector<double>();  // one read
  double dense = sums[0], experts = sums[1];
  if (shards) dense = all_reduce_sum(*parallel.groups.dp, dense);
  if (parallel.layout.ep() > 1) {  // else there are no expert-parallel parameters
    if (shards) experts = all_reduce_sum(*parallel.groups.expert_dp, experts);
    experts = all_reduce_sum(*parallel.groups.ep, experts);
  }
  double total = dense + experts;
  total = all_reduce_sum(*parallel.groups.tp, total);
  return all_reduce_sum(*parallel.groups.pp, total);
}

void sum_squares(const Tensor& x, Tensor& out, bool accumulate) { ops::sum_squares(x, out, accumulate); }
void count_zeros(const Tensor& x, Tensor& out, bool accumulate) { ops::count_zeros(x, out, accumulate); }

}  // namespace

double global_grad_norm(const std::vector<Parameter*>& params, Optimizer& optimizer, const Parallel& parallel) {
  return std::sqrt(global_sum(params, optimizer, parallel, ShardField::grad, sum_squares));
}

double global_params_norm(const std::vector<Parameter*>& params, Optimizer& optimizer, const Parallel& parallel) {
  return std::sqrt(global_sum(params, optimizer, parallel, ShardField::value, sum_squares));
}

double global_grad_zeros(const std::vector<Parameter*>& params, Optimizer& optimizer, const Parallel& parallel) {
  return global_sum(params, optimizer, parallel, ShardField::grad, count_zeros);
}

std::vector<double> per_token_weights(const Model& model, const std::function<Batch(std::int64_t)>& microbatch,
                                      std::int64_t count, std::int64_t global_microbatches, const Parallel& parallel,
                                      std::vector<Batch>& read) {
  std::vector<double> tokens(static_cast<std::size_t>(count), 0.0);
  if (parallel.layout.pp_rank() == parallel.layout.pp() - 1)
    for (std::int64_t m = 0; m < count; ++m) {
      read.push_back(microbatch(m));
      const std::optional<double> n = model.loss_tokens(read.back());
      if (!n) throw Error("calculate_per_token_loss: the model does not count the tokens of its loss");
      tokens[static_cast<std::size_t>(m)] = *n;
    }
  double total = 0;
  for (double n : tokens) total += n;
  total = all_reduce_sum(*parallel.groups.dp, all_reduce_sum(*parallel.groups.pp, total));
  std::vector<double> weights;
  for (double n : tokens) weights.push_back(total > 0 ? n * static_cast<double>(global_microbatches) / total : 0.0);
  return weights;
}

void sum_over_context_parallel(const std::vector<Parameter*>& params, Optimizer& optimizer, const Parallel& parallel,
                               GradBuckets* buckets) {
  if (parallel.layout.cp() == 1) return;
  Communicator& cp = *parallel.groups.cp;
  if (std::vector<Tensor>* shards = optimizer.gradient_shards(); shards && buckets) {
    for (Tensor& shard : *shards) cp.all_reduce(shard);
  } else if (buckets) {  // the parameters' gradients are views of the buckets
    for (std::size_t b = 0; b < buckets->size(); ++b) cp.all_reduce(buckets->data(b));
  } else {
    for (Parameter* p : params) cp.all_reduce(p->grad);
  }
}

std::vector<PipelineStep> iteration_steps(const Schedule* schedule, const ScheduleSpec& spec) {
  if (schedule) {
    std::vector<PipelineStep> steps = schedule->training_steps(spec);
    validate_steps(steps, spec, /*with_backward=*/true, schedule->describe());
    return steps;
  }
  if (spec.pipeline_size != 1) throw Error("pipeline parallelism needs a schedule ([schedule] plugin)");
  std::vector<PipelineStep> steps;
  for (std::int64_t m = 0; m < spec.num_microbatches; ++m) {
    steps.push_back({PipelineStep::Kind::forward, m});
    steps.push_back({PipelineStep::Kind::backward, m});
  }
  return steps;
}

IterationResult run_iteration(Model& model, const std::vector<Parameter*>& params, Optimizer& optimizer,
                              const std::function<Batch(std::int64_t)>& microbatch, const IterationSettings& s,
                              const Parallel& parallel, const Schedule* schedule, GradBuckets* buckets) {
  Communicator& dp = *parallel.groups.dp;
  if (dp.size() > 1 && (!buckets || buckets->num_params() != params.size()))
    throw Error(fmt::format("run_iteration: data parallelism ({}) needs the parameters' gradient buckets ({} "
                            "parameters, buckets hold {})",
                            dp.describe(), params.size(), buckets ? buckets->num_params() : 0));
  // Mixed into ordinary buckets, a gradient still to be summed over tp could be sent over dp early.
  if (dp.size() > 1 && parallel.layout.tp() > 1 && !buckets->separates_tp_reduced())
    throw Error("run_iteration: under tensor parallelism the gradient buckets must keep reduce_grad_over_tp "
                "parameters apart (GradBuckets with separate_tp_reduced)");
  if (buckets)
    buckets->zero_grads();
  else
    for (Parameter* p : params) p->grad.zero_();
  // The objective is the mean loss over every microbatch of the global batch, on all dp ranks.
  const std::int64_t total_microbatches = s.num_microbatches * dp.size();
  std::optional<GradientReducer> reducer;
  // A distributed optimizer (ZeRO) takes its gradient shards by reduce-scatter instead.
  if (dp.size() > 1)
    reducer.emplace(*buckets, dp, s.overlap_grad_reduce, optimizer.gradient_shards(), parallel.groups.expert_dp.get());
  PipelinePass pass;
  pass.seed = s.seed;
  pass.iteration = s.iteration;
  pass.loss_grad_scale = static_cast<float>(s.loss_scale / static_cast<double>(total_microbatches));
  // Per-token loss: the microbatches are counted before the pipeline runs (the first backward needs
  // the global count).
  std::vector<Batch> counted;
  if (s.per_token_loss)
    pass.microbatch_weights =
        per_token_weights(model, microbatch, s.num_microbatches, total_microbatches, parallel, counted);
  pass.micro_batch_size = s.micro_batch_size;
  pass.device = params.empty() ? Device::cpu() : params.front()->value.device();
  pass.global_microbatch = [&](std::int64_t m) { return m * dp.size() + dp.rank(); };  // dropout as one process
  if (reducer) pass.grad_listener = &*reducer;
  const ScheduleSpec spec{parallel.layout.pp(), parallel.layout.pp_rank(), s.num_microbatches, parallel.layout.vpp()};
  const auto batch_of = [&](std::int64_t m) {
    return counted.empty() ? microbatch(m) : counted.at(static_cast<std::size_t>(m));
  };
  const PipelineRun run = run_pipeline_steps(model, iteration_steps(schedule, spec), batch_of, pass, parallel);
  // Replicated tensors whose gradient each tp rank computed from its own heads (MQA's K/V) are
  // summed over tp once per iteration, after all microbatches (inside backward they would be
  // re-summed with every microbatch's +=), and before the data-parallel sum. Likewise the tied
  // embedding's two pipeline copies over the embedding group.
  if (parallel.layout.tp() > 1)
    for (Parameter* p : params)
      if (p->reduce_grad_over_tp) parallel.groups.tp->all_reduce(p->grad);
  if (parallel.layout.pp() > 1)
    for (Parameter* p : params)
      if (p->stage_tie != Parameter::StageTie::none) parallel.groups.embedding->all_reduce(p->grad);
  IterationResult r;
  if (reducer) {
    const auto t0 = std::chrono::steady_clock::now();
    reducer->finish();
    r.reduce_wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.reductions_overlapped = reducer->started_during_backward();
  }
  sum_over_context_parallel(params, optimizer, parallel, buckets);
  r.peak_microbatches_held = run.peak_microbatches_held;
  r.peak_held_elements = run.peak_held_elements;
  r.pipeline_seconds = run.seconds;
  r.pipeline_seconds_receiving = run.seconds_receiving;
  // Only the last stage has losses; the sum over pp hands them to every rank.
  r.loss = all_reduce_sum(dp, all_reduce_sum(*parallel.groups.pp, run.loss_sum)) / static_cast<double>(total_microbatches);
  r.loss_parts = mean_loss_parts(parallel, run.loss_part_sums, model.loss_part_names().size(),
                                 static_cast<double>(total_microbatches));
  r.metrics = mean_metrics(parallel, model.metric_names(), run.metrics);
  apply_buffer_statistics(parallel, run.buffer_statistics);  // before a possible skip, as Megatron-LM's
  // The norm of the scaled gradients, all-reduced: every rank sees the same value, so every rank
  // takes (or skips) the step alike.
  r.grad_norm = global_grad_norm(params, optimizer, parallel) / s.loss_scale;
  if (!std::isfinite(r.grad_norm) && s.skip_nonfinite) {
    r.skipped = true;  // fp16 overflow: the loss scaler backs off, nothing is updated
    return r;
  }
  if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm))
    throw Error(fmt::format("iteration {}: loss {} / grad norm {} is not finite; lower optimizer.lr or check the data",
                            s.iteration, r.loss, r.grad_norm));
  if (s.count_zeros_in_grad) r.num_zeros_in_grad = global_grad_zeros(params, optimizer, parallel);
  // Megatron-LM: scale grads by clip / (norm + 1e-6) when that is below 1; the loss scale is divided
  // out in the same pass.
  double coeff = 1.0;
  if (s.clip_grad > 0) {
    const double c = s.clip_grad / (r.grad_norm + 1e-6);
    if (c < 1.0) coeff = c;
  }
  optimizer.step(UpdateRates{static_cast<float>(s.lr), static_cast<float>(s.weight_decay),
                             static_cast<float>(s.decoupled_lr)},
                 static_cast<float>(coeff / s.loss_scale));
  return r;
}

}  // namespace tessera
