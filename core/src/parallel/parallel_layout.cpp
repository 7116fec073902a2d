#include "tessera/parallel/parallel_layout.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera {

const char* group_kind_name(GroupKind kind) {
  switch (kind) {
    case GroupKind::tp: return "tp";
    case GroupKind::dp: return "dp";
    case GroupKind::pp: return "pp";
    case GroupKind::embedding: return "embedding";
    case GroupKind::ep: return "ep";
    case GroupKind::expert_dp: return "expert_dp";
    case GroupKind::cp: return "cp";
  }
  return "?";
}

ParallelLayout ParallelLayout::make(int world_rank, int world_size, const ParallelSizes& sizes) {
  auto at_least_one = [](const char* what, int value) {
    if (value < 1) throw ConfigError(fmt::format("{} must be at least 1, got {}", what, value));
  };
  at_least_one("world size", world_size);
  at_least_one("tensor_model_parallel_size", sizes.tp);
  at_least_one("pipeline_model_parallel_size", sizes.pp);
  at_least_one("virtual_pipeline_model_parallel_size", sizes.vpp);
  at_least_one("expert_model_parallel_size", sizes.ep);
  at_least_one("context_parallel_size", sizes.cp);
  const long long model = static_cast<long long>(sizes.tp) * sizes.pp * sizes.cp;
  if (world_size % model != 0)
    throw ConfigError(fmt::format(
        "world size {} is not divisible by tensor_model_parallel_size ({}) × pipeline_model_parallel_size "
        "({}){} = {}: the data-parallel size would not be a whole number",
        world_size, sizes.tp, sizes.pp,
        sizes.cp > 1 ? fmt::format(" × context_parallel_size ({})", sizes.cp) : "", model));
  if (sizes.cp > 1 && sizes.ep > 1)
    throw ConfigError(fmt::format("expert_model_parallel_size {} with context_parallel_size {}: expert parallelism "
                                  "under context parallelism is not built (set one of them to 1)",
                                  sizes.ep, sizes.cp));
  if (sizes.vpp > 1 && sizes.pp == 1)
    throw ConfigError(fmt::format(
        "virtual_pipeline_model_parallel_size {} needs pipeline_model_parallel_size > 1, got 1", sizes.vpp));
  if (sizes.pipeline_split_rank != 0 && (sizes.pipeline_split_rank < 1 || sizes.pipeline_split_rank >= sizes.pp))
    throw ConfigError(fmt::format("pipeline_model_parallel_split_rank {} must be a stage in [1, {}) "
                                  "(pipeline_model_parallel_size {}): the encoder needs stages before it, the "
                                  "decoder from it on; 0 means no split",
                                  sizes.pipeline_split_rank, sizes.pp, sizes.pp));
  if (sizes.pipeline_split_rank != 0 && sizes.vpp > 1)
    throw ConfigError(fmt::format("pipeline_model_parallel_split_rank {} cannot be combined with "
                                  "virtual_pipeline_model_parallel_size {} (as in Megatron-LM)",
                                  sizes.pipeline_split_rank, sizes.vpp));
  if (world_rank < 0 || world_rank >= world_size)
    throw ConfigError(fmt::format("rank {} is outside the world of {} ranks", world_rank, world_size));

  ParallelLayout l;
  l.sizes_ = sizes;
  l.world_ = world_size;
  l.rank_ = world_rank;
  l.dp_ = static_cast<int>(world_size / model);
  if (sizes.etp != 0 && sizes.etp != 1 && sizes.etp != sizes.tp)
    throw ConfigError(fmt::format("expert_tensor_parallel_size {} must be 1 (experts whole, each tensor-parallel rank "
                                  "holding others) or tensor_model_parallel_size ({}, experts split over tp)",
                                  sizes.etp, sizes.tp));
  if (sizes.etp == 1 && sizes.tp > 1 && sizes.ep > 1 && (sizes.ep % sizes.tp != 0 || l.dp_ % (sizes.ep / sizes.tp) != 0))
    throw ConfigError(fmt::format(
        "expert_tensor_parallel_size 1 with tensor_model_parallel_size {}: expert_model_parallel_size {} must be 1 "
        "(every tp rank holding every expert) or a multiple of {} that divides {} × the data-parallel size {} (world "
        "size {} / (tp {} × pp {})): the tp ranks hold different whole experts, so the ep ranks are the tp group "
        "times ep / tp data-parallel ranks (an ep between 1 and tp is not built)",
        sizes.tp, sizes.ep, sizes.tp, sizes.tp, l.dp_, world_size, sizes.tp, sizes.pp));
  if (l.dp_ % l.ep_dp() != 0)
    throw ConfigError(fmt::format(
        "expert_model_parallel_size {} must divide the data-parallel size {} (world size {} / "
        "(tensor_model_parallel_size {} × pipeline_model_parallel_size {})): the experts are split over "
        "data-parallel ranks",
        sizes.ep, l.dp_, world_size, sizes.tp, sizes.pp));
  l.tp_rank_ = world_rank % sizes.tp;
  l.cp_rank_ = (world_rank / sizes.tp) % sizes.cp;
  l.dp_rank_ = (world_rank / (sizes.tp * sizes.cp)) % l.dp_;
  l.pp_rank_ = world_rank / (sizes.tp * sizes.cp * l.dp_);
  return l;
}

int ParallelLayout::world_rank_of(int tp_rank, int dp_rank, int pp_rank, int cp_rank) const {
  return tp_rank + sizes_.tp * (cp_rank + sizes_.cp * (dp_rank + dp_ * pp_rank));
}

int ParallelLayout::next_pipeline_rank() const {
  return world_rank_of(tp_rank_, dp_rank_, (pp_rank_ + 1) % sizes_.pp, cp_rank_);
}

int ParallelLayout::prev_pipeline_rank() const {
  return world_rank_of(tp_rank_, dp_rank_, (pp_rank_ + sizes_.pp - 1) % sizes_.pp, cp_rank_);
}

std::vector<int> ParallelLayout::group_at(GroupKind kind, int t, int c, int d, int p) const {
  std::vector<int> ranks;
  // Every group but cp's lies within one context-parallel rank.
  const auto at = [&](int tp_rank, int dp_rank, int pp_rank) { return world_rank_of(tp_rank, dp_rank, pp_rank, c); };
  switch (kind) {
    case GroupKind::cp:
      for (int i = 0; i < sizes_.cp; ++i) ranks.push_back(world_rank_of(t, d, p, i));
      break;
    case GroupKind::tp:
      for (int i = 0; i < sizes_.tp; ++i) ranks.push_back(at(i, d, p));
      break;
    case GroupKind::dp:
      for (int i = 0; i < dp_; ++i) ranks.push_back(at(t, i, p));
      break;
    case GroupKind::pp:
      for (int i = 0; i < sizes_.pp; ++i) ranks.push_back(at(t, d, i));
      break;
    case GroupKind::ep:
      for (int i = 0; i < ep_dp(); ++i) ranks.push_back(at(t, d - d % ep_dp() + i, p));
      break;
    case GroupKind::expert_dp:
      for (int i = 0; i < dp_ / ep_dp(); ++i) ranks.push_back(at(t, i * ep_dp() + d % ep_dp(), p));
      break;
    case GroupKind::embedding: {
      std::vector<int> stages{0};
      if (sizes_.pipeline_split_rank > 0) stages.push_back(sizes_.pipeline_split_rank);
      if (sizes_.pp - 1 != stages.back()) stages.push_back(sizes_.pp - 1);
      if (std::find(stages.begin(), stages.end(), p) != stages.end())
        for (int s : stages) ranks.push_back(at(t, d, s));
      break;
    }
  }
  return ranks;
}

std::vector<int> ParallelLayout::group_ranks(GroupKind kind) const {
  return group_at(kind, tp_rank_, cp_rank_, dp_rank_, pp_rank_);
}

std::vector<std::vector<int>> ParallelLayout::all_groups(GroupKind kind) const {
  // One representative position per group: coordinate 0 along the group's own dimension(s).
  std::vector<std::vector<int>> groups;
  for (int p = 0; p < sizes_.pp; ++p)
    for (int d = 0; d < dp_; ++d)
      for (int c = 0; c < sizes_.cp; ++c)
        for (int t = 0; t < sizes_.tp; ++t) {
          bool representative = (kind == GroupKind::tp && t == 0) || (kind == GroupKind::dp && d == 0) ||
                                (kind == GroupKind::cp && c == 0) || (kind == GroupKind::ep && d % ep_dp() == 0) ||
                                (kind == GroupKind::expert_dp && d < ep_dp()) ||
                                ((kind == GroupKind::pp || kind == GroupKind::embedding) && p == 0);
          if (representative) groups.push_back(group_at(kind, t, c, d, p));
        }
  std::sort(groups.begin(), groups.end());
  return groups;
}

std::string ParallelLayout::str() const {
  std::string details;
  const auto layers = [](std::int64_t n) { return fmt::format("{} layer{}", n, n == 1 ? "" : "s"); };
  if (sizes_.first_stage_layers > 0) details += ", first stage " + layers(sizes_.first_stage_layers);
  if (sizes_.last_stage_layers > 0) details += ", last stage " + layers(sizes_.last_stage_layers);
  if (sizes_.embedding_in_split) details += ", the embedding counted as a layer";
  if (sizes_.loss_in_split) details += ", the loss counted as a layer";
  if (sizes_.ep > 1) details += fmt::format(", expert parallel {} (rank {} of it)", sizes_.ep, ep_rank());
  if (etp() != sizes_.tp) details += fmt::format(", expert tensor parallel {}", etp());
  const bool cp = sizes_.cp > 1;
  return fmt::format("world {} = tp {}{} × dp {} × pp {} (vpp {}, sequence parallel {}{}{}); rank {} = (tp {}{}, dp {}, pp {})",
                     world_, sizes_.tp, cp ? fmt::format(" × cp {}", sizes_.cp) : "", dp_, sizes_.pp, sizes_.vpp,
                     sizes_.sequence_parallel ? "on" : "off",
                     sizes_.pipeline_split_rank > 0 ? fmt::format(", split rank {}", sizes_.pipeline_split_rank) : "",
                     details,
                     rank_, tp_rank_, cp ? fmt::format(", cp {}", cp_rank_) : "", dp_rank_, pp_rank_);
}

}  // namespace tessera
