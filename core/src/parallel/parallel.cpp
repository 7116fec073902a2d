#include "tessera/parallel/parallel.hpp"

#include "tessera/parallel/local_communicator.hpp"
#include "tessera/parallel/mpi_runtime.hpp"
#include "tessera/plugin.hpp"

namespace tessera {

std::shared_ptr<const Parallel> Parallel::single() {
  ParallelLayout layout = ParallelLayout::make(0, 1, ParallelSizes{});
  std::shared_ptr<Communicator> world = std::make_shared<LocalCommunicator>("world");
  return std::make_shared<const Parallel>(Parallel{layout, build_process_groups(layout, world)});
}

std::shared_ptr<const Parallel> Parallel::create(const ParallelSizes& sizes) {
  std::shared_ptr<Communicator> world = make_world_communicator();
  ParallelLayout layout = ParallelLayout::make(world->rank(), world->size(), sizes);
  return std::make_shared<const Parallel>(Parallel{layout, build_process_groups(layout, world)});
}

std::shared_ptr<const Parallel> Parallel::with_communicator(const std::string& plugin, Device device) const {
  PluginPtr<Communicator> made = create_plugin<Communicator>("communicator", plugin, groups.world, device);
  // The plugin's library stays loaded while the world lives (its deleter holds it); the groups split
  // from it are destroyed before it (ProcessGroups' members go in reverse order, world last).
  auto deleter = made.get_deleter();
  std::shared_ptr<Communicator> world(made.release(), std::move(deleter));
  return std::make_shared<const Parallel>(Parallel{layout, build_process_groups(layout, world)});
}

}  // namespace tessera
