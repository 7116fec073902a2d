// The vocab-parallel ops in one process: a row of logits split into uneven shards, each shard's
// statistics combined the way vocab_parallel_cross_entropy combines them over tp, must give
// PyTorch's losses and gradient (the cross_entropy reference cases) and agree with the fused op.
// The sharded embedding over every shard adds up to the plain embedding, bit for bit.
#include <algorithm>
#include <cmath>
#include <random>

#include <catch2/catch.hpp>

#include "reference_data.hpp"
#include "tessera/error.hpp"
#include "tessera/ops.hpp"

using namespace tessera;
using test::reference_cases;
using test::rel_err;

namespace {
// Columns [c0, c1) of a [N, V] tensor, copied out / written back.
Tensor columns(const Tensor& x, std::int64_t c0, std::int64_t c1) {
  const std::int64_t N = x.size(0), V = x.size(1);
  Tensor out = Tensor::empty({N, c1 - c0});
  for (std::int64_t i = 0; i < N; ++i)
    std::copy(x.data<float>() + i * V + c0, x.data<float>() + i * V + c1, out.data<float>() + i * (c1 - c0));
  return out;
}
void put_columns(const Tensor& part, Tensor& x, std::int64_t c0) {
  const std::int64_t N = x.size(0), V = x.size(1), w = part.size(1);
  for (std::int64_t i = 0; i < N; ++i)
    std::copy(part.data<float>() + i * w, part.data<float>() + (i + 1) * w, x.data<float>() + i * V + c0);
}
}  // namespace

TEST_CASE("sharded cross-entropy (stats, combine, grad) matches torch and the fused op", "[unit][reference]") {
  double worst_loss = 0, worst_grad = 0;
  for (const auto& c : reference_cases("cross_entropy")) {
    INFO(c.name);
    const float gs = c.params["grad_scale"];
    Tensor targets = c.load("targets");
    Tensor mask = c.params["masked"] ? c.load("mask") : Tensor();
    Tensor logits = c.load("logits");
    const std::int64_t N = logits.size(0), V = logits.size(1);
    // Three uneven shards (the last may be empty for tiny V).
    const std::vector<std::int64_t> bounds{0, V / 3, std::min(V, V / 3 + V / 2 + 1), V};
    std::vector<Tensor> shards, maxes, sums;
    Tensor gmax = Tensor::full({N}, -INFINITY), gsum = Tensor::zeros({N}), target_logit = Tensor::zeros({N});
    for (std::size_t s = 0; s + 1 < bounds.size(); ++s) {
      if (bounds[s + 1] == bounds[s]) continue;
      shards.push_back(columns(logits, bounds[s], bounds[s + 1]));
      maxes.push_back(Tensor::empty({N}));
      sums.push_back(Tensor::empty({N}));
      Tensor tl = Tensor::empty({N});
      ops::cross_entropy_shard_stats(shards.back(), targets, bounds[s], maxes.back(), sums.back(), tl, true);
      for (std::int64_t i = 0; i < N; ++i) {
        gmax.data<float>()[i] = std::max(gmax.data<float>()[i], maxes.back().data<float>()[i]);
        target_logit.data<float>()[i] += tl.data<float>()[i];
      }
    }
    for (std::size_t s = 0; s < shards.size(); ++s)
      for (std::int64_t i = 0; i < N; ++i)
        gsum.data<float>()[i] += sums[s].data<float>()[i] * std::exp(maxes[s].data<float>()[i] - gmax.data<float>()[i]);
    Tensor losses = Tensor::empty({N});
    for (std::int64_t i = 0; i < N; ++i)
      losses.data<float>()[i] = static_cast<float>(gmax.item(i) + std::log(gsum.item(i)) - target_logit.item(i));
    Tensor grad = Tensor::empty({N, V});
    for (std::size_t s = 0, k = 0; s + 1 < bounds.size(); ++s) {
      if (bounds[s + 1] == bounds[s]) continue;
      ops::cross_entropy_shard_grad(shards[k], targets, bounds[s], mask, maxes[k], gmax, gsum, gs);
      put_columns(shards[k], grad, bounds[s]);
      ++k;
    }
    const double el = rel_err(losses, c.load("losses")), eg = rel_err(grad, c.load("grad"));
    worst_loss = std::max(worst_loss, el);
    worst_grad = std::max(worst_grad, eg);
    CHECK(el < 1e-5);
    CHECK(eg < 1e-5);
    Tensor fused = c.load("logits"), fused_losses = Tensor::empty({N});
    ops::softmax_cross_entropy(fused, targets, mask, fused_losses, true, gs);
    CHECK(rel_err(losses, fused_losses) < 1e-6);
    CHECK(rel_err(grad, fused) < 1e-6);
  }
  std::printf("max rel err sharded cross_entropy: losses=%.2e grad=%.2e\n", worst_loss, worst_grad);
}

TEST_CASE("sharded embedding adds up to the plain embedding", "[unit]") {
  const std::int64_t V = 11, C = 5;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  Tensor table = Tensor::empty({V, C});
  for (std::int64_t i = 0; i < table.numel(); ++i) table.data<float>()[i] = normal(rng);
  Tensor ids = Tensor::from<std::int32_t>({7}, {0, 10, 4, 4, 5, 9, 3});
  Tensor dout = Tensor::empty({7, C});
  for (std::int64_t i = 0; i < dout.numel(); ++i) dout.data<float>()[i] = normal(rng);
  Tensor ref = Tensor::empty({7, C}), dref = Tensor::zeros({V, C});
  ops::embedding_forward(ids, table, ref);
  ops::embedding_backward(ids, dout, dref);
  Tensor sum = Tensor::zeros({7, C}), part = Tensor::empty({7, C});
  for (std::int64_t r0 : {0, 4, 9}) {  // shards [0,4) [4,9) [9,11)
    const std::int64_t r1 = r0 == 0 ? 4 : (r0 == 4 ? 9 : V);
    Tensor shard = table.rows(r0, r1), dshard = Tensor::zeros({r1 - r0, C});
    ops::embedding_shard_forward(ids, shard, r0, part);
    ops::add(sum, part, sum);
    ops::embedding_shard_backward(ids, dout, r0, dshard);
    CHECK(rel_err(dshard, dref.rows(r0, r1)) == 0.0);
  }
  CHECK(rel_err(sum, ref) == 0.0);
  Tensor one = Tensor::empty({1, C});
  CHECK_THROWS_AS(ops::embedding_shard_forward(Tensor::from<std::int32_t>({1}, {-1}), table, 0, one), ShapeError);
}

TEST_CASE("add_bias adds the bias to every row", "[unit]") {
  Tensor y = Tensor::from<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  ops::add_bias(y, Tensor::from<float>({3}, {0.5f, -1, 2}));
  CHECK(rel_err(y, Tensor::from<float>({2, 3}, {1.5f, 1, 5, 4.5f, 4, 8})) == 0.0);
  CHECK_THROWS_AS(ops::add_bias(y, Tensor::zeros({2})), ShapeError);
}
