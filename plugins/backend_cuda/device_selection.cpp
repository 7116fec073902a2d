#include "device_selection.hpp"

#include <charconv>
#include <cstring>

namespace tessera::cuda {

LocalRank local_rank(const std::function<const char*(const char*)>& getenv) {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"}) {
    const char* v = getenv(name);
    if (!v || !*v) continue;
    int r = -1;
    const char* end = v + std::strlen(v);
    const auto [ptr, ec] = std::from_chars(v, end, r);
    if (ec == std::errc() && ptr == end && r >= 0) return {r, std::string(name) + "=" + v};
  }
  return {};
}

int device_for_local_rank(int local_rank, int device_count) { return local_rank % device_count; }

}  // namespace tessera::cuda
