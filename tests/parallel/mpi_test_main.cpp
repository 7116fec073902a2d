// Catch2 main for tests run under mpirun: one MPI_Init per process, every rank runs every test case
// in declaration order (collectives must match), and the process exits non-zero on every rank if any
// rank had a failure. An exception escaping the session aborts the job rather than hanging it.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "mpi_test_world.hpp"
#include "tessera/parallel/abort.hpp"
#include "tessera/parallel/mpi_communicator.hpp"
#include "tessera/parallel/mpi_runtime.hpp"

using namespace tessera;

namespace {
std::shared_ptr<Communicator>& world_slot() {
  static std::shared_ptr<Communicator> world;
  return world;
}
}  // namespace

std::shared_ptr<Communicator> test_world() { return world_slot(); }

int main(int argc, char** argv) {
  return run_or_abort([&] {
    MpiRuntime& runtime = MpiRuntime::init();
    world_slot() = MpiCommunicator::world();
    Catch::Session session;
    if (int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
    int failures = session.run();

    Tensor failed_ranks = Tensor::from<std::int32_t>({1}, {failures > 0 ? 1 : 0});
    world_slot()->all_reduce(failed_ranks);
    int failed = failed_ranks.data<std::int32_t>()[0];
    if (failed > 0 && runtime.world_rank() == 0)
      std::fprintf(stderr, "%d of %d ranks had failing tests\n", failed, runtime.world_size());
    world_slot().reset();
    runtime.finalize();
    return failed > 0 ? 1 : 0;
  });
}
