// With one tensor-parallel rank (a null group, or Parallel::single()'s), the tensor-parallel blocks
// are today's Linear / embedding / fused cross-entropy bit for bit: the same weights, outputs,
// input gradients and parameter gradients. (The whole GPT against PyTorch: tests/model.)
#include <random>

#include <catch2/catch.hpp>

#include "tessera/nn/column_parallel_linear.hpp"
#include "tessera/nn/linear.hpp"
#include "tessera/nn/row_parallel_linear.hpp"
#include "tessera/nn/vocab_parallel_cross_entropy.hpp"
#include "tessera/nn/vocab_parallel_embedding.hpp"
#include "tessera/ops.hpp"

using namespace tessera;

namespace {

Tensor random_tensor(const Shape& shape, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Tensor t = Tensor::empty(shape);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = normal(rng);
  return t;
}

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::equal(a.data<float>(), a.data<float>() + a.numel(), b.data<float>());
}

// Runs forward + backward of both modules on the same input and compares everything bitwise.
void check_like_linear(Module& ours, Linear& linear, std::int64_t in, std::int64_t out) {
  std::vector<Parameter*> p_ours, p_lin;
  ours.collect_parameters(p_ours);
  linear.collect_parameters(p_lin);
  REQUIRE(p_ours.size() == p_lin.size());
  p_lin[1]->value = random_tensor({out}, 3);  // a non-zero bias, the same in both
  ops::copy(p_lin[1]->value, p_ours[1]->value);
  for (std::size_t i = 0; i < p_ours.size(); ++i) {
    CHECK(p_ours[i]->name == p_lin[i]->name);
    CHECK(same(p_ours[i]->value, p_lin[i]->value));
  }
  ActivationStore s1, s2;
  StepContext c1{s1}, c2{s2};
  Tensor x = random_tensor({3, 5, in}, 1), dy = random_tensor({3, 5, out}, 2);
  CHECK(same(ours.forward(c1, x), linear.forward(c2, x)));
  CHECK(same(ours.backward(c1, dy), linear.backward(c2, dy)));
  for (std::size_t i = 0; i < p_ours.size(); ++i) CHECK(same(p_ours[i]->grad, p_lin[i]->grad));
}

}  // namespace

TEST_CASE("tp = 1: ColumnParallelLinear and RowParallelLinear are Linear bit for bit", "[unit]") {
  for (const TpGroup& tp : {TpGroup(), Parallel::single()->groups.tp}) {
    Linear linear("l", {19, 34, true, 0.1f}, 4);
    ColumnParallelLinear column("l", {19, 34, true, 0.1f}, 4, tp);
    check_like_linear(column, linear, 19, 34);
    ColumnParallelOptions kv{19, 34, true, 0.1f};
    kv.blocks = 2;  // [K | V] in one piece when tp = 1
    Linear linear_kv("l", {19, 34, true, 0.1f}, 4);
    ColumnParallelLinear column_kv("l", kv, 4, tp);
    check_like_linear(column_kv, linear_kv, 19, 34);
    Linear linear_row("l", {34, 19, true, 0.1f}, 4);
    RowParallelLinear row("l", {34, 19, true, 0.1f}, 4, tp);
    check_like_linear(row, linear_row, 34, 19);
  }
}

TEST_CASE("tp = 1: VocabParallelEmbedding and vocab_parallel_cross_entropy are the plain ops bit for bit", "[unit]") {
  const TpGroup tp = Parallel::single()->groups.tp;
  VocabParallelEmbedding emb("e", 23, 6, 0.2f, 9, tp);
  Tensor table = Tensor::empty({23, 6});
  ops::copy(emb.weight().value, table);
  Tensor ids = Tensor::from<std::int32_t>({5}, {0, 22, 7, 7, 3});
  ActivationStore store;
  StepContext ctx{store};
  Tensor out = emb.forward(ctx, ids), ref = Tensor::empty({5, 6});
  ops::embedding_forward(ids, table, ref);
  CHECK(same(out, ref));
  Tensor dout = random_tensor({5, 6}, 5), dref = Tensor::zeros({23, 6});
  emb.backward(ctx, dout);
  ops::embedding_backward(ids, dout, dref);
  CHECK(same(emb.weight().grad, dref));

  Tensor logits = random_tensor({4, 23}, 6), fused = Tensor::empty({4, 23});
  ops::copy(logits, fused);
  Tensor targets = Tensor::from<std::int32_t>({4}, {1, 22, 0, 9}), mask = Tensor::from<float>({4}, {1, 0, 1, 1});
  Tensor l1 = Tensor::empty({4}), l2 = Tensor::empty({4});
  vocab_parallel_cross_entropy(logits, targets, mask, l1, true, 0.3f, 0, tp);
  ops::softmax_cross_entropy(fused, targets, mask, l2, true, 0.3f);
  CHECK(same(l1, l2));
  CHECK(same(logits, fused));
}
