#include "tessera/nn/recompute.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"

namespace tessera {

namespace {

constexpr const char* kModuleNames =
    "\"core_attn\", \"mlp\", \"moe\", \"shared_experts\", \"moe_act\" and \"layernorm\"";

// Megatron-Core's recompute_modules (TransformerConfig.recompute_modules), for "selective".
RecomputeModules read_recompute_modules(const ConfigSection& s, const std::string& granularity) {
  RecomputeModules m;
  if (!s.has("recompute_modules")) return m;
  const std::string key = s.name() + ".recompute_modules";
  const std::string where = s.origin("recompute_modules");
  if (granularity != "selective")
    throw ConfigError(fmt::format("{} (in {}) names what {}.recompute_granularity = \"selective\" recomputes, but "
                                  "the granularity is {}",
                                  key, where, s.name(), granularity.empty() ? "not set" : "\"" + granularity + "\""));
  m.core_attn = false;
  for (const std::string& name : s.get_string_list("recompute_modules", {})) {
    if (name == "core_attn") m.core_attn = true;
    else if (name == "mlp") m.mlp = true;
    else if (name == "moe") m.moe = true;
    else if (name == "shared_experts") m.shared_experts = true;
    else if (name == "moe_act") m.moe_act = true;
    else if (name == "layernorm") m.layernorm = true;
    else if (name == "mla_up_proj")
      throw ConfigError(fmt::format("{} (in {}): \"mla_up_proj\" is Megatron-Core's but not built here (there is "
                                    "no multi-latent attention); the modules are {}",
                                    key, where, kModuleNames));
    else
      throw ConfigError(fmt::format("{} (in {}): unknown module \"{}\"; the modules are {}", key, where, name,
                                    kModuleNames));
  }
  const bool mixture = m.moe || m.moe_act || m.shared_experts;
  if (mixture && !s.has("num_experts"))
    throw ConfigError(fmt::format("{} (in {}) names parts of mixture-of-experts layers (\"moe\", \"moe_act\", "
                                  "\"shared_experts\"), but {}.num_experts is not set",
                                  key, where, s.name()));
  if (m.shared_experts && !s.has("moe_shared_expert_intermediate_size"))
    throw ConfigError(fmt::format("{} (in {}) names \"shared_experts\", but the layers have no shared expert "
                                  "({}.moe_shared_expert_intermediate_size is not set)", key, where, s.name()));
  if (m.moe && (m.moe_act || m.shared_experts))
    throw ConfigError(fmt::format("{} (in {}): \"moe\" recomputes the whole mixture-of-experts layer, its experts' "
                                  "activations and shared expert included; drop \"{}\"",
                                  key, where, m.moe_act ? "moe_act" : "shared_experts"));
  return m;
}

}  // namespace

RecomputeOptions read_recompute_options(const ConfigSection& s, std::int64_t per_chunk, int tp, bool sequence_parallel) {
  RecomputeOptions o;
  const std::string key = s.name() + ".";
  std::string granularity = s.get_choice("recompute_granularity", "", {"", "full", "selective"});
  // Megatron-LM's --recompute-activations: shorthand for the selective granularity.
  if (s.get_bool("recompute_activations", false)) {
    if (granularity == "full")
      throw ConfigError(fmt::format("{0}recompute_activations = true (in {1}) is {0}recompute_granularity = "
                                    "\"selective\", but {0}recompute_granularity = \"full\" (in {2}); give one of them",
                                    key, s.origin("recompute_activations"), s.origin("recompute_granularity")));
    granularity = "selective";
  }
  o.granularity = granularity == "full"        ? RecomputeOptions::Granularity::full
                  : granularity == "selective" ? RecomputeOptions::Granularity::selective
                                               : RecomputeOptions::Granularity::none;
  o.modules = read_recompute_modules(s, granularity);
  const bool has_method = s.has("recompute_method"), has_num = s.has("recompute_num_layers");
  std::string method;
  if (has_method) method = s.get_choice("recompute_method", "uniform", {"uniform", "block"});
  o.method = method == "block" ? RecomputeOptions::Method::block : RecomputeOptions::Method::uniform;
  o.distribute_saved_activations = s.get_bool("distribute_saved_activations", false);
  if (o.distribute_saved_activations) {
    const std::string where = s.origin("distribute_saved_activations");
    if (granularity != "full")
      throw ConfigError(fmt::format("{}distribute_saved_activations = true (in {}) splits what "
                                    "{}recompute_granularity = \"full\" keeps, but the granularity is {}",
                                    key, where, key, granularity.empty() ? "not set" : "\"" + granularity + "\""));
    if (tp < 2)
      throw ConfigError(fmt::format("{}distribute_saved_activations = true (in {}) splits the kept activations over "
                                    "the tensor-parallel ranks, but parallel.tensor_model_parallel_size is {}",
                                    key, where, tp));
    if (sequence_parallel)
      throw ConfigError(fmt::format("{}distribute_saved_activations = true (in {}) and parallel.sequence_parallel: "
                                    "sequence parallelism already keeps 1/tp of the activations (as Megatron-LM, "
                                    "they cannot be combined)", key, where));
  }
  o.num_layers = s.get_int("recompute_num_layers", 1, 1, 100000);
  if (granularity != "full") {
    if (has_method || has_num)
      throw ConfigError(fmt::format(
          "{0}recompute_method and {0}recompute_num_layers (in {1}) apply only to {0}recompute_granularity = "
          "\"full\"{2}", key, s.origin(has_method ? "recompute_method" : "recompute_num_layers"),
          granularity == "selective" ? "; \"selective\" recomputes recompute_modules' parts of every layer and takes "
                                       "neither"
                                     : ", which is not set"));
    return o;
  }
  if (!has_method)
    throw ConfigError(fmt::format("{0}recompute_granularity = \"full\" in {1} needs {0}recompute_method = "
                                  "\"uniform\" (groups of {0}recompute_num_layers layers) or \"block\" (the first "
                                  "{0}recompute_num_layers layers of each pipeline stage's model chunk)",
                                  key, s.origin("recompute_granularity")));
  if (o.num_layers > per_chunk)
    throw ConfigError(fmt::format("{}recompute_num_layers ({}) in {} exceeds the {} layers of each pipeline model "
                                  "chunk", key, o.num_layers, s.origin("recompute_num_layers"), per_chunk));
  if (o.method == RecomputeOptions::Method::uniform && per_chunk % o.num_layers != 0)
    throw ConfigError(fmt::format("{}recompute_num_layers ({}) in {} must divide the {} layers of each pipeline "
                                  "model chunk with {}recompute_method = \"uniform\"",
                                  key, o.num_layers, s.origin("recompute_num_layers"), per_chunk, key));
  return o;
}

std::vector<RecomputeSegment> recompute_segments(const RecomputeOptions& o, std::size_t n) {
  std::vector<RecomputeSegment> segments;
  const auto k = static_cast<std::size_t>(std::max<std::int64_t>(1, o.num_layers));
  if (o.granularity != RecomputeOptions::Granularity::full)
    segments.push_back({0, n, false});
  else if (o.method == RecomputeOptions::Method::uniform)
    for (std::size_t i = 0; i < n; i += k) segments.push_back({i, std::min(k, n - i), true});
  else
    for (std::size_t i = 0; i < n; ++i) segments.push_back({i, 1, i < k});
  return segments;
}

}  // namespace tessera
