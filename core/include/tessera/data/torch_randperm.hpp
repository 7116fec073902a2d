// torch.randperm(n, generator=torch.Generator().manual_seed(seed)) on the CPU, index for index:
// Megatron-LM's cyclic data loader (MegatronPretrainingRandomSampler) orders each epoch with it, so
// matching it makes the same samples in the same order.
#pragma once
#include <cstdint>
#include <vector>

namespace tessera {

// PyTorch's CPU generator is the 32-bit Mersenne Twister seeded with `seed` (as std::mt19937). For
// n below 2^32 / 20 every PyTorch version shuffles from the front with random() % (n − i) (checked
// against Debian's torch in tests/data/test_data_sampler.cpp); above it PyTorch 2.6 and later
// draw 64-bit numbers (two 32-bit draws, the first the high half) for the inside-out shuffle, which
// is what this does there (older versions kept the first form).
std::vector<std::int64_t> torch_randperm(std::int64_t n, std::uint64_t seed);

}  // namespace tessera
