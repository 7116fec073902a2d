// The tensor-parallel building blocks over a tp group of the whole world, against their one-process
// counterparts on the same full weights and inputs: outputs and input gradients within 1e-5
// relative, parameter gradients gathered into their full shape likewise. Sizes are odd on purpose.
#include <random>

#include <catch2/catch.hpp>

#include "mpi_test_world.hpp"
#include "tessera/nn/column_parallel_linear.hpp"
#include "tessera/nn/linear.hpp"
#include "tessera/nn/row_parallel_linear.hpp"
#include "tessera/nn/vocab_parallel_cross_entropy.hpp"
#include "tessera/nn/vocab_parallel_embedding.hpp"
#include "tessera/ops.hpp"
#include "tp_test_util.hpp"

using namespace tessera;
using test::gather_full;
using test::rel_diff;

namespace {

Tensor random_tensor(const Shape& shape, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Tensor t = Tensor::empty(shape);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = normal(rng);
  return t;
}

TpGroup world_tp() { return Parallel::create(ParallelSizes{test_world()->size(), 1, 1, false})->groups.tp; }

void check_grads(const std::vector<Parameter*>& full, const std::vector<Parameter*>& split, const TpGroup& tp) {
  REQUIRE(full.size() == split.size());
  for (std::size_t i = 0; i < full.size(); ++i) {
    INFO(split[i]->name);
    CHECK(test::bitwise_equal(gather_full(*split[i], split[i]->value, tp), full[i]->value));
    CHECK(rel_diff(gather_full(*split[i], split[i]->grad, tp), full[i]->grad) < 1e-5);
  }
}

}  // namespace

TEST_CASE("ColumnParallelLinear → RowParallelLinear equals Linear → Linear", "[mpi]") {
  const TpGroup tp = world_tp();
  const std::int64_t N = 7, C = 9, H = 6 * tp_size(tp);
  ActivationStore s1, s2;
  StepContext c1{s1}, c2{s2};
  Linear fc1("fc1", {C, H, true, 0.3f}, 5), fc2("fc2", {H, C, true, 0.3f}, 5);
  ColumnParallelLinear col("fc1", {C, H, true, 0.3f}, 5, tp);
  RowParallelLinear row("fc2", {H, C, true, 0.3f}, 5, tp);
  std::vector<Parameter*> full, split;
  fc1.collect_parameters(full);
  fc2.collect_parameters(full);
  col.collect_parameters(split);
  row.collect_parameters(split);
  for (std::size_t i = 0; i < full.size(); i += 2) {  // non-zero biases (full values, sliced for col)
    full[i + 1]->value = random_tensor(full[i + 1]->value.shape(), 9 + static_cast<unsigned>(i));
  }
  const std::int64_t hl = H / tp_size(tp);
  std::copy(full[1]->value.data<float>() + tp_rank(tp) * hl, full[1]->value.data<float>() + (tp_rank(tp) + 1) * hl,
            split[1]->value.data<float>());
  ops::copy(full[3]->value, split[3]->value);

  Tensor x = random_tensor({N, C}, 1), dy = random_tensor({N, C}, 2);
  Tensor y1 = fc2.forward(c1, fc1.forward(c1, x)), y2 = row.forward(c2, col.forward(c2, x));
  CHECK(rel_diff(y2, y1) < 1e-5);
  Tensor dx1 = fc1.backward(c1, fc2.backward(c1, dy)), dx2 = col.backward(c2, row.backward(c2, dy));
  CHECK(rel_diff(dx2, dx1) < 1e-5);
  check_grads(full, split, tp);
}

TEST_CASE("ColumnParallelLinear with gather_output equals Linear; blocks split each block", "[mpi]") {
  const TpGroup tp = world_tp();
  const std::int64_t N = 5, C = 11, out = 2 * 3 * tp_size(tp);
  ActivationStore s1, s2;
  StepContext c1{s1}, c2{s2};
  Linear full_linear("w", {C, out, false, 0.2f}, 3);
  ColumnParallelOptions o{C, out, false, 0.2f};
  o.gather_output = true;
  ColumnParallelLinear gathered("w", o, 3, tp);
  Tensor x = random_tensor({N, C}, 4), dy = random_tensor({N, out}, 5);
  CHECK(rel_diff(gathered.forward(c2, x), full_linear.forward(c1, x)) < 1e-6);
  CHECK(rel_diff(gathered.backward(c2, dy), full_linear.backward(c1, dy)) < 1e-5);
  std::vector<Parameter*> full, split;
  full_linear.collect_parameters(full);
  gathered.collect_parameters(split);
  check_grads(full, split, tp);

  // blocks = 2 ([K | V]): rank r's rows are its slice of each block.
  ColumnParallelOptions kv{C, out, true, 0.2f};
  kv.blocks = 2;
  ColumnParallelLinear blocked("w", kv, 3, tp);
  CHECK(blocked.weight().tp_split_blocks == 2);
  CHECK(test::bitwise_equal(gather_full(blocked.weight(), blocked.weight().value, tp), full_linear.weight().value));
  const std::int64_t rows = out / 2 / tp_size(tp), r = tp_rank(tp);
  Tensor k_rows = full_linear.weight().value.rows(r * rows, (r + 1) * rows);
  Tensor v_rows = full_linear.weight().value.rows(out / 2 + r * rows, out / 2 + (r + 1) * rows);
  CHECK(test::bitwise_equal(blocked.weight().value.rows(0, rows), k_rows));
  CHECK(test::bitwise_equal(blocked.weight().value.rows(rows, 2 * rows), v_rows));
}

TEST_CASE("VocabParallelEmbedding equals the plain embedding", "[mpi]") {
  const TpGroup tp = world_tp();
  const std::int64_t V = 5 * tp_size(tp), C = 7;
  VocabParallelEmbedding emb("emb", V, C, 0.5f, 8, tp);
  VocabParallelEmbedding full("emb", V, C, 0.5f, 8, nullptr);
  Tensor ids = Tensor::from<std::int32_t>({9}, {0, static_cast<int>(V - 1), 3, 3, 6, 1, static_cast<int>(V / 2), 2, 4});
  ActivationStore s1, s2;
  StepContext c1{s1}, c2{s2};
  Tensor out = emb.forward(c2, ids), ref = full.forward(c1, ids);
  CHECK(test::bitwise_equal(out, ref));  // one non-zero term per element: the all-reduce is exact
  Tensor dout = random_tensor({9, C}, 6);
  emb.backward(c2, dout);
  full.backward(c1, dout);
  CHECK(emb.first_id() == tp_rank(tp) * 5);
  check_grads({&full.weight()}, {&emb.weight()}, tp);
}

TEST_CASE("vocab-parallel cross-entropy equals the fused op", "[mpi]") {
  const TpGroup tp = world_tp();
  const std::int64_t N = 6, Vl = 13, V = Vl * tp_size(tp), first = tp_rank(tp) * Vl;
  Tensor full = random_tensor({N, V}, 7);
  ops::scale(full, 4.0f);
  Tensor targets = Tensor::from<std::int32_t>({N}, {0, static_cast<int>(V - 1), 5, static_cast<int>(Vl), 2, 7});
  Tensor mask = Tensor::from<float>({N}, {1, 1, 0, 1, 1, 0.5f});
  Tensor shard = Tensor::empty({N, Vl});
  for (std::int64_t i = 0; i < N; ++i)
    std::copy(full.data<float>() + i * V + first, full.data<float>() + i * V + first + Vl, shard.data<float>() + i * Vl);
  Tensor losses_ref = Tensor::empty({N}), losses = Tensor::empty({N});
  ops::softmax_cross_entropy(full, targets, mask, losses_ref, true, 0.25f);
  vocab_parallel_cross_entropy(shard, targets, mask, losses, true, 0.25f, first, tp);
  CHECK(rel_diff(losses, losses_ref) < 1e-6);
  CHECK(rel_diff(gather_full(shard, 1, 1, tp), full) < 1e-6);
}
