// The one-process world of a build without MPI (TESSERA_MPI=OFF: core/src/parallel/mpi_absent.cpp),
// checked in the ordinary build: this program compiles mpi_absent.cpp itself, and its definitions
// of make_world_communicator() and MpiRuntime take precedence over libtessera_core's (the ELF rule
// that a program's symbols come first), so the no-MPI code runs here exactly as it would in that build.
#include <cstdlib>

#include <catch2/catch.hpp>

#include "tessera/error.hpp"
#include "tessera/parallel/mpi_runtime.hpp"

using namespace tessera;

TEST_CASE("without MPI: one process, and a multi-process launch says why it cannot run", "[unit]") {
  unsetenv("OMPI_COMM_WORLD_SIZE");
  std::unique_ptr<Communicator> world = make_world_communicator();
  CHECK(world->size() == 1);
  CHECK(world->rank() == 0);
  CHECK_FALSE(MpiRuntime::active());
  CHECK_THROWS_WITH(MpiRuntime::init(), Catch::Contains("built without MPI"));

  setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  CHECK_THROWS_WITH(make_world_communicator(),
                    Catch::Contains("OMPI_COMM_WORLD_SIZE=2") && Catch::Contains("TESSERA_MPI=OFF") &&
                        Catch::Contains("rebuild with MPI"));
  setenv("OMPI_COMM_WORLD_SIZE", "1", 1);  // a launcher with one process is fine
  CHECK(make_world_communicator()->size() == 1);
  unsetenv("OMPI_COMM_WORLD_SIZE");
}
