// What every CUDA kernel entry shares: the element type of a float buffer, the stream it runs on,
// and the launch check. Kernels take plain device pointers and sizes (as kernels/cpu does) and run
// asynchronously on the given stream; none synchronises the host.
#pragma once
#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace tessera::cuda {

// The float element types a kernel may read or write: f32, bf16, f16 (math is done in f32).
enum class Float : std::uint8_t { f32, bf16, f16 };
constexpr std::size_t float_bytes(Float t) { return t == Float::f32 ? 4 : 2; }

// Throws tessera::Error "<what>: <CUDA error text>" when the last launch on this thread failed.
void check_launch(const char* what);

}  // namespace tessera::cuda
