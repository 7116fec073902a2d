#include "tessera/parallel/abort.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>

#if TESSERA_HAVE_MPI
#include <mpi.h>
#endif

#include "tessera/logging.hpp"
#include "tessera/parallel/mpi_runtime.hpp"

namespace tessera {

namespace {
struct World {
  bool mpi = false;
  int rank = 0, size = 1;
};

World world() {
  World w;
#if TESSERA_HAVE_MPI
  int initialised = 0, finalised = 0;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalised);
  w.mpi = initialised && !finalised;
  if (w.mpi) {
    MPI_Comm_rank(MPI_COMM_WORLD, &w.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &w.size);
  }
#endif
  // Before MPI starts (a config error found first), the launcher's variables say where we are.
  if (!w.mpi) {
    const LaunchInfo launch = detect_launch();
    if (launch.under_launcher) {
      w.rank = launch.world_rank;
      w.size = launch.world_size;
    }
  }
  return w;
}
}  // namespace

void abort_job(const std::string& reason, int exit_code) {
  if (exit_code == 0) exit_code = 1;  // an abort is never a success
  const auto [mpi, rank, size] = world();
  log_error("rank {} of {} aborts the job: {}", rank, size, reason);
  std::fflush(stdout);
  std::fflush(stderr);
  // MPI_Abort makes the launcher kill every rank; its return code is irrelevant as _Exit follows.
#if TESSERA_HAVE_MPI
  if (mpi) MPI_Abort(MPI_COMM_WORLD, exit_code);
#endif
  std::_Exit(exit_code);  // no destructors or atexit handlers: MPI_Finalize would wait for the other ranks
}

int run_or_abort(const std::function<int()>& body) {
  int code = 0;
  try {
    code = body();
  } catch (const std::exception& e) {
    abort_job(e.what());
  } catch (...) {
    abort_job("an exception of unknown type escaped");
  }
  if (code != 0) {
    World w = world();
    if (w.mpi && w.size > 1)
      abort_job(fmt::format("exit code {} while the other ranks may still be communicating", code), code);
  }
  return code;
}

}  // namespace tessera
