#include <cub/device/device_radix_sort.cuh>

#include "device_math.cuh"
#include "tessera/kernels/cuda/embedding.hpp"

namespace tessera::cuda {

namespace {

// One block per row of out (forward) or per sorted position and column tile (backward); 128
// threads cover a GPT-2 row (C = 768) in 6 coalesced steps.
constexpr int kThreads = 128;

template <class T>
__global__ void embedding_forward_kernel(const std::int32_t* ids, const T* table, std::int64_t first_id,
                                         std::int64_t rows, T* out, std::int64_t N, std::int64_t C, bool accumulate) {
  for (std::int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const std::int64_t r = static_cast<std::int64_t>(ids[n]) - first_id;
    const bool inside = r >= 0 && r < rows;
    const T* src = table + (inside ? r : 0) * C;
    T* dst = out + n * C;
    for (std::int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      if (!accumulate)
        dst[c] = inside ? src[c] : from_f32<T>(0.0f);
      else if (inside)
        dst[c] = from_f32<T>(to_f32(dst[c]) + to_f32(src[c]));
    }
  }
}

// ---- backward: sort (row of dtable, n), then one pass per run of equal rows -----------------------

// Rows outside the table get the key `rows`, which sorts after every real row and is skipped.
__global__ void embedding_sort_keys_kernel(const std::int32_t* ids, std::int64_t first_id, std::int64_t rows,
                                           std::uint32_t* keys, std::uint32_t* order, std::int64_t N) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < N;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = static_cast<std::int64_t>(ids[i]) - first_id;
    keys[i] = static_cast<std::uint32_t>(r >= 0 && r < rows ? r : rows);
    order[i] = static_cast<std::uint32_t>(i);
  }
}

// First position after p whose key differs (keys ascending): a binary search, not a walk, so a
// frequent token costs log N loads to delimit.
__device__ std::int64_t run_end(const std::uint32_t* keys, std::int64_t p, std::int64_t N) {
  const std::uint32_t key = keys[p];
  std::int64_t lo = p + 1, hi = N;  // the end lies in [lo, hi]
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    if (keys[mid] == key)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

// Block (x: sorted position p, y: a tile of kThreads columns). The block at the first position of a
// run of equal keys adds the run's dout rows, in sorted (= ascending n) order, onto the table row's
// f32 value and rounds once: dtable[key] = ((dtable[key] + dout[n₀]) + dout[n₁]) + …, as the CPU.
template <class G, class D>
__global__ void embedding_run_sum_kernel(const std::uint32_t* keys, const std::uint32_t* order, const G* dout,
                                         D* dtable, std::int64_t N, std::int64_t C, std::uint32_t rows) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  for (std::int64_t p = blockIdx.x; p < N; p += gridDim.x) {
    const std::uint32_t key = keys[p];
    if (key >= rows || (p > 0 && keys[p - 1] == key)) continue;
    const std::int64_t end = run_end(keys, p, N);
    D* dst = dtable + static_cast<std::int64_t>(key) * C + c;
    float acc = to_f32(*dst);
    std::int64_t q = p;
    // Four loads in flight before the four additions, which stay in order.
    for (; q + 4 <= end; q += 4) {
      const float v0 = to_f32(dout[static_cast<std::int64_t>(order[q]) * C + c]);
      const float v1 = to_f32(dout[static_cast<std::int64_t>(order[q + 1]) * C + c]);
      const float v2 = to_f32(dout[static_cast<std::int64_t>(order[q + 2]) * C + c]);
      const float v3 = to_f32(dout[static_cast<std::int64_t>(order[q + 3]) * C + c]);
      acc += v0;
      acc += v1;
      acc += v2;
      acc += v3;
    }
    for (; q < end; ++q) acc += to_f32(dout[static_cast<std::int64_t>(order[q]) * C + c]);
    *dst = from_f32<D>(acc);
  }
}

template <class G>
void launch_run_sum(Float dtable_t, const std::uint32_t* keys, const std::uint32_t* order, const G* dout, void* dtable,
                    std::int64_t N, std::int64_t C, std::uint32_t rows, cudaStream_t stream) {
  const dim3 grid(grid_for(N, 1), static_cast<unsigned>((C + kThreads - 1) / kThreads));
  TESSERA_CUDA_FLOAT_SWITCH(dtable_t, D,
                            embedding_run_sum_kernel<G, D>
                            <<<grid, kThreads, 0, stream>>>(keys, order, dout, static_cast<D*>(dtable), N, C, rows));
}

// Key bits the sort needs: enough for the sentinel `rows`.
int key_bits(std::int64_t rows) {
  int bits = 1;
  while (bits < 32 && (std::int64_t{1} << bits) <= rows) ++bits;
  return bits;
}

constexpr std::size_t kAlign = 256;
std::size_t aligned(std::size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// cub's own failures come from runtime calls and launches, which leave the thread's last error for
// the launcher's check_launch to report; the one it detects itself, scratch smaller than it asked
// for, cannot happen since this same query sizes the workspace. So its return values are not needed.
std::size_t radix_sort_temp_bytes(std::int64_t N, std::int64_t rows) {
  std::size_t bytes = 0;
  (void)cub::DeviceRadixSort::SortPairs(
      nullptr, bytes, static_cast<const std::uint32_t*>(nullptr), static_cast<std::uint32_t*>(nullptr),
      static_cast<const std::uint32_t*>(nullptr), static_cast<std::uint32_t*>(nullptr), static_cast<int>(N), 0,
      key_bits(rows));
  return bytes;
}

// The workspace: keys and positions before and after the sort, then cub's scratch.
struct SortBuffers {
  std::uint32_t *keys_in, *keys_out, *order_in, *order_out;
  void* temp;
  std::size_t temp_bytes;
};
SortBuffers sort_buffers(void* workspace, std::int64_t N, std::int64_t rows) {
  const std::size_t array = aligned(static_cast<std::size_t>(N) * sizeof(std::uint32_t));
  char* p = static_cast<char*>(workspace);
  return {reinterpret_cast<std::uint32_t*>(p), reinterpret_cast<std::uint32_t*>(p + array),
          reinterpret_cast<std::uint32_t*>(p + 2 * array), reinterpret_cast<std::uint32_t*>(p + 3 * array),
          p + 4 * array, radix_sort_temp_bytes(N, rows)};
}

}  // namespace

void embedding_forward(Float t, const std::int32_t* ids, const void* table, std::int64_t first_id, std::int64_t rows,
                       void* out, std::int64_t N, std::int64_t C, bool accumulate, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T,
                            embedding_forward_kernel<T><<<grid_for(N, 1), kThreads, 0, stream>>>(
                                ids, static_cast<const T*>(table), first_id, rows, static_cast<T*>(out), N, C,
                                accumulate));
  check_launch("embedding_forward");
}

std::size_t embedding_backward_workspace_bytes(std::int64_t N, std::int64_t rows) {
  if (N == 0 || rows == 0) return 0;
  return 4 * aligned(static_cast<std::size_t>(N) * sizeof(std::uint32_t)) + radix_sort_temp_bytes(N, rows);
}

void embedding_backward(Float t, const std::int32_t* ids, const void* dout, std::int64_t first_id, std::int64_t rows,
                        Float dtable_t, void* dtable, std::int64_t N, std::int64_t C, void* workspace,
                        cudaStream_t stream) {
  if (N == 0 || C == 0 || rows == 0) return;
  SortBuffers b = sort_buffers(workspace, N, rows);
  embedding_sort_keys_kernel<<<grid_for(N, kThreads), kThreads, 0, stream>>>(ids, first_id, rows, b.keys_in,
                                                                               b.order_in, N);
  (void)cub::DeviceRadixSort::SortPairs(b.temp, b.temp_bytes, b.keys_in, b.keys_out, b.order_in, b.order_out,
                                        static_cast<int>(N), 0, key_bits(rows), stream);
  TESSERA_CUDA_FLOAT_SWITCH(t, G,
                            launch_run_sum<G>(dtable_t, b.keys_out, b.order_out, static_cast<const G*>(dout), dtable,
                                              N, C, static_cast<std::uint32_t>(rows), stream));
  check_launch("embedding_backward");
}

}  // namespace tessera::cuda
