#include "tessera/parallel/abort.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>

#include <mpi.h>

#include "tessera/logging.hpp"

namespace tessera {

void abort_job(const std::string& reason) {
  int initialised = 0, finalised = 0, rank = 0, size = 1;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalised);
  const bool mpi = initialised && !finalised;
  if (mpi) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
  log_error("rank {} of {} aborts the job: {}", rank, size, reason);
  std::fflush(stdout);
  std::fflush(stderr);
  // MPI_Abort makes the launcher kill every rank; its return code is irrelevant as _Exit follows.
  if (mpi) MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);  // no destructors or atexit handlers: MPI_Finalize would wait for the other ranks
}

int run_or_abort(const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    abort_job(e.what());
  } catch (...) {
    abort_job("an exception of unknown type escaped");
  }
}

}  // namespace tessera
