// TESSERA_HOST_DEVICE marks the header-only functions that the CPU kernels and the CUDA kernels
// (host and device code) both call, so that every backend computes the same numbers from one
// definition (dropout_mask.hpp, rope_frequency.hpp).
#pragma once

#if defined(__CUDACC__)
#define TESSERA_HOST_DEVICE __host__ __device__
#else
#define TESSERA_HOST_DEVICE
#endif
