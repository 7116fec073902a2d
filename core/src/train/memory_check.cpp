#include "tessera/train/memory_check.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace tessera {

std::optional<std::int64_t> available_host_memory() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name, unit;
    std::int64_t kib = 0;
    if (fields >> name >> kib >> unit && name == "MemAvailable:" && unit == "kB") return kib * 1024;
  }
  return std::nullopt;
}

std::string memory_warning(const Plan& plan, int processes_here, std::int64_t available) {
  if (plan.stages.empty() || processes_here < 1 || available <= 0) return "";
  const StagePlan& s = *std::max_element(plan.stages.begin(), plan.stages.end(),
                                          [](const StagePlan& a, const StagePlan& b) { return a.f32_bytes() < b.f32_bytes(); });
  const double per_rank = s.f32_bytes();
  const double needed = per_rank * processes_here;
  if (needed <= static_cast<double>(available)) return "";
  const double gib = 1024.0 * 1024.0 * 1024.0;
  return fmt::format(
      "memory: `tessera plan` counts {:.1f} GiB for a rank{} (parameters, gradients, optimizer state and the "
      "schedule's peak activations {:.1f} GiB, as f32){}, and this machine has {:.1f} GiB available: the kernel may kill "
      "the run (out of memory) without a message. A smaller training.micro_batch_size, activation recompute "
      "(model.recompute_granularity) or more tensor/pipeline parallelism lowers it",
      per_rank / gib, plan.stages.size() > 1 ? fmt::format(" of pipeline stage {}", s.stage) : std::string(),
      4.0 * static_cast<double>(s.peak_held_elements) / gib,
      processes_here > 1 ? fmt::format(" × {} ranks on this machine", processes_here) : std::string(),
      static_cast<double>(available) / gib);
}

}  // namespace tessera
