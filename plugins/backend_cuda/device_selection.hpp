// Which GPU a process takes: under a launcher, the one of its rank on this node (local rank modulo
// the GPUs it sees), as Megatron-LM does with torch.cuda.set_device(local_rank). Plain C++, unit-tested
// on machines without a GPU.
#pragma once
#include <functional>
#include <string>

namespace tessera::cuda {

struct LocalRank {
  int rank = 0;
  std::string evidence;  // the variable that said so, "" when no launcher set one
};

// OMPI_COMM_WORLD_LOCAL_RANK (OpenMPI), MPI_LOCALRANKID (MPICH's hydra), SLURM_LOCALID (srun),
// LOCAL_RANK (torchrun-style launchers); the first that is set and a non-negative integer.
LocalRank local_rank(const std::function<const char*(const char*)>& getenv);

// The GPU index for a local rank among `device_count` GPUs (device_count > 0).
int device_for_local_rank(int local_rank, int device_count);

}  // namespace tessera::cuda
