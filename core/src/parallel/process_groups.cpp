#include "tessera/parallel/process_groups.hpp"

#include <algorithm>

namespace tessera {

Communicator& ProcessGroups::group(GroupKind kind) const {
  const std::shared_ptr<Communicator>* c = nullptr;
  switch (kind) {
    case GroupKind::tp: c = &tp; break;
    case GroupKind::dp: c = &dp; break;
    case GroupKind::pp: c = &pp; break;
    case GroupKind::embedding: c = &embedding; break;
    case GroupKind::ep: c = &ep; break;
    case GroupKind::expert_dp: c = &expert_dp; break;
    case GroupKind::cp: c = &cp; break;
  }
  if (c == nullptr || *c == nullptr)
    throw CommError(fmt::format("this rank is in no {} group (middle pipeline stages hold no embedding)",
                                group_kind_name(kind)));
  return **c;
}

// Groups of one kind partition the ranks that are in any, so a group's lowest rank is a unique
// color; the key orders the new communicator as the layout lists the group.
static std::shared_ptr<Communicator> split_for(const ParallelLayout& layout, Communicator& world, GroupKind kind) {
  std::vector<int> ranks = layout.group_ranks(kind);
  if (ranks.empty()) return world.split(-1, 0, group_kind_name(kind));
  int color = *std::min_element(ranks.begin(), ranks.end());
  int key = static_cast<int>(std::find(ranks.begin(), ranks.end(), layout.rank()) - ranks.begin());
  return world.split(color, key, group_kind_name(kind));
}

ProcessGroups build_process_groups(const ParallelLayout& layout, std::shared_ptr<Communicator> world) {
  if (world->size() != layout.world_size() || world->rank() != layout.rank())
    throw ConfigError(fmt::format("the layout ({}) was computed for another world than {} of size {}",
                                  layout.str(), world->describe(), world->size()));
  ProcessGroups g;
  // Same order on every rank: each split is a collective over the world.
  g.tp = split_for(layout, *world, GroupKind::tp);
  g.dp = split_for(layout, *world, GroupKind::dp);
  g.pp = split_for(layout, *world, GroupKind::pp);
  g.embedding = split_for(layout, *world, GroupKind::embedding);
  g.ep = split_for(layout, *world, GroupKind::ep);
  g.expert_dp = split_for(layout, *world, GroupKind::expert_dp);
  g.cp = split_for(layout, *world, GroupKind::cp);
  g.world = std::move(world);
  return g;
}

}  // namespace tessera
