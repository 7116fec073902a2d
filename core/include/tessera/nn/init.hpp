// Deterministic, layout-independent initialisation: element i of a parameter draws from a
// counter-based generator keyed by (seed, parameter name, i), so the same full weights come out
// whatever the process count or the order in which parameters are built.
#pragma once
#include <cstdint>
#include <string>

#include "tessera/nn/parameter.hpp"

namespace tessera {

std::uint64_t hash_name(std::uint64_t seed, const std::string& name);
// Normal(0, std) for elements [offset, offset + numel) of the full tensor named `name`.
void init_normal(Tensor& t, float std, std::uint64_t seed, const std::string& name, std::int64_t offset = 0);
// Standard normal for counter i under key (Box–Muller on two 64-bit hashes).
double counter_normal(std::uint64_t key, std::uint64_t i);

}  // namespace tessera
