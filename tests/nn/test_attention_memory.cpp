// What causal self-attention (nn/attention.hpp) holds for backward at GPT-2 124M's attention shape: the flash kernel keeps
// one log-sum-exp per query row instead of the [B,H,T,T] probabilities.
#include <catch2/catch.hpp>

#include "tessera/nn/activation_store.hpp"
#include "tessera/nn/attention.hpp"
#include "tessera/nn/step_context.hpp"
#include "tessera/tensor.hpp"

using namespace tessera;

TEST_CASE("Attention at GPT-2 124M's shape holds q, kv, context and lse after forward, no probabilities",
          "[unit]") {
  constexpr std::int64_t B = 1, T = 1024, C = 768, H = 12, N = B * T;
  AttentionOptions o;
  o.hidden = C;
  o.heads = H;
  Attention attention("attn", o, 1);
  Tensor x = Tensor::full({B, T, C}, 0.1f);
  ActivationStore store;
  StepContext ctx{store};
  ctx.seq_length = T;

  const std::int64_t before = memory_stats().current_bytes;
  reset_peak_memory();
  Tensor y = attention.forward(ctx, x);
  const std::int64_t held = memory_stats().current_bytes - before;

  // Allocated by forward and still held: the output y, q [N,C], kv [N,2C], the context [N,C] (kept
  // by the output projection and by the attention op: one buffer) and lse [B,H,T].
  const std::int64_t lse = B * H * T, expected = 4 * (N * C + N * C + 2 * N * C + N * C + lse);
  CHECK(held == expected);
  CHECK(store.held_elements() == N * C /* x */ + N * C + 2 * N * C + N * C + lse);
  // Before the flash kernel the same forward held probs [B,H,T,T] (48 MiB) in place of lse (48 KiB):
  // 50,331,648 − 49,152 bytes more. Not even transiently is anything of that size allocated now.
  const std::int64_t probs_bytes = 4 * B * H * T * T;
  CHECK(memory_stats().peak_bytes - before < held + probs_bytes);
  CHECK(memory_stats().peak_bytes - before == held);

  // Backward releases everything it took from the store.
  Tensor dx = attention.backward(ctx, Tensor::full({B, T, C}, 0.01f));
  CHECK(store.empty());
}
