#include "tessera/parallel/mpi_runtime.hpp"

#include <cstdlib>
#include <mutex>

#include "mpi_check.hpp"
#include "tessera/logging.hpp"
#include "tessera/parallel/local_communicator.hpp"
#include "tessera/parallel/mpi_communicator.hpp"

namespace tessera {

namespace {
bool g_we_initialised = false;
std::mutex g_mutex;

ThreadLevel to_level(int provided) {
  if (provided >= MPI_THREAD_MULTIPLE) return ThreadLevel::multiple;
  if (provided >= MPI_THREAD_SERIALIZED) return ThreadLevel::serialized;
  if (provided >= MPI_THREAD_FUNNELED) return ThreadLevel::funneled;
  return ThreadLevel::single;
}

void finalize_at_exit() { MpiRuntime::init().finalize(); }
}  // namespace

MpiRuntime& MpiRuntime::init() {
  static MpiRuntime* runtime = [] {
    auto* rt = new MpiRuntime();  // never destroyed: finalize runs from atexit, after static users
    int initialised = 0, provided = MPI_THREAD_SINGLE;
    TESSERA_MPI_CHECK(MPI_Initialized(&initialised));
    if (initialised) {
      TESSERA_MPI_CHECK(MPI_Query_thread(&provided));
    } else {
      TESSERA_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided));
      g_we_initialised = true;
      std::atexit(finalize_at_exit);
    }
    TESSERA_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    TESSERA_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rt->rank_));
    TESSERA_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &rt->size_));
    rt->level_ = to_level(provided);
    log_state().rank = rt->rank_;
    if (rt->level_ != ThreadLevel::multiple)
      log_warn("MPI provides {} only (MPI_THREAD_MULTIPLE was requested): communicate from one thread at a time",
               thread_level_name(rt->level_));
    return rt;
  }();
  return *runtime;
}

bool MpiRuntime::active() {
  int initialised = 0, finalised = 0;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalised);
  return initialised && !finalised;
}

void MpiRuntime::finalize() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_we_initialised || !active()) return;
  TESSERA_MPI_CHECK(MPI_Finalize());
}

std::unique_ptr<Communicator> make_world_communicator() {
  if (detect_launch().under_launcher) return MpiCommunicator::world();
  return std::make_unique<LocalCommunicator>("world");
}

}  // namespace tessera
