// Counting for `tessera plan`: overflow-checked arithmetic on element counts, and collective calls
// with the elements they carry. Shared by the model plan (model_plan.hpp) and by every nn module's
// cost (nn/module_cost.hpp).
#pragma once
#include <cstdint>

namespace tessera {

// Counts beyond 64 bits are a ConfigError ("the model, batch or layout is too large to count"), never
// a negative number in the plan: every sum and product of counts goes through these.
std::int64_t plan_add(std::int64_t a, std::int64_t b);
std::int64_t plan_mul(std::int64_t a, std::int64_t b);

// Collective calls and the elements they carry (summed over calls; each call's tensor counted
// once, as passed to the communicator).
struct CollectiveCount {
  std::int64_t calls = 0;
  std::int64_t elements = 0;
  CollectiveCount& operator+=(const CollectiveCount& o) {
    calls = plan_add(calls, o.calls);
    elements = plan_add(elements, o.elements);
    return *this;
  }
  CollectiveCount times(std::int64_t k) const { return {plan_mul(calls, k), plan_mul(elements, k)}; }
};

}  // namespace tessera
