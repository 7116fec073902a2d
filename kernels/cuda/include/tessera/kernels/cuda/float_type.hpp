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

// Lets `kernel` use `bytes` of dynamic shared memory (above the default 48 KiB). Throws
// tessera::Error "<what>: its tiles for heads of D channels need … KiB … this GPU allows …" when
// the device cannot, instead of the launch failing with "invalid argument".
void allow_dynamic_shared_memory(const void* kernel, std::size_t bytes, std::int64_t D, const char* what);

}  // namespace tessera::cuda
