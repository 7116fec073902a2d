// Data-parallel gradient buckets: which parameters land in which bucket for a given size, in
// backward order; grads as views of the flat buffer; when the GradientReducer starts each bucket
// (run on the one-rank group, where the all-reduces are no-ops but the bookkeeping is the same).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include <catch2/catch.hpp>

#include "expect_error.hpp"
#include "shape_only_communicator.hpp"
#include "tessera/parallel/local_communicator.hpp"
#include "tessera/train/grad_buckets.hpp"
#include "tessera/train/gradient_reducer.hpp"

using namespace tessera;

namespace {

// Parameters a..e in collect_parameters order (forward order); backward order is e, d, c, b, a.
struct Params {
  std::vector<std::unique_ptr<Parameter>> owned;
  std::vector<Parameter*> list;
  Params() {
    add("a", {2, 5});   // 10
    add("b", {20});     // 20
    add("c", {40, 50}); // 2000
    add("d", {5});      // 5
    add("e", {3, 10});  // 30
  }
  void add(const char* name, const Shape& shape) {
    owned.push_back(std::make_unique<Parameter>(name, shape));
    list.push_back(owned.back().get());
  }
  Parameter& operator[](std::size_t i) { return *list[i]; }
};

enum { A, B, C, D, E };

}  // namespace

TEST_CASE("gradient buckets: grouping in backward order, a large parameter alone, 16-element alignment", "[unit]") {
  Params p;
  // bucket_size 64: e (30) and d (5, at offset 32) fit; c would take it past 64, so the bucket
  // closes and c (2000 ≥ 64) gets its own; then b (20) and a (10, at offset 32).
  auto plans = plan_grad_buckets(p.list, 64, false);
  REQUIRE(plans.size() == 3);
  CHECK(plans[0].params == std::vector<std::size_t>{E, D});
  CHECK(plans[0].offsets == std::vector<std::int64_t>{0, 32});
  CHECK(plans[0].numel == 48);
  CHECK(plans[1].params == std::vector<std::size_t>{C});
  CHECK(plans[1].numel == 2000);
  CHECK(plans[2].params == std::vector<std::size_t>{B, A});
  CHECK(plans[2].offsets == std::vector<std::int64_t>{0, 32});
  CHECK(plans[2].numel == 48);
  for (const auto& b : plans) CHECK_FALSE(b.after_tp_reduce);

  // A bucket that reaches the size closes: with 32, e (30) then d at 32 would make 37 > 32.
  plans = plan_grad_buckets(p.list, 32, false);
  REQUIRE(plans.size() == 5);
  for (std::size_t i = 0; i < plans.size(); ++i) CHECK(plans[i].params == std::vector<std::size_t>{4 - i});

  // Size 1: one parameter per bucket (the reducer of one tensor at a time).
  CHECK(plan_grad_buckets(p.list, 1, false).size() == 5);
  // Large enough: everything in one bucket, backward order, each start aligned to 16.
  plans = plan_grad_buckets(p.list, 1'000'000, false);
  REQUIRE(plans.size() == 1);
  CHECK(plans[0].params == std::vector<std::size_t>{E, D, C, B, A});
  CHECK(plans[0].offsets == std::vector<std::int64_t>{0, 32, 48, 2048, 2080});
  CHECK(plans[0].numel == 2096);

  CHECK_THROWS_AS(plan_grad_buckets(p.list, 0, false), Error);
}

TEST_CASE("gradient buckets: parameters summed over tp first are bucketed apart when asked", "[unit]") {
  Params p;
  p[D].reduce_grad_over_tp = true;
  p[A].reduce_grad_over_tp = true;
  // tp = 1: nothing is summed over tp, they bucket like any other.
  auto plans = plan_grad_buckets(p.list, 64, false);
  REQUIRE(plans.size() == 3);
  CHECK(plans[0].params == std::vector<std::size_t>{E, D});
  // tp > 1: the others first, then d and a in buckets of their own kind, still backward order.
  plans = plan_grad_buckets(p.list, 64, true);
  REQUIRE(plans.size() == 4);
  CHECK(plans[0].params == std::vector<std::size_t>{E});
  CHECK(plans[1].params == std::vector<std::size_t>{C});
  CHECK(plans[2].params == std::vector<std::size_t>{B});
  CHECK(plans[3].params == std::vector<std::size_t>{D, A});
  CHECK(plans[3].after_tp_reduce);
  for (int i = 0; i < 3; ++i) CHECK_FALSE(plans[i].after_tp_reduce);
}

TEST_CASE("gradient buckets: expert-parallel parameters get buckets of their own, last, summed over expert dp",
          "[unit]") {
  Params p;
  p[C].expert_parallel = true;
  p[A].expert_parallel = true;
  p[D].reduce_grad_over_tp = true;
  // The others (tp-reduced ones after them), then c and a apart, still in backward order.
  auto plans = plan_grad_buckets(p.list, 64, true);
  REQUIRE(plans.size() == 4);
  CHECK(plans[0].params == std::vector<std::size_t>{E, B});
  CHECK(plans[1].params == std::vector<std::size_t>{D});
  CHECK(plans[1].after_tp_reduce);
  CHECK(plans[2].params == std::vector<std::size_t>{C});  // 2000 elements: a bucket of its own
  CHECK(plans[3].params == std::vector<std::size_t>{A});
  for (int i = 0; i < 4; ++i) CHECK(plans[i].expert_parallel == (i >= 2));
  plans = plan_grad_buckets(p.list, 1'000'000, false);  // one bucket of each kind
  REQUIRE(plans.size() == 2);
  CHECK(plans[0].params == std::vector<std::size_t>{E, D, B});
  CHECK(plans[1].params == std::vector<std::size_t>{C, A});
  CHECK(plans[1].expert_parallel);

  // The reducer sums expert buckets over the expert-data-parallel group, the rest over dp.
  auto tally = std::make_shared<test::Tally>();
  test::ShapeOnlyCommunicator dp("dp", 0, 4, tally), expert_dp("expert_dp", 0, 2, tally);
  GradBuckets buckets(p.list, 1'000'000, false);
  GradientReducer r(buckets, dp, true, nullptr, &expert_dp);
  r.grad_ready(p[C]);
  r.grad_ready(p[A]);
  CHECK(r.started(1));
  CHECK_FALSE(r.started(0));
  r.finish();
  CHECK((*tally)[{"expert_dp", "all_reduce"}].calls == 1);
  CHECK((*tally)[{"expert_dp", "all_reduce"}].elements == buckets.buckets()[1].data.numel());
  CHECK((*tally)[{"dp", "all_reduce"}].calls == 1);
  CHECK((*tally)[{"dp", "all_reduce"}].elements == buckets.buckets()[0].data.numel());

  // No bucket sums over both tp and the expert group.
  p[C].reduce_grad_over_tp = true;
  CHECK_THAT(message_of<Error>([&] { plan_grad_buckets(p.list, 64, true); }),
             Catch::Contains("'c' is expert-parallel and summed over tp"));
}

TEST_CASE("gradient buckets: every grad becomes a view of its bucket, values and shapes kept", "[unit]") {
  Params p;
  p[C].grad.fill_(3.0f);
  GradBuckets buckets(p.list, 64, false);
  REQUIRE(buckets.size() == 3);
  CHECK(buckets.num_params() == 5);
  CHECK(buckets.bucket_of(p[E]) == 0);
  CHECK(buckets.bucket_of(p[D]) == 0);
  CHECK(buckets.bucket_of(p[C]) == 1);
  CHECK(buckets.bucket_of(p[A]) == 2);
  CHECK(buckets.index_of(p[D]) == D);
  CHECK(p[C].grad.shape() == Shape{40, 50});
  CHECK(p[E].grad.shape() == Shape{3, 10});
  CHECK(p[C].grad.item(1999) == 3.0f);  // copied in

  // The bucket's data is the grads: writes through one are seen through the other.
  Tensor& b0 = buckets.data(0);
  REQUIRE(b0.numel() == 48);
  CHECK(b0.data<float>() == p[E].grad.data<float>());
  CHECK(b0.data<float>() + 32 == p[D].grad.data<float>());
  b0.fill_(2.0f);
  CHECK(p[D].grad.item(4) == 2.0f);
  p[A].grad.data<float>()[9] = 7.0f;
  CHECK(buckets.data(2).item(32 + 9) == 7.0f);
  // Buckets are consecutive in one buffer and each starts 64-byte aligned.
  CHECK(buckets.data(1).data<float>() == b0.data<float>() + 48);
  for (std::size_t b = 0; b < buckets.size(); ++b)
    CHECK(reinterpret_cast<std::uintptr_t>(buckets.data(b).raw()) % 64 == 0);

  buckets.zero_grads();
  for (Parameter* q : p.list)
    for (std::int64_t i = 0; i < q->grad.numel(); ++i) REQUIRE(q->grad.item(i) == 0.0);

  Parameter stranger("stranger", {3});
  CHECK_THAT(message_of<Error>([&] { buckets.index_of(stranger); }), Catch::Contains("'stranger' is not one of"));
}

TEST_CASE("gradient reducer: a bucket starts when all its parameters reported, the rest in finish()", "[unit]") {
  Params p;
  p[B].reduce_grad_over_tp = true;
  // Buckets (64, tp-reduced apart): {e, d}, {c}, {a}, then {b} after the tp sum.
  GradBuckets buckets(p.list, 64, true);
  REQUIRE(buckets.size() == 4);
  LocalCommunicator dp("dp");

  SECTION("overlap on") {
    GradientReducer r(buckets, dp, true);
    r.grad_ready(p[E]);
    CHECK_FALSE(r.started(0));
    r.grad_ready(p[D]);
    CHECK(r.started(0));
    r.grad_ready(p[B]);  // reported, but summed over tp after backward: not yet
    CHECK_FALSE(r.started(3));
    r.grad_ready(p[A]);
    CHECK(r.started(2));
    // c never reports (as the tied embedding): its bucket waits for finish().
    CHECK_FALSE(r.started(1));
    CHECK(r.started_during_backward() == 2);
    CHECK_THAT(message_of<Error>([&] { r.grad_ready(p[D]); }), Catch::Contains("'d' reported final twice"));
    r.finish();
    for (std::size_t b = 0; b < buckets.size(); ++b) CHECK(r.started(b));
    CHECK(r.started_during_backward() == 2);
  }
  SECTION("overlap off: reports are ignored, finish() starts every bucket") {
    GradientReducer r(buckets, dp, false);
    for (Parameter* q : p.list) r.grad_ready(*q);
    CHECK(r.started_during_backward() == 0);
    CHECK_FALSE(r.started(0));
    r.finish();
    for (std::size_t b = 0; b < buckets.size(); ++b) CHECK(r.started(b));
  }
}

TEST_CASE("gradient buckets split into dp shards: padded to 16·dp, pieces cover every element once", "[unit]") {
  for (int shards : {1, 2, 3, 4}) {
    Params p;
    GradBuckets buckets(p.list, 64, false, shards);
    INFO("shards " << shards);
    CHECK(buckets.shards() == shards);
    std::vector<std::vector<int>> covered(p.list.size());
    for (std::size_t i = 0; i < p.list.size(); ++i) covered[i].assign(static_cast<std::size_t>(p[i].grad.numel()), 0);
    for (std::size_t b = 0; b < buckets.size(); ++b) {
      const std::int64_t numel = buckets.buckets()[b].data.numel();
      CHECK(numel % (16 * shards) == 0);
      for (int r = 0; r < shards; ++r)
        for (const ShardPiece& sp : buckets.shard_pieces(b, r)) {
          CHECK(sp.shard_offset >= 0);
          CHECK(sp.shard_offset + sp.count <= numel / shards);
          // The piece's place in the shard is the gradient's place in the bucket.
          const float* shard_start = buckets.buckets()[b].data.data<float>() + r * (numel / shards);
          CHECK(shard_start + sp.shard_offset == sp.param->grad.data<float>() + sp.param_offset);
          std::size_t i = 0;
          while (p.list[i] != sp.param) ++i;
          for (std::int64_t k = 0; k < sp.count; ++k) ++covered[i][static_cast<std::size_t>(sp.param_offset + k)];
        }
    }
    for (const auto& c : covered) CHECK(std::all_of(c.begin(), c.end(), [](int n) { return n == 1; }));
  }
}

TEST_CASE("plan_shard_pieces gives the pieces GradBuckets::shard_pieces gives, without allocating", "[unit]") {
  for (int shards : {1, 2, 3}) {
    Params p;
    const std::vector<GradBucketPlan> plans = plan_grad_buckets(p.list, 64, false, shards);
    GradBuckets buckets(p.list, 64, false, shards);
    REQUIRE(plans.size() == buckets.size());
    for (std::size_t b = 0; b < plans.size(); ++b)
      for (int r = 0; r < shards; ++r) {
        INFO("shards " << shards << ", bucket " << b << ", shard " << r);
        const std::vector<ShardPiece> planned = plan_shard_pieces(plans[b], p.list, shards, r);
        const std::vector<ShardPiece> made = buckets.shard_pieces(b, r);
        REQUIRE(planned.size() == made.size());
        for (std::size_t k = 0; k < made.size(); ++k) {
          CHECK(planned[k].param == made[k].param);
          CHECK(planned[k].param_offset == made[k].param_offset);
          CHECK(planned[k].shard_offset == made[k].shard_offset);
          CHECK(planned[k].count == made[k].count);
        }
      }
  }
}
