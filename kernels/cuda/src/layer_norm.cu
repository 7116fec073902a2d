#include <algorithm>

#include "device_math.cuh"
#include "tessera/kernels/cuda/layer_norm.hpp"

namespace tessera::cuda {

namespace {

// Row kernels: one warp per row (C = 768 is 24 elements a lane), so a row's sums need only
// shuffles, whose fixed butterfly gives every lane the same bits on every run.
constexpr int kWarpsPerBlock = 8;
constexpr int kRowThreads = kWarpsPerBlock * 32;

// Column sums (dw, db): a block covers kColumnTile columns of one chunk of rows with kRowLanes
// threads per column, each summing every kRowLanes-th row of the chunk; the lanes are then added in
// lane order and the chunks' partials in chunk order. The chunking depends on N alone, so the
// summation order (and the bits) never depend on the GPU or on timing.
constexpr int kColumnTile = 32;
constexpr int kRowLanes = 8;
constexpr std::int64_t kMaxChunks = 128;
constexpr std::int64_t kMinRowsPerChunk = 32;

struct RowChunks {
  std::int64_t count, rows;  // count chunks of `rows` rows (the last may be shorter); N ≥ 1
};
RowChunks row_chunks(std::int64_t N) {
  const std::int64_t wanted = std::clamp<std::int64_t>((N + kMinRowsPerChunk - 1) / kMinRowsPerChunk, 1, kMaxChunks);
  const std::int64_t rows = (N + wanted - 1) / wanted;
  return {(N + rows - 1) / rows, rows};
}

unsigned row_grid(std::int64_t N) { return grid_for(N, kWarpsPerBlock); }
unsigned column_tiles(std::int64_t C) { return static_cast<unsigned>((C + kColumnTile - 1) / kColumnTile); }

template <class T>
__global__ void layer_norm_forward_kernel(const T* x, const T* w, const T* b, float eps, T* y, float* mean,
                                          float* rstd, std::int64_t N, std::int64_t C) {
  const int lane = threadIdx.x & 31;
  const std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * kWarpsPerBlock;
  for (std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5); row < N;
       row += warps) {
    const T* xr = x + row * C;
    T* yr = y + row * C;
    // Mean, then the variance from the centred values (as the CPU: no cancellation of E[x²] − m²).
    float s = 0.0f;
    for (std::int64_t c = lane; c < C; c += 32) s += to_f32(xr[c]);
    const float m = warp_sum(s) / static_cast<float>(C);
    float v = 0.0f;
    for (std::int64_t c = lane; c < C; c += 32) {
      const float d = to_f32(xr[c]) - m;
      v += d * d;
    }
    const float r = 1.0f / sqrtf(warp_sum(v) / static_cast<float>(C) + eps);
    for (std::int64_t c = lane; c < C; c += 32)
      yr[c] = from_f32<T>((to_f32(xr[c]) - m) * r * to_f32(w[c]) + to_f32(b[c]));
    if (lane == 0) {
      mean[row] = m;
      rstd[row] = r;
    }
  }
}

template <class T>
__global__ void layer_norm_dx_kernel(const T* dy, const T* x, const T* w, const float* mean, const float* rstd, T* dx,
                                     std::int64_t N, std::int64_t C) {
  const int lane = threadIdx.x & 31;
  const std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * kWarpsPerBlock;
  for (std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5); row < N;
       row += warps) {
    const T* dyr = dy + row * C;
    const T* xr = x + row * C;
    T* dxr = dx + row * C;
    const float m = mean[row], r = rstd[row];
    float sg = 0.0f, sgx = 0.0f;
    for (std::int64_t c = lane; c < C; c += 32) {
      const float g = to_f32(dyr[c]) * to_f32(w[c]);
      const float xh = (to_f32(xr[c]) - m) * r;
      sg += g;
      sgx += g * xh;
    }
    const float mg = warp_sum(sg) / static_cast<float>(C), mgx = warp_sum(sgx) / static_cast<float>(C);
    for (std::int64_t c = lane; c < C; c += 32) {
      const float g = to_f32(dyr[c]) * to_f32(w[c]);
      const float xh = (to_f32(xr[c]) - m) * r;
      dxr[c] = from_f32<T>((g - mg - xh * mgx) * r);
    }
  }
}

// partial_dw[chunk, c] = Σ_{rows of the chunk} dy·x̂, partial_db[chunk, c] = Σ dy. Block (kColumnTile,
// kRowLanes), grid (column tiles, chunks).
template <class T>
__global__ void layer_norm_param_partials_kernel(const T* dy, const T* x, const float* mean, const float* rstd,
                                                 float* partial_dw, float* partial_db, std::int64_t N, std::int64_t C,
                                                 std::int64_t rows_per_chunk) {
  __shared__ float lane_dw[kRowLanes][kColumnTile], lane_db[kRowLanes][kColumnTile];
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * kColumnTile + threadIdx.x;
  const std::int64_t chunk = blockIdx.y;
  const std::int64_t begin = chunk * rows_per_chunk, end = begin + rows_per_chunk < N ? begin + rows_per_chunk : N;
  float sdw = 0.0f, sdb = 0.0f;
  if (c < C)
    for (std::int64_t r = begin + threadIdx.y; r < end; r += kRowLanes) {
      const float d = to_f32(dy[r * C + c]);
      sdw += d * ((to_f32(x[r * C + c]) - mean[r]) * rstd[r]);
      sdb += d;
    }
  lane_dw[threadIdx.y][threadIdx.x] = sdw;
  lane_db[threadIdx.y][threadIdx.x] = sdb;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float tw = 0.0f, tb = 0.0f;
    for (int k = 0; k < kRowLanes; ++k) {
      tw += lane_dw[k][threadIdx.x];
      tb += lane_db[k][threadIdx.x];
    }
    partial_dw[chunk * C + c] = tw;
    partial_db[chunk * C + c] = tb;
  }
}

// grad[c] += Σ_chunks partial[chunk, c], in chunk order per lane, then lane order. Block
// (kColumnTile, kRowLanes), grid (column tiles).
template <class G>
__global__ void add_chunk_partials_kernel(const float* partial, std::int64_t chunks, std::int64_t C, G* grad) {
  __shared__ float lane_sum[kRowLanes][kColumnTile];
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * kColumnTile + threadIdx.x;
  float s = 0.0f;
  if (c < C)
    for (std::int64_t k = threadIdx.y; k < chunks; k += kRowLanes) s += partial[k * C + c];
  lane_sum[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float total = 0.0f;
    for (int k = 0; k < kRowLanes; ++k) total += lane_sum[k][threadIdx.x];
    grad[c] = from_f32<G>(to_f32(grad[c]) + total);
  }
}

void add_chunk_partials(const float* partial, std::int64_t chunks, std::int64_t C, Float grad_t, void* grad,
                        cudaStream_t stream) {
  TESSERA_CUDA_FLOAT_SWITCH(grad_t, G,
                            add_chunk_partials_kernel<G><<<column_tiles(C), dim3(kColumnTile, kRowLanes), 0, stream>>>(
                                partial, chunks, C, static_cast<G*>(grad)));
}

}  // namespace

void layer_norm_forward(Float t, const void* x, const void* w, const void* b, float eps, void* y, float* mean,
                        float* rstd, std::int64_t N, std::int64_t C, cudaStream_t stream) {
  if (N == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T,
                            layer_norm_forward_kernel<T><<<row_grid(N), kRowThreads, 0, stream>>>(
                                static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(b), eps,
                                static_cast<T*>(y), mean, rstd, N, C));
  check_launch("layer_norm_forward");
}

std::size_t layer_norm_backward_workspace_bytes(std::int64_t N, std::int64_t C) {
  if (N == 0 || C == 0) return 0;
  return 2 * static_cast<std::size_t>(row_chunks(N).count) * static_cast<std::size_t>(C) * sizeof(float);
}

void layer_norm_backward(Float t, const void* dy, const void* x, const void* w, const float* mean, const float* rstd,
                         void* dx, Float dw_t, void* dw, Float db_t, void* db, std::int64_t N, std::int64_t C,
                         void* workspace, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  const RowChunks chunks = row_chunks(N);
  float* partial_dw = static_cast<float*>(workspace);
  float* partial_db = partial_dw + chunks.count * C;
  TESSERA_CUDA_FLOAT_SWITCH(
      t, T,
      layer_norm_dx_kernel<T><<<row_grid(N), kRowThreads, 0, stream>>>(
          static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<const T*>(w), mean, rstd,
          static_cast<T*>(dx), N, C);
      layer_norm_param_partials_kernel<T>
      <<<dim3(column_tiles(C), static_cast<unsigned>(chunks.count)), dim3(kColumnTile, kRowLanes), 0, stream>>>(
          static_cast<const T*>(dy), static_cast<const T*>(x), mean, rstd, partial_dw, partial_db, N, C,
          chunks.rows));
  add_chunk_partials(partial_dw, chunks.count, C, dw_t, dw, stream);
  add_chunk_partials(partial_db, chunks.count, C, db_t, db, stream);
  check_launch("layer_norm_backward");
}

}  // namespace tessera::cuda
