// Before a CPU run starts: does what `tessera plan` counts for it fit in the memory this machine has
// free? A run past it is killed by the kernel's OOM killer with no message of ours (and, under
// mpirun, as "exited on signal 9"); a warning at start says why beforehand and what to change.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "tessera/train/plan.hpp"

namespace tessera {

// MemAvailable of /proc/meminfo in bytes; nullopt where it cannot be read.
std::optional<std::int64_t> available_host_memory();

// The warning for `processes_here` ranks of the job on this machine with `available` bytes free, or
// "" when the plan's count fits. The count is the largest stage's f32 elements (parameters,
// gradients, optimizer state, the schedule's peak activations) × 4 bytes per rank: activations of a
// bf16 run are counted at twice their size, and workspace not at all, so only a clear excess warns.
std::string memory_warning(const Plan& plan, int processes_here, std::int64_t available);

}  // namespace tessera
