// Everything a component needs to know about how the run is split: the layout (sizes and this
// rank's position) and the communicators of its groups. Passed explicitly, never global.
#pragma once
#include <memory>
#include <string>

#include "tessera/parallel/parallel_layout.hpp"
#include "tessera/parallel/process_groups.hpp"

namespace tessera {

struct Parallel {
  ParallelLayout layout;
  ProcessGroups groups;

  // One process: every group is the trivial one-rank communicator.
  static std::shared_ptr<const Parallel> single();
  // The world communicator (MPI under a launcher, else one rank) split by `sizes`.
  static std::shared_ptr<const Parallel> create(const ParallelSizes& sizes);
  // The same layout, with groups made by the communicator plugin `plugin` (kind `communicator`,
  // e.g. "nccl") from this one's world, for the tensors of `device`. Collective over the world.
  std::shared_ptr<const Parallel> with_communicator(const std::string& plugin, Device device) const;
};

}  // namespace tessera
