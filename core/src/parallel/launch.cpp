// Launch detection (mpi_runtime.hpp), free of MPI so that builds without it (TESSERA_MPI=OFF) share it.
#include <cstdlib>

#include <fmt/format.h>

#include "tessera/parallel/mpi_runtime.hpp"

namespace tessera {

LaunchInfo detect_launch() {
  return detect_launch([](const char* name) -> const char* { return std::getenv(name); });
}

LaunchInfo detect_launch(const std::function<const char*(const char*)>& getenv) {
  // Size variables first: they also tell how many ranks to expect.
  static const char* const size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"};
  static const char* const presence_vars[] = {"PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS"};
  LaunchInfo info;
  for (const char* var : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"}) {
    const char* value = getenv(var);
    if (value == nullptr || *value == '\0') continue;
    char* end = nullptr;
    const long r = std::strtol(value, &end, 10);
    if (*end == '\0' && r >= 0) {
      info.world_rank = static_cast<int>(r);
      break;
    }
  }
  for (const char* var : size_vars) {
    const char* value = getenv(var);
    if (value == nullptr || *value == '\0') continue;
    info.under_launcher = true;
    info.evidence = fmt::format("{}={}", var, value);
    char* end = nullptr;
    long n = std::strtol(value, &end, 10);
    if (*end == '\0' && n >= 1) info.world_size = static_cast<int>(n);
    return info;
  }
  for (const char* var : presence_vars) {
    const char* value = getenv(var);
    if (value == nullptr || *value == '\0') continue;
    info.under_launcher = true;
    info.evidence = fmt::format("{}={}", var, value);
    return info;
  }
  return info;
}

const char* thread_level_name(ThreadLevel level) {
  switch (level) {
    case ThreadLevel::single: return "MPI_THREAD_SINGLE";
    case ThreadLevel::funneled: return "MPI_THREAD_FUNNELED";
    case ThreadLevel::serialized: return "MPI_THREAD_SERIALIZED";
    case ThreadLevel::multiple: return "MPI_THREAD_MULTIPLE";
  }
  return "?";
}

}  // namespace tessera
