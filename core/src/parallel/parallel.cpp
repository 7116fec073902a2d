#include "tessera/parallel/parallel.hpp"

#include "tessera/parallel/local_communicator.hpp"
#include "tessera/parallel/mpi_runtime.hpp"

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

}  // namespace tessera
