// Which GPU a rank takes (device_selection.hpp): its local rank's, from the launcher's variables.
#include <map>
#include <string>

#include <catch2/catch.hpp>

#include "device_selection.hpp"

using namespace tessera::cuda;

namespace {
LocalRank from(const std::map<std::string, std::string>& env) {
  return local_rank([&](const char* n) -> const char* {
    auto it = env.find(n);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}
}  // namespace

TEST_CASE("each rank takes the GPU of its local rank", "[unit]") {
  CHECK(from({}).rank == 0);
  CHECK(from({}).evidence.empty());
  CHECK(from({{"OMPI_COMM_WORLD_LOCAL_RANK", "3"}}).rank == 3);
  CHECK(from({{"OMPI_COMM_WORLD_LOCAL_RANK", "3"}}).evidence == "OMPI_COMM_WORLD_LOCAL_RANK=3");
  CHECK(from({{"SLURM_LOCALID", "2"}}).rank == 2);
  CHECK(from({{"MPI_LOCALRANKID", "1"}, {"SLURM_LOCALID", "5"}}).rank == 1);  // MPICH's first
  CHECK(from({{"LOCAL_RANK", "7"}}).rank == 7);
  // Garbage is not a rank: the next variable (or 0) is used.
  CHECK(from({{"OMPI_COMM_WORLD_LOCAL_RANK", "x1"}, {"SLURM_LOCALID", "4"}}).rank == 4);
  CHECK(from({{"LOCAL_RANK", "-1"}}).rank == 0);
  CHECK(device_for_local_rank(0, 8) == 0);
  CHECK(device_for_local_rank(9, 8) == 1);  // more ranks than GPUs on the node: wrap
  CHECK(device_for_local_rank(3, 1) == 0);
}
