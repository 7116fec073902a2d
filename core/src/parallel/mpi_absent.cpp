// A build without MPI (TESSERA_MPI=OFF, or AUTO where no MPI was found: a single-GPU box without
// OpenMPI): one process, always. Started by a launcher with several processes, it says so instead
// of running the same job N times side by side.
#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/parallel/local_communicator.hpp"
#include "tessera/parallel/mpi_runtime.hpp"

namespace tessera {

MpiRuntime& MpiRuntime::init() {
  throw Error("this Tessera was built without MPI (TESSERA_MPI=OFF): it runs one process only");
}

bool MpiRuntime::active() { return false; }

void MpiRuntime::finalize() {}

std::unique_ptr<Communicator> make_world_communicator() {
  const LaunchInfo launch = detect_launch();
  if (launch.under_launcher && launch.world_size != 1)
    throw Error(fmt::format("started by a launcher ({}), but this Tessera was built without MPI (TESSERA_MPI=OFF) and "
                            "runs one process only: rebuild with MPI (libopenmpi-dev) for multi-process runs",
                            launch.evidence));
  return std::make_unique<LocalCommunicator>("world");
}

void set_idle_waits(Communicator&) {}  // no MPI communicator to slow down

}  // namespace tessera
