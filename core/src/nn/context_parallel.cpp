#include "tessera/nn/context_parallel.hpp"

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/ops.hpp"

namespace tessera {

namespace {

// The sequence chunk (of 2·cp) that half h ∈ {0, 1} of rank r's tokens is.
std::int64_t chunk_of(int cp, int rank, int half) { return half == 0 ? rank : 2 * cp - 1 - rank; }

void check_chunks(std::int64_t T, int cp, const char* what) {
  if (cp < 1 || T % (2 * cp) != 0)
    throw ShapeError(fmt::format("context parallelism: {} of {} tokens per sequence cannot be cut into 2 × {} "
                                 "equal chunks (model.seq_length must be a multiple of 2 × "
                                 "parallel.context_parallel_size)",
                                 what, T, cp));
}

}  // namespace

std::vector<std::int32_t> cp_token_positions(std::int64_t T, int cp, int rank) {
  check_chunks(T, cp, "a sequence");
  const std::int64_t c = T / (2 * cp);
  std::vector<std::int32_t> out;
  for (int half = 0; half < 2; ++half)
    for (std::int64_t i = 0; i < c; ++i) out.push_back(static_cast<std::int32_t>(chunk_of(cp, rank, half) * c + i));
  return out;
}

Tensor cp_take_chunks(const Tensor& x, int cp, int rank) {
  TESSERA_CHECK_SHAPE(x.dim() >= 2, "context parallelism takes [B, T, ...] tensors, got {}", x.str());
  const std::int64_t B = x.size(0), T = x.size(1), W = B * T > 0 ? x.numel() / (B * T) : 0;
  check_chunks(T, cp, "a batch field");
  const std::int64_t c = T / (2 * cp), local = T / cp;
  Shape shape = x.shape();
  shape[1] = local;
  Tensor out = x.new_empty(shape);
  for (int half = 0; half < 2; ++half)
    ops::copy_2d(x, chunk_of(cp, rank, half) * c * W, T * W, out, half * c * W, local * W, B, c * W);
  return out;
}

Tensor cp_gather_sequence(const Tensor& local, Communicator& cp) {
  TESSERA_CHECK_SHAPE(local.dim() == 3, "context parallelism gathers [B, T/cp, W], got {}", local.str());
  const int n = cp.size();
  const std::int64_t B = local.size(0), L = local.size(1), W = local.size(2), T = L * n;
  check_chunks(T, n, "gathered keys and values");
  const std::int64_t c = L / 2;
  Tensor ranks = local.new_empty({n * B * L * W});  // rank-major: every rank's [B, L, W]
  cp.all_gather(local.reshape({B * L * W}), ranks);
  Tensor whole = local.new_empty({B, T, W});
  for (int r = 0; r < n; ++r)
    for (int half = 0; half < 2; ++half)
      ops::copy_2d(ranks, (r * B * L + half * c) * W, L * W, whole, chunk_of(n, r, half) * c * W, T * W, B, c * W);
  return whole;
}

Tensor cp_reduce_scatter_sequence(const Tensor& whole, Communicator& cp) {
  TESSERA_CHECK_SHAPE(whole.dim() == 3, "context parallelism reduce-scatters [B, T, W], got {}", whole.str());
  const int n = cp.size();
  const std::int64_t B = whole.size(0), T = whole.size(1), W = whole.size(2);
  check_chunks(T, n, "key and value gradients");
  const std::int64_t L = T / n, c = L / 2;
  Tensor ranks = whole.new_empty({n * B * L * W});  // each rank's tokens, rank-major
  for (int r = 0; r < n; ++r)
    for (int half = 0; half < 2; ++half)
      ops::copy_2d(whole, chunk_of(n, r, half) * c * W, T * W, ranks, (r * B * L + half * c) * W, L * W, B, c * W);
  Tensor mine = whole.new_empty({B, L, W});
  Tensor flat = mine.reshape({B * L * W});
  cp.reduce_scatter(ranks, flat);
  return mine;
}

std::vector<TokenRows::Run> TokenRows::runs(std::int64_t n) const {
  if (cp == 1) return {{0, n, first}};
  const std::int64_t c = local_length / 2, T = local_length * cp;
  std::vector<Run> out;
  for (std::int64_t i = 0; i < n;) {
    const std::int64_t row = first + i, b = row / local_length, t = row % local_length;
    const int half = t < c ? 0 : 1;
    const std::int64_t within = t - half * c, count = std::min(n - i, c - within);
    out.push_back({i, count, b * T + chunk_of(cp, cp_rank, half) * c + within});
    i += count;
  }
  return out;
}

TokenRows TokenRows::of(const StepContext& ctx, std::int64_t first) {
  const CpGroup& cp = active_context_parallel(ctx);
  if (!cp) return {first, 0, 1, 0};
  return {first, ctx.seq_length, cp->size(), cp->rank()};
}

}  // namespace tessera
