#include "tessera/train/plan.hpp"

#include <algorithm>
#include <map>
#include <utility>

#include <fmt/format.h>

#include "../closest_match.hpp"
#include "tessera/error.hpp"
#include "tessera/optimizer_plan.hpp"
#include "tessera/plugin.hpp"
#include "tessera/schedule.hpp"
#include "tessera/train/components.hpp"
#include "tessera/train/iteration.hpp"
#include "tessera/train/precision.hpp"

namespace tessera {

namespace {

// [parallel] as the trainer reads it, noting keys the plan does not model.
ParallelSizes read_sizes(const Config& config, std::vector<std::string>& notes) {
  const ParallelSizes sizes = read_parallel_sizes(config);
  ConfigSection p = config.section("parallel");
  p.get_bool("overlap_grad_reduce", false);  // when, not how much, is communicated
  p.get_string("communicator", "auto");       // by which library, not how much
  // A key the plan does not know is noted (a newer trainer may read it); one that looks like a
  // misspelt known key stays undeclared, so check_no_unknown_keys() rejects it as `train` would.
  const std::vector<std::string> known = {"tensor_model_parallel_size", "pipeline_model_parallel_size",
                                          "virtual_pipeline_model_parallel_size", "num_layers_per_virtual_pipeline_stage",
                                          "decoder_first_pipeline_num_layers", "decoder_last_pipeline_num_layers",
                                          "num_layers_in_first_pipeline_stage", "num_layers_in_last_pipeline_stage",
                                          "sequence_parallel",
                                          "overlap_grad_reduce", "communicator", "pipeline_model_parallel_split_rank",
                                          "expert_model_parallel_size", "expert_tensor_parallel_size",
                                          "context_parallel_size", "cp_comm_type"};
  for (const std::string& key : p.keys())
    if (std::find(known.begin(), known.end(), key) == known.end() && !detail::closest_match(key, known)) {
      p.declare(key);
      notes.push_back(fmt::format("parallel.{} is not modelled by the plan", key));
    }
  // Expert tensor parallel size 1: whole experts; ep's data-parallel part is ep / tp.
  const bool whole = sizes.etp == 1 && sizes.tp > 1;
  if (sizes.ep > 1)
    notes.push_back(fmt::format(
        "parallel.expert_model_parallel_size = {}: each rank holds num_experts / {} experts{}, whose gradients "
        "(and distributed_adam state) go over the expert_dp group of dp / {} ranks; their activations assume the "
        "router spreads tokens evenly (a rank's experts take rows·k{} of the group's rows; dropless routing can send "
        "them up to ep times as many)",
        sizes.ep, sizes.ep, whole ? " whole (expert_tensor_parallel_size 1)" : "", whole ? sizes.ep / sizes.tp : sizes.ep,
        whole ? " / tp" : ""));
  else if (whole)
    notes.push_back(
        "parallel.expert_tensor_parallel_size = 1 with expert_model_parallel_size 1: every tp rank holds every expert "
        "whole and runs them on its share of the rows (1/tp; their activations assume the router spreads tokens "
        "evenly); their gradients are summed over tp, as a norm's under sequence parallelism");
  return sizes;
}

// Bytes one rank sends for `count` with ring algorithms in a group of n.
double ring_bytes(const std::string& op, int n, const CollectiveCount& count) {
  const double bytes = 4.0 * static_cast<double>(count.elements);
  if (op == "send") return bytes;
  if (n <= 1) return 0;
  const double share = static_cast<double>(n - 1) / n;
  return op == "all_reduce" ? 2 * share * bytes : share * bytes;
}

void add_traffic(StagePlan& s, const std::string& group, int group_size, const std::string& op,
                 const std::string& what, CollectiveCount count) {
  if (group_size <= 1 || count.calls == 0) return;
  s.traffic.push_back({group, op, what, group_size, count, ring_bytes(op, group_size, count)});
}

CollectiveCount times(CollectiveCount c, std::int64_t k) { return c.times(k); }

// The optimizer plugin's own plan (kind "optimizer_plan"), or null when its library exports none.
PluginPtr<OptimizerPlanner> make_optimizer_planner(const ConfigSection& section, const std::string& name, int dp) {
  for (const PluginInfo& p : available_plugins("optimizer_plan"))
    if (p.name == name)
      return create_plugin<OptimizerPlanner>("optimizer_plan", name, section, OptimizerPlanContext{dp});
  return nullptr;
}

}  // namespace

std::int64_t plan_add(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r))
    throw ConfigError("tessera plan: an element count overflows 64 bits; the model, batch or layout is too large to count");
  return r;
}

std::int64_t plan_mul(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r))
    throw ConfigError("tessera plan: an element count overflows 64 bits; the model, batch or layout is too large to count");
  return r;
}

Plan make_plan(const Config& config, const PlanRequest& request) {
  Plan plan;
  plan.config = config.source();
  plan.world_size = request.world_size;
  plan.sizes = read_sizes(config, plan.notes);
  // The trainer's layout checks and messages (world not a multiple of tp·pp, sizes < 1, vpp without pp).
  const ParallelLayout layout = ParallelLayout::make(0, request.world_size, plan.sizes);
  plan.dp = layout.dp();

  // [training] as the trainer reads it (trainer.cpp's read_training).
  const BatchSizes batch = read_batch_sizes(config, layout.dp());
  plan.micro_batch_size = batch.micro;
  plan.global_batch_size = batch.global;
  plan.num_microbatches = plan.global_batch_size / (plan.micro_batch_size * layout.dp());

  if (request.vocab_size > 0) {
    plan.vocab_size = request.vocab_size;
  } else {
    try {
      plan.vocab_size = build_tokenizer(config)->vocab_size();
    } catch (const FormatError& e) {
      throw FormatError(fmt::format("{} (without the tokenizer's files, give the vocabulary size: tessera plan "
                                    "--vocab-size)", e.what()));
    }
  }

  ConfigSection model_section = config.section("model");
  const std::string model_plugin = plugin_name(model_section);
  PluginPtr<ModelPlanner> planner =
      create_plugin<ModelPlanner>("model_plan", model_plugin, model_section, ModelPlanContext{plan.vocab_size, plan.sizes});
  plan.model = planner->describe();
  plan.seq_length = planner->seq_length();
  plan.total_parameters = planner->total_parameters();
  plan.flops_per_iteration = planner->flops_per_iteration(plan.global_batch_size);

  PluginPtr<Schedule> schedule = build_schedule(config, layout);
  plan.schedule = schedule ? schedule->describe() : "gradient accumulation (pp = 1)";

  ConfigSection opt = config.section("optimizer");
  plan.optimizer = plugin_name(opt);
  PluginPtr<OptimizerPlanner> optimizer_planner = make_optimizer_planner(opt, plan.optimizer, layout.dp());
  // Expert parallelism: the experts' state and gradients live on the expert-data-parallel group.
  const int expert_dp = layout.dp() / layout.ep_dp();
  PluginPtr<OptimizerPlanner> expert_planner =
      layout.ep() > 1 ? make_optimizer_planner(opt, plan.optimizer, expert_dp) : nullptr;
  if (optimizer_planner) {
    plan.optimizer_state_rule = optimizer_planner->state_rule();
    for (std::string& note : optimizer_planner->notes()) plan.notes.push_back(std::move(note));
  } else {
    plan.optimizer_state_rule = "not predicted";
    plan.notes.push_back(fmt::format("optimizer plugin '{}': its state is not predicted (shown as 0) and its dp traffic "
                                     "is shown as one gradient all-reduce per parameter tensor",
                                     plan.optimizer));
  }

  // Every cost first: a stage's gradients travel back with the size of its predecessor's output.
  const int pp = layout.pp(), vpp = layout.vpp(), tp = layout.tp(), dp = layout.dp();
  std::vector<ParallelLayout> stage_layouts;
  std::vector<std::vector<ModelChunkCost>> costs(pp);
  for (int s = 0; s < pp; ++s) {
    stage_layouts.push_back(ParallelLayout::make(layout.world_rank_of(0, 0, s), request.world_size, plan.sizes));
    for (int c = 0; c < vpp; ++c) costs[s].push_back(planner->chunk_cost(stage_layouts[s], c, plan.micro_batch_size));
  }
  const auto cost_of_virtual_stage = [&](std::int64_t vs) -> const ModelChunkCost& {
    return costs[vs % pp][vs / pp];
  };

  const std::int64_t m = plan.num_microbatches;
  for (int s = 0; s < pp; ++s) {
    StagePlan st;
    st.stage = s;
    st.chunks = costs[s];
    CollectiveCount tensors, tp_forward, tp_backward, tp_recompute, tp_loss, tp_replicated, tied, tp_gather, tp_scatter;
    CollectiveCount expert_tensors, ep_gather, ep_scatter, cp_gather, cp_scatter;
    for (const ModelChunkCost& c : st.chunks) {
      st.parameters = plan_add(st.parameters, c.parameters);
      st.activation_elements = plan_add(st.activation_elements, c.activation_elements);
      tensors += {c.parameter_tensors - c.expert_parameters.calls, c.parameters - c.expert_parameters.elements};
      expert_tensors += c.expert_parameters;
      ep_gather += c.ep_all_gather;
      cp_gather += c.cp_all_gather;
      cp_scatter += c.cp_reduce_scatter;
      ep_scatter += c.ep_reduce_scatter;
      tp_forward += c.tp_forward;
      tp_backward += c.tp_backward;
      tp_recompute += c.tp_recompute;
      tp_gather += c.tp_all_gather;
      tp_scatter += c.tp_reduce_scatter;
      tp_loss += c.tp_loss_statistics;
      tp_replicated += c.tp_replicated_grads;
      tied += c.tied_embedding_grads;
    }
    st.gradients = st.parameters;  // every parameter carries a gradient of its shape
    const StageParameters stage_parameters{tensors.calls, tensors.elements};
    const StageParameters expert_parameters{expert_tensors.calls, expert_tensors.elements};
    if (optimizer_planner) st.optimizer_state = optimizer_planner->state_elements(stage_parameters);
    if (expert_planner && expert_tensors.calls > 0)
      st.optimizer_state = plan_add(st.optimizer_state, expert_planner->state_elements(expert_parameters));

    // The schedule's steps for this stage, walked as the pipeline executor walks them: a pass's
    // activations are held from its forward to its backward, and the peak is taken after forwards.
    const ScheduleSpec spec{pp, s, m, vpp};
    const std::vector<PipelineStep> steps = iteration_steps(schedule.get(), spec);
    std::map<std::pair<std::int64_t, int>, std::int64_t> held;
    std::int64_t held_elements = 0;
    CollectiveCount sent_activations, sent_grads;
    for (const PipelineStep& step : steps) {
      const std::int64_t vs = static_cast<std::int64_t>(step.chunk) * pp + s;
      switch (step.kind) {
        case PipelineStep::Kind::forward: {
          const std::int64_t e = st.chunks.at(step.chunk).activation_elements;
          held[{step.microbatch, step.chunk}] = e;
          held_elements = plan_add(held_elements, e);
          st.peak_passes_held = std::max<std::int64_t>(st.peak_passes_held, static_cast<std::int64_t>(held.size()));
          st.peak_held_elements = std::max(st.peak_held_elements, held_elements);
          break;
        }
        case PipelineStep::Kind::backward: {
          auto it = held.find({step.microbatch, step.chunk});
          if (it != held.end()) {
            held_elements -= it->second;
            held.erase(it);
          }
          break;
        }
        case PipelineStep::Kind::send_activation:
          sent_activations += {cost_of_virtual_stage(vs).output_tensors, cost_of_virtual_stage(vs).output_elements};
          break;
        case PipelineStep::Kind::send_grad:
          sent_grads += {cost_of_virtual_stage(vs - 1).output_tensors, cost_of_virtual_stage(vs - 1).output_elements};
          break;
        default:
          break;
      }
    }

    add_traffic(st, "tp", tp, "all_reduce", "activations in forward (the model's tensor-parallel regions)", times(tp_forward, m));
    add_traffic(st, "tp", tp, "all_reduce", "activation gradients in backward", times(tp_backward, m));
    add_traffic(st, "tp", tp, "all_reduce", "activations in the recompute forward (in backward)", times(tp_recompute, m));
    add_traffic(st, "tp", tp, "all_gather", "sequence-parallel token rows (forward, backward, recompute)",
                times(tp_gather, m));
    add_traffic(st, "tp", tp, "reduce_scatter", "sequence-parallel token rows (forward, backward, recompute)",
                times(tp_scatter, m));
    add_traffic(st, "tp", tp, "all_reduce", "vocabulary-parallel loss statistics", times(tp_loss, m));
    add_traffic(st, "tp", tp, "all_reduce",
                "gradients of tensors replicated over tp that each rank computes in part (MQA's K/V, norms and "
                "embeddings under sequence parallelism)", tp_replicated);
    add_traffic(st, "tp", tp, "all_reduce", "gradient norm (a scalar)", {1, 1});
    add_traffic(st, "ep", layout.ep_dp(), "all_gather",
                "mixture-of-experts token rows and routing (forward), output gradients (backward), per microbatch",
                times(ep_gather, m));
    add_traffic(st, "ep", layout.ep_dp(), "reduce_scatter",
                "mixture-of-experts outputs (forward), input and routing-weight gradients (backward)", times(ep_scatter, m));
    if (expert_tensors.calls > 0) {
      if (expert_planner && expert_dp > 1) {
        for (const OptimizerCollective& c : expert_planner->dp_traffic(expert_parameters))
          add_traffic(st, "expert_dp", expert_dp, c.op, c.what + " (the experts')", c.count);
      } else {
        add_traffic(st, "expert_dp", expert_dp, "all_reduce", "the experts' gradients, one all-reduce per tensor",
                    expert_tensors);
      }
      add_traffic(st, "ep", layout.ep_dp(), "all_reduce", "the experts' part of the gradient norm (a scalar)", {1, 1});
    }
    const int cp = layout.cp();
    add_traffic(st, "cp", cp, "all_gather", "keys and values of the whole sequences (forward, backward, recompute)",
                times(cp_gather, m));
    add_traffic(st, "cp", cp, "reduce_scatter", "gradients of the whole sequences' keys and values", times(cp_scatter, m));
    if (s == pp - 1) add_traffic(st, "cp", cp, "all_reduce", "the loss's sum and token count (scalars)", times({2, 2}, m));
    // After the dp reduction: a distributed optimizer's gradient shards (1/dp of them: its dp traffic
    // reduce-scatters the gradients), else every gradient.
    bool shards = false;
    if (optimizer_planner && dp > 1 && cp > 1)
      for (const OptimizerCollective& c : optimizer_planner->dp_traffic(stage_parameters))
        shards |= c.op == "reduce_scatter";
    add_traffic(st, "cp", cp, "all_reduce", "gradients (each rank's tokens' part), after the dp reduction",
                shards ? CollectiveCount{tensors.calls, tensors.elements / dp} : tensors);
    add_traffic(st, "pp", pp, "send", "activations to the next stage", sent_activations);
    add_traffic(st, "pp", pp, "send", "activation gradients to the previous stage", sent_grads);
    add_traffic(st, "pp", pp, "all_reduce", "loss and gradient norm (scalars)", {2, 2});
    const std::int64_t parts = planner->loss_parts();
    if (parts > 0) add_traffic(st, "pp", pp, "all_reduce", "the loss's terms (scalars)", {1, parts});
    const std::int64_t metrics = planner->metrics();
    if (metrics > 0)
      add_traffic(st, "pp", pp, "all_reduce", "the model's statistics (sums and counts)", {1, 2 * metrics});
    if (dp > 1) {
      if (optimizer_planner) {
        for (const OptimizerCollective& c : optimizer_planner->dp_traffic(stage_parameters))
          add_traffic(st, "dp", dp, c.op, c.what, c.count);
      } else {
        add_traffic(st, "dp", dp, "all_reduce", "gradients, one all-reduce per parameter tensor", tensors);
      }
    }
    add_traffic(st, "dp", dp, "all_reduce", "loss (a scalar)", {1, 1});
    if (parts > 0) add_traffic(st, "dp", dp, "all_reduce", "the loss's terms (scalars)", {1, parts});
    if (metrics > 0)
      add_traffic(st, "dp", dp, "all_reduce", "the model's statistics (sums and counts)", {1, 2 * metrics});
    // The embedding group: the first and last stages, and an encoder-decoder's split rank.
    const int embedding_group = static_cast<int>(stage_layouts[s].group_ranks(GroupKind::embedding).size());
    add_traffic(st, "embedding", embedding_group, "all_reduce",
                "tied embedding gradients (first, last and split-rank stages)", tied);
    plan.stages.push_back(std::move(st));
  }

  // Bubble: Narayanan et al. 2021, §2.2.1 (1F1B: (p − 1)/m of the ideal time) and §2.2.2
  // (interleaved: (p − 1)/(v·m)); as a share of the whole iteration, bubble / (ideal + bubble).
  const double p = pp, v = vpp, mm = static_cast<double>(m);
  if (pp == 1) {
    plan.bubble_formula = "none (one stage)";
  } else if (vpp > 1) {
    plan.bubble_of_ideal = (p - 1) / (v * mm);
    plan.bubble_of_iteration = (p - 1) / (v * mm + p - 1);
    plan.bubble_formula = "interleaved: (p−1)/(v·m) of the ideal time, (p−1)/(v·m+p−1) of the iteration";
  } else {
    plan.bubble_of_ideal = (p - 1) / mm;
    plan.bubble_of_iteration = (p - 1) / (mm + p - 1);
    plan.bubble_formula = "1F1B: (p−1)/m of the ideal time, (p−1)/(m+p−1) of the iteration";
  }
  const PrecisionOptions precision = read_precision(config);
  if (precision.compute != DType::f32)
    plan.notes.push_back(fmt::format(
        "training.precision = \"{}\" is not modelled in bytes yet: the figures below count 4 bytes per element, while "
        "a {} run keeps activations and sends tensor- and pipeline-parallel traffic in 2 bytes (LayerNorm statistics, "
        "attention's log-sum-exp, logits and the loss stay f32) and adds a 2-byte copy of every parameter; element "
        "counts are exact either way", precision_name(precision.compute), precision_name(precision.compute)));
  plan.notes.push_back("everything is f32, so bytes = 4 × elements; activations are what each microbatch keeps "
                       "from its forward to its backward (with [model] recompute_granularity, what recompute keeps); "
                       "temporaries (a layer's workspace, the LM head's logits chunk, a recomputed layer group's "
                       "saves refilled during its backward) are not included");

  // Sections the plan does not interpret belong to plugins it does not build (data, the optimizer's
  // hyper-parameters) or are not about sizes: their keys are accepted as they are. [model] is
  // checked as strictly as by `tessera train`, [parallel] for misspelt keys (read_sizes).
  for (const std::string& name : config.section_names())
    if (name != "model" && name != "parallel") {
      ConfigSection sec = config.section(name);
      for (const std::string& key : sec.keys()) sec.declare(key);
    }
  config.check_no_unknown_keys();
  return plan;
}

}  // namespace tessera
