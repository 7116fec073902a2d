// MpiRuntime: MPI initialised once per process, and only when a launcher started the process.
//
// A plain `tessera train` never touches MPI: detect_launch() reads the variables that mpirun, srun
// and other PMI launchers set, and make_world_communicator() returns the one-rank group when there
// are none. Under a launcher, MPI is initialised with MPI_THREAD_MULTIPLE when the library offers
// it (so a communication thread can progress overlapped collectives) and finalised at exit.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "tessera/parallel/communicator.hpp"

namespace tessera {

struct LaunchInfo {
  bool under_launcher = false;
  std::string evidence;  // the variable that told us, e.g. "OMPI_COMM_WORLD_SIZE=4"
  int world_size = 1;    // as announced by the launcher
  int world_rank = 0;    // OMPI_COMM_WORLD_RANK, PMIX_RANK, PMI_RANK or SLURM_PROCID (0 when none says)
};
// Reads OMPI_COMM_WORLD_SIZE (OpenMPI), PMIX_RANK/PMI_SIZE (PMI/PMIx launchers, srun --mpi),
// SLURM_STEP_NUM_TASKS (inside an srun step, unlike SLURM_NTASKS which sbatch scripts also see)
// and MPI_LOCALNRANKS (MPICH's hydra).
LaunchInfo detect_launch();
LaunchInfo detect_launch(const std::function<const char*(const char*)>& getenv);

enum class ThreadLevel { single, funneled, serialized, multiple };
const char* thread_level_name(ThreadLevel level);

class MpiRuntime {
 public:
  // Initialises MPI on the first call (later calls return the same object) and arranges
  // MPI_Finalize at exit. Sets the logger's rank to the world rank.
  static MpiRuntime& init();
  // True between init() and finalize().
  static bool active();

  int world_rank() const { return rank_; }
  int world_size() const { return size_; }
  // What MPI provided; MPI_THREAD_MULTIPLE was asked for. Below `multiple`, only one thread at a
  // time may communicate.
  ThreadLevel thread_level() const { return level_; }

  // Every rank must reach this; a rank that failed must call abort_job instead (MPI_Finalize waits
  // for all ranks, so finalising next to a rank stuck in a collective would hang until its timeout).
  void finalize();

 private:
  MpiRuntime() = default;
  int rank_ = 0;
  int size_ = 1;
  ThreadLevel level_ = ThreadLevel::single;
};

// The world group for this process: MPI's under a launcher, else a LocalCommunicator.
std::unique_ptr<Communicator> make_world_communicator();

// MpiCommunicator::set_idle_waits(true) when c is an MPI communicator; nothing otherwise (other
// communicators, a build without MPI).
void set_idle_waits(Communicator& c);

}  // namespace tessera
