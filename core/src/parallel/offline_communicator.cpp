#include "tessera/parallel/offline_communicator.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera {

void OfflineCommunicator::fail(const char* op) const {
  throw CommError(fmt::format("{} on the offline group '{}' (rank {} of {}): it stands for a rank of a layout that "
                              "is not running, to build that rank's model, and has no peers",
                              op, name(), rank_, size_));
}

std::shared_ptr<const Parallel> offline_parallel(int world_rank, int world_size, const ParallelSizes& sizes) {
  const ParallelLayout layout = ParallelLayout::make(world_rank, world_size, sizes);
  const auto group = [&](GroupKind kind) -> std::shared_ptr<Communicator> {
    const std::vector<int> ranks = layout.group_ranks(kind);
    const auto at = std::find(ranks.begin(), ranks.end(), world_rank);
    if (at == ranks.end()) return nullptr;  // the embedding group of a middle stage
    return std::make_shared<OfflineCommunicator>(group_kind_name(kind), static_cast<int>(at - ranks.begin()),
                                                 static_cast<int>(ranks.size()));
  };
  ProcessGroups groups;
  groups.world = std::make_shared<OfflineCommunicator>("world", world_rank, world_size);
  groups.tp = group(GroupKind::tp);
  groups.dp = group(GroupKind::dp);
  groups.pp = group(GroupKind::pp);
  groups.embedding = group(GroupKind::embedding);
  groups.ep = group(GroupKind::ep);
  groups.expert_dp = group(GroupKind::expert_dp);
  groups.cp = group(GroupKind::cp);
  return std::make_shared<const Parallel>(Parallel{layout, std::move(groups)});
}

}  // namespace tessera
