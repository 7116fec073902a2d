// tessera plan CONFIG.toml --ranks N [--set section.key=value ...] [--vocab-size V] [--json]: what
// the config's layout costs on every pipeline stage before any run — memory per rank, communication
// per iteration and group, the pipeline bubble and the model FLOPs (train/plan.hpp; docs/plan.md).
#include <cstdio>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "plugin_defaults.hpp"
#include "tessera/config.hpp"
#include "tessera/logging.hpp"
#include "tessera/train/checkpoint_args.hpp"
#include "tessera/train/plan.hpp"

namespace tessera::app {
namespace {

struct PlanArgs {
  std::string config;
  std::vector<std::string> overrides;
  int ranks = 1;
  std::int64_t vocab_size = 0;
  bool json = false;
};

// 1234567 → "1,234,567"
std::string grouped(std::int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (b >= 1024 && u < 5) {
    b /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", b) : fmt::format("{:.2f} {}", b, units[u]);
}

// "1,234 (4.8 KiB)": elements and their f32 bytes.
std::string elements(std::int64_t n) { return fmt::format("{} ({})", grouped(n), bytes(4.0 * static_cast<double>(n))); }

std::string stage_range(int a, int b) { return a == b ? fmt::format("stage {}", a) : fmt::format("stages {}–{}", a, b); }

void print_text(const Plan& p) {
  const ParallelSizes& z = p.sizes;
  fmt::print("tessera plan: {} on {} ranks\n\n", p.config, p.world_size);
  fmt::print("model      {}\n", p.model);
  fmt::print("           {} parameters in all (each tensor once)\n", grouped(p.total_parameters));
  fmt::print("layout     world {} = tp {}{} × dp {} × pp {}{}\n", p.world_size, z.tp,
             z.cp > 1 ? fmt::format(" × cp {}", z.cp) : "", p.dp, z.pp, z.vpp > 1 ? fmt::format(" (vpp {}: {} model chunks per pipeline rank)", z.vpp, z.vpp) : "");
  fmt::print("batch      global {} = micro {} × dp {} × {} microbatches per iteration; seq {}\n", p.global_batch_size,
             p.micro_batch_size, p.dp, p.num_microbatches, p.seq_length);
  fmt::print("schedule   {}\n", p.schedule);
  fmt::print("optimizer  {}: state = {}\n\n", p.optimizer, p.optimizer_state_rule);

  fmt::print("Memory per rank (elements, f32 bytes in brackets; gradients = parameters)\n");
  fmt::print("{:<6} {:<48} {:>26} {:>26} {:>26} {:>6} {:>26} {:>11}\n", "stage", "holds", "parameters", "optimizer state",
             "activations / microbatch", "held", "peak activations", "total");
  for (const StagePlan& s : p.stages) {
    std::string holds;
    for (std::size_t c = 0; c < s.chunks.size(); ++c)
      holds += (c ? "; " : "") + (s.chunks.size() > 1 ? fmt::format("[{}] ", c) : "") + s.chunks[c].contents;
    const double total = s.f32_bytes();
    fmt::print("{:<6} {:<48} {:>26} {:>26} {:>26} {:>6} {:>26} {:>11}\n", s.stage, holds, elements(s.parameters),
               elements(s.optimizer_state), elements(s.activation_elements), s.peak_passes_held,
               elements(s.peak_held_elements), bytes(total));
  }
  fmt::print("held: the most {} whose activations the schedule's step list keeps at once on that stage\n\n",
             z.vpp > 1 ? "(microbatch, chunk) passes" : "microbatches");

  fmt::print("Communication per iteration, per rank (elements handed to the collective; bytes sent with ring algorithms)\n");
  // Stages with the same traffic are listed once.
  std::vector<std::pair<int, int>> runs;
  const auto same = [](const StagePlan& a, const StagePlan& b) {
    if (a.traffic.size() != b.traffic.size()) return false;
    for (std::size_t i = 0; i < a.traffic.size(); ++i) {
      const PlanTraffic &x = a.traffic[i], &y = b.traffic[i];
      if (x.group != y.group || x.op != y.op || x.what != y.what || x.count.calls != y.count.calls ||
          x.count.elements != y.count.elements)
        return false;
    }
    return true;
  };
  for (int s = 0; s < static_cast<int>(p.stages.size()); ++s)
    if (!runs.empty() && same(p.stages[runs.back().first], p.stages[s]))
      runs.back().second = s;
    else
      runs.push_back({s, s});
  for (auto [a, b] : runs) {
    const StagePlan& s = p.stages[a];
    fmt::print("{}:\n", stage_range(a, b));
    if (s.traffic.empty()) fmt::print("  none (one process)\n");
    std::map<std::string, double> sent;
    for (const PlanTraffic& t : s.traffic) {
      fmt::print("  {:<9} (of {:>4}) {:<14} {:>7} calls {:>30}  sent {:>11}  {}\n", t.group, t.group_size, t.op,
                 grouped(t.count.calls), elements(t.count.elements), bytes(t.bytes_sent), t.what);
      sent[t.group] += t.bytes_sent;
    }
    std::string total;
    for (const auto& [g, b2] : sent) total += fmt::format("{}{} {}", total.empty() ? "" : ", ", g, bytes(b2));
    if (!total.empty()) fmt::print("  sent per rank and iteration: {}\n", total);
  }
  fmt::print("pp sends are mirrored by receives on the neighbouring stage.\n\n");

  fmt::print("pipeline bubble  {:.2f}% of the ideal time, {:.2f}% of the iteration — {}\n", 100 * p.bubble_of_ideal,
             100 * p.bubble_of_iteration, p.bubble_formula);
  fmt::print("model FLOPs      {:.4g} per iteration ({:.4g} per rank), Megatron-LM's accounting (forward + backward, "
             "the recompute forward not counted)\n",
             p.flops_per_iteration, p.flops_per_iteration / p.world_size);
  for (const std::string& n : p.notes) fmt::print("note: {}\n", n);
}

nlohmann::json to_json(const CollectiveCount& c) { return {{"calls", c.calls}, {"elements", c.elements}}; }

void print_json(const Plan& p) {
  nlohmann::json j;
  j["config"] = p.config;
  j["model"] = p.model;
  j["schedule"] = p.schedule;
  j["optimizer"] = p.optimizer;
  j["optimizer_state_rule"] = p.optimizer_state_rule;
  j["world_size"] = p.world_size;
  j["tp"] = p.sizes.tp;
  j["pp"] = p.sizes.pp;
  j["vpp"] = p.sizes.vpp;
  j["cp"] = p.sizes.cp;
  j["dp"] = p.dp;
  j["vocab_size"] = p.vocab_size;
  j["seq_length"] = p.seq_length;
  j["micro_batch_size"] = p.micro_batch_size;
  j["global_batch_size"] = p.global_batch_size;
  j["num_microbatches"] = p.num_microbatches;
  j["total_parameters"] = p.total_parameters;
  j["bubble_of_ideal"] = p.bubble_of_ideal;
  j["bubble_of_iteration"] = p.bubble_of_iteration;
  j["bubble_formula"] = p.bubble_formula;
  j["flops_per_iteration"] = p.flops_per_iteration;
  j["notes"] = p.notes;
  j["stages"] = nlohmann::json::array();
  for (const StagePlan& s : p.stages) {
    nlohmann::json js = {{"stage", s.stage},
                         {"parameters", s.parameters},
                         {"gradients", s.gradients},
                         {"optimizer_state", s.optimizer_state},
                         {"activation_elements", s.activation_elements},
                         {"peak_passes_held", s.peak_passes_held},
                         {"peak_held_elements", s.peak_held_elements}};
    js["chunks"] = nlohmann::json::array();
    for (const ModelChunkCost& c : s.chunks)
      js["chunks"].push_back({{"contents", c.contents},
                              {"parameters", c.parameters},
                              {"parameter_tensors", c.parameter_tensors},
                              {"tied_embedding_grads", to_json(c.tied_embedding_grads)},
                              {"tp_replicated_grads", to_json(c.tp_replicated_grads)},
                              {"activation_elements", c.activation_elements},
                              {"output_elements", c.output_elements},
                              {"tp_forward", to_json(c.tp_forward)},
                              {"tp_backward", to_json(c.tp_backward)},
                              {"tp_recompute", to_json(c.tp_recompute)},
                              {"tp_loss_statistics", to_json(c.tp_loss_statistics)}});
    js["traffic"] = nlohmann::json::array();
    for (const PlanTraffic& t : s.traffic)
      js["traffic"].push_back({{"group", t.group},
                               {"op", t.op},
                               {"what", t.what},
                               {"group_size", t.group_size},
                               {"calls", t.count.calls},
                               {"elements", t.count.elements},
                               {"bytes_sent", t.bytes_sent}});
    j["stages"].push_back(js);
  }
  fmt::print("{}\n", j.dump(1));
}

RegisterCommand reg{{"plan",
                     [](CLI::App& sub) -> std::function<int()> {
                       auto a = std::make_shared<PlanArgs>();
                       sub.add_option("config", a->config, "TOML run configuration")->required()->check(CLI::ExistingFile);
                       sub.add_option("--ranks", a->ranks, "processes the run would use (world size)")
                           ->required()
                           ->check(in_range(1));
                       sub.add_option("--set", a->overrides, "override a key: section.key=value (repeatable)");
                       sub.add_option("--vocab-size", a->vocab_size,
                                      "tokenizer vocabulary size, for configs whose tokenizer files are not here "
                                      "(default: the config's tokenizer)")
                           ->check(in_range(1));
                       sub.add_flag("--json", a->json, "print the plan as JSON");
                       return [a] {
                         log_state().level = LogLevel::warn;
                         // A run with checkpoint.use_checkpoint_args trains its checkpoint's model: plan that one.
                         const Config config =
                             with_plugin_defaults(with_checkpoint_args(Config::load(a->config, a->overrides)));
                         const Plan plan = make_plan(config, {a->ranks, a->vocab_size});
                         a->json ? print_json(plan) : print_text(plan);
                         return 0;
                       };
                     },
                     "memory, communication and bubble of a config's layout, per pipeline stage, before any run"}};

}  // namespace
}  // namespace tessera::app
