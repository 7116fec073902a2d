// The mixture-of-experts router (nn/moe_routing.hpp) on hand-made logits: token dropping's capacity
// as Megatron-Core's get_capacity, which tokens each drop policy keeps, the load-balancing counts
// before the cut; group-limited routing's choice; and the logits' gradient through a cut routing
// (softmax and sigmoid scores, with and without groups) against finite differences.
// (tests/model/test_gpt_reference.cpp checks whole models with dropping against PyTorch.)
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "tessera/error.hpp"
#include "tessera/nn/activation_store.hpp"
#include "tessera/nn/moe.hpp"
#include "tessera/nn/moe_routing.hpp"

using namespace tessera;

namespace {

MoeRouterOptions options(std::int64_t experts, std::int64_t topk, double capacity_factor, bool by_position = false) {
  MoeRouterOptions o;
  o.experts = experts;
  o.topk = topk;
  o.capacity_factor = capacity_factor;
  o.drop_by_position = by_position;
  return o;
}

}  // namespace

TEST_CASE("expert_capacity: Megatron-Core's ceil(N·k / E · factor), N·k when dropless", "[unit]") {
  CHECK(expert_capacity(39, options(4, 2, 0.5)) == 10);   // 19.5 · 0.5 = 9.75
  CHECK(expert_capacity(39, options(4, 2, 1.0)) == 20);
  CHECK(expert_capacity(8, options(8, 2, 1.25)) == 3);    // 2 · 1.25 = 2.5
  CHECK(expert_capacity(64, options(8, 2, 1.0)) == 16);
  CHECK(expert_capacity(39, options(4, 2, 0.0)) == 78);   // dropless: no limit
  CHECK(expert_capacity(5, options(4, 1, 100.0)) == 5);   // never more than the routed pairs
  // The rows the experts take (the plan's): E · capacity below N·k, N·k otherwise, even where
  // E · capacity would pass 64 bits; N·k past 64 bits is the plan's ConfigError.
  CHECK(expert_rows(39, options(4, 2, 0.5)) == 40);
  CHECK(expert_rows(39, options(4, 2, 0.0)) == 78);
  const std::int64_t huge = std::int64_t{1} << 60;
  CHECK(expert_rows(huge, options(64, 2, 1.5)) == 2 * huge);
  CHECK_THROWS_AS(expert_rows(huge, options(64, 16, 0.0)), ConfigError);
}

TEST_CASE("token dropping keeps each full expert's largest-weight tokens, or its earliest", "[unit]") {
  // Four tokens all preferring expert 0 of 2 (top-1), by margins 1, 3, 2, 0.5; one token for expert 1.
  // Pre-softmax probs (sigmoid of the margin) differ, so the probs policy has no ties.
  const std::vector<float> logits{1, 0, 3, 0, 2, 0, 0.5f, 0, 0, 1};
  MoeRouterOptions o = options(2, 1, 1.0);  // capacity ⌈5 · 1 / 2⌉ = 3
  o.pre_softmax = true;
  o.aux_loss_coeff = 1.0;
  const MoeRouting dropless = route_tokens(logits.data(), 5, options(2, 1, 0.0, false));
  CHECK(dropless.dropped == 0);
  CHECK(dropless.expert_tokens[0] == std::vector<std::int32_t>{0, 1, 2, 3});

  const MoeRouting by_probs = route_tokens(logits.data(), 5, o);
  CHECK(by_probs.capacity == 3);
  CHECK(by_probs.dropped == 1);
  CHECK(by_probs.expert_tokens[0] == std::vector<std::int32_t>{0, 1, 2});  // token 3 (margin 0.5) dropped
  CHECK(by_probs.expert_tokens[1] == std::vector<std::int32_t>{4});
  CHECK(by_probs.expert_slots[0] == std::vector<std::int32_t>{0, 0, 0});

  o.capacity_factor = 0.5;  // capacity ⌈1.25⌉ = 2: tokens 1 and 2 have the largest weights
  CHECK(route_tokens(logits.data(), 5, o).expert_tokens[0] == std::vector<std::int32_t>{1, 2});
  o.drop_by_position = true;  // the earliest two
  const MoeRouting by_position = route_tokens(logits.data(), 5, o);
  CHECK(by_position.expert_tokens[0] == std::vector<std::int32_t>{0, 1});
  CHECK(by_position.dropped == 2);
  // The load-balancing loss counts the routing before the cut: 4 tokens for expert 0, 1 for expert 1.
  CHECK(by_position.group_counts == std::vector<std::int64_t>{4, 1});
  CHECK(by_position.load_balancing_loss == Approx(dropless.load_balancing_loss));
  // Dropped pairs keep their probs (the softmax's backward needs them).
  CHECK(by_position.probs == by_probs.probs);
}

TEST_CASE("Sinkhorn routing balances the choice in training and not outside it", "[unit]") {
  // Every token prefers expert 0 (logit 2 against 0): plain top-1 sends all four there; the
  // Sinkhorn-balanced matrix (each row and column scaled to equal sums) spreads them, two each.
  const std::vector<float> logits{2, 0, 2.1f, 0, 1.9f, 0, 2.05f, 0};
  MoeRouterOptions o = options(2, 1, 0.0);
  o.sinkhorn = true;
  const MoeRouting evaluated = route_tokens(logits.data(), 4, o, 0, nullptr, /*training=*/false);
  CHECK(evaluated.expert_tokens[0].size() == 4);
  const MoeRouting trained = route_tokens(logits.data(), 4, o, 0, nullptr, /*training=*/true);
  CHECK(trained.expert_tokens[0].size() == 2);
  CHECK(trained.expert_tokens[1].size() == 2);
  // The two weakest preferences (tokens 2 and 0, logits 1.9 and 2) move to expert 1.
  const std::vector<std::int32_t> moved{0, 2};
  CHECK(trained.expert_tokens[1] == moved);
  // The weights are the sigmoid of the chosen logit (top-1), unnormalised: token 0's of logit 0.
  CHECK(trained.probs[0] == Approx(0.5));
  CHECK(trained.probs[1] == Approx(1 / (1 + std::exp(-2.1))));
}

TEST_CASE("group-limited routing chooses among the best groups' experts", "[unit]") {
  // 6 experts in 3 groups of 2, top-2 from the best group (group_topk 1), groups scored by their top
  // k / group_topk = 2 logits: group 0 (3 + 0) = 3, group 1 (2.5 + 2.5) = 5, group 2 (4 − 3) = 1.
  // Unlimited, the top-2 would be experts 4 and 0.
  const std::vector<float> logits{3, 0, 2.5f, 2.5f, 4, -3};
  MoeRouterOptions o = options(6, 2, 0.0);
  CHECK(route_tokens(logits.data(), 1, o).chosen == std::vector<std::int32_t>{4, 0});
  o.num_groups = 3;
  o.group_topk = 1;
  const MoeRouting r = route_tokens(logits.data(), 1, o);
  CHECK(r.chosen == std::vector<std::int32_t>{2, 3});
  // The load-balancing counts are the plain top-k's (Megatron-Core's compute_routing_scores_for_aux_loss).
  CHECK(r.group_counts == std::vector<std::int64_t>{1, 0, 0, 0, 1, 0});
  // Sigmoid scores: the chosen two weigh s / (s_2 + s_3), equal here.
  o.sigmoid = true;
  CHECK(route_tokens(logits.data(), 1, o).probs == std::vector<float>{0.5f, 0.5f});
}

TEST_CASE("the expert bias chooses by biased scores, weighs by the unbiased ones, and moves by sign(mean − count)",
          "[unit]") {
  // Routing: sigmoid scores of logits 2, 1, 0, −1 are 0.88, 0.73, 0.5, 0.27; a bias of +1 on expert 3
  // routes to experts 3 and 0, weighted 0.27 / 1.15 and 0.88 / 1.15.
  const std::vector<float> logits{2, 1, 0, -1};
  MoeRouterOptions o = options(4, 2, 0.0);
  o.sigmoid = true;
  o.expert_bias = true;
  const std::vector<float> bias{0, 0, 0, 1};
  const MoeRouting r = route_tokens(logits.data(), 1, o, 0, bias.data());
  CHECK(r.chosen == std::vector<std::int32_t>{3, 0});
  const double s0 = 1 / (1 + std::exp(-2.0)), s3 = 1 / (1 + std::exp(1.0));
  CHECK(r.probs[0] == Approx(s3 / (s0 + s3)));
  CHECK(r.probs[1] == Approx(s0 / (s0 + s3)));
  const std::vector<std::int64_t> unbiased_top2{1, 1, 0, 0};  // the load-balancing counts: unbiased
  CHECK(r.group_counts == unbiased_top2);

  // The layer: two microbatches of 6 tokens reported in backward, then one update from the totals.
  MlpOptions layer;
  layer.hidden = 8;
  layer.ffn_hidden = 16;
  layer.init_std = layer.output_init_std = 0.5f;
  layer.bias = false;  // DeepSeek-V3's: no linear biases, so the router's logits are x · Wᵀ
  MoeOptions moe;
  moe.router = options(4, 1, 0.0);
  moe.router.sigmoid = true;
  moe.router.expert_bias = true;
  moe.router.bias_update_rate = 0.25;
  moe.ffn_hidden = 16;
  MoeLayer mixture("mlp", layer, moe, 5, nullptr);
  std::vector<Parameter*> params;
  mixture.collect_parameters(params);
  Parameter* expert_bias = nullptr;
  for (Parameter* q : params)
    if (q->name == "mlp.router.expert_bias") expert_bias = q;
  REQUIRE(expert_bias != nullptr);
  CHECK_FALSE(expert_bias->trainable);
  CHECK(trainable_parameters(params).size() == params.size() - 1);
  ActivationStore store;
  BufferStatistics statistics;
  std::vector<double> routed(4, 0.0);  // what each expert took, from the routing itself
  for (int m = 0; m < 2; ++m) {
    StepContext ctx{store};
    ctx.buffer_statistics = &statistics;
    ctx.seq_length = 6;
    std::mt19937 rng(100 + static_cast<unsigned>(m));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> values(6 * 8);
    for (float& v : values) v = normal(rng);
    const Tensor x = Tensor::from<float>({1, 6, 8}, values);
    const Tensor y = mixture.forward(ctx, x);
    mixture.backward(ctx, Tensor::full(y.shape(), 1.0f));
    // The same routing outside the layer: logits = x · routerᵀ.
    const std::vector<float> xs = x.to_vector<float>(), w = params.front()->value.to_vector<float>();
    std::vector<float> l(6 * 4, 0.0f);
    for (int t = 0; t < 6; ++t)
      for (int e = 0; e < 4; ++e)
        for (int c = 0; c < 8; ++c) l[static_cast<std::size_t>(t * 4 + e)] += xs[static_cast<std::size_t>(t * 8 + c)] * w[static_cast<std::size_t>(e * 8 + c)];
    const std::vector<float> zero(4, 0.0f);
    const MoeRouting q = route_tokens(l.data(), 6, moe.router, 6, zero.data());
    for (int e = 0; e < 4; ++e) routed[static_cast<std::size_t>(e)] += static_cast<double>(q.expert_tokens[static_cast<std::size_t>(e)].size());
  }
  REQUIRE(statistics.entries.size() == 1);
  const BufferStatistics::Entry& entry = statistics.entries.at("mlp.router.expert_bias");
  CHECK(entry.sums == routed);
  entry.apply(entry.sums);  // one process: the totals are the sums
  const std::vector<float> moved = expert_bias->value.to_vector<float>();
  for (int e = 0; e < 4; ++e) {
    const double offset = 12.0 / 4 - routed[static_cast<std::size_t>(e)];
    CHECK(moved[static_cast<std::size_t>(e)] == static_cast<float>(offset > 0 ? 0.25 : offset < 0 ? -0.25 : 0.0));
  }
  CHECK(expert_bias->grad.to_vector<float>() == std::vector<float>(4, 0.0f));  // never a gradient
}

TEST_CASE("the logits' gradient through a cut routing equals finite differences", "[unit]") {
  // 6 tokens, top-2 of 3 experts, capacity ⌈6·2/3 · 0.5⌉ = 2: some slots are dropped, and a dropped
  // slot's logit still moves its token's kept weight through the top-k softmax.
  const std::int64_t N = 6, E = 3, k = 2;
  std::vector<float> logits{0.3f, -0.2f, 0.9f, 1.1f, 0.4f, -0.7f, -0.5f, 0.8f, 0.1f,
                            0.6f, 0.2f, 0.0f,  -0.3f, 0.5f, 0.7f, 0.9f, -0.1f, 0.35f};
  // Softmax after / before the top-k, sigmoid scores (scaled), and each with group-limited routing
  // (3 groups of 1 expert, the best 2 groups); Sinkhorn.
  // Variant 6: Sinkhorn routing (its balanced choice, softmax weights; no load-balancing loss).
  for (int variant = 0; variant < 7; ++variant) {
    INFO("variant " << variant);
    MoeRouterOptions o = options(E, k, 0.5);
    o.pre_softmax = variant % 3 == 1 && variant < 6;
    o.sigmoid = variant % 3 == 2;
    if (o.sigmoid) o.topk_scaling_factor = 2.5;
    if (variant >= 3 && variant < 6) {
      o.num_groups = 3;
      o.group_topk = 2;
    }
    o.sinkhorn = variant == 6;
    o.aux_loss_coeff = o.sinkhorn ? 0.0 : 0.3;
    o.z_loss_coeff = 0.2;
    const MoeRouting r = route_tokens(logits.data(), N, o);
    REQUIRE(r.dropped > 0);
    // objective = Σ over kept pairs of c_tj · probs_tj + the router losses, c_tj fixed weights.
    std::vector<float> c(static_cast<std::size_t>(N * k));
    for (std::size_t i = 0; i < c.size(); ++i) c[i] = 0.25f + 0.1f * static_cast<float>(i % 5);
    const auto objective = [&](const std::vector<float>& l) {
      const MoeRouting q = route_tokens(l.data(), N, o);
      double f = o.aux_loss_coeff * q.load_balancing_loss + o.z_loss_coeff * q.z_loss;
      for (std::int64_t e = 0; e < E; ++e)
        for (std::size_t i = 0; i < q.expert_tokens[e].size(); ++i) {
          const std::size_t at = static_cast<std::size_t>(q.expert_tokens[e][i] * k + q.expert_slots[e][i]);
          f += c[at] * q.probs[at];
        }
      return f;
    };
    std::vector<float> dprobs(static_cast<std::size_t>(N * k), 0.0f);  // zero for the dropped pairs
    for (std::int64_t e = 0; e < E; ++e)
      for (std::size_t i = 0; i < r.expert_tokens[e].size(); ++i) {
        const std::size_t at = static_cast<std::size_t>(r.expert_tokens[e][i] * k + r.expert_slots[e][i]);
        dprobs[at] = c[at];
      }
    const std::vector<float> grad = router_logits_grad(r, dprobs, o, 1.0f);
    const float h = 1e-3f;
    for (std::size_t i = 0; i < logits.size(); ++i) {
      std::vector<float> up = logits, down = logits;
      up[i] += h;
      down[i] -= h;
      INFO("logit " << i);
      CHECK(grad[i] == Approx((objective(up) - objective(down)) / (2 * h)).margin(2e-3));
    }
  }
}
