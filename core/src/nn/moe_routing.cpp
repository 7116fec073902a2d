#include "tessera/nn/moe_routing.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tessera/error.hpp"
#include "tessera/plan_count.hpp"

namespace tessera {

std::int64_t expert_capacity(std::int64_t tokens, const MoeRouterOptions& o) {
  const std::int64_t routed = plan_mul(tokens, o.topk);  // checked: tessera plan passes huge shapes
  if (o.capacity_factor <= 0.0) return routed;
  // Megatron-Core: ceil((num_tokens / num_experts) * capacity_factor), num_tokens the routed pairs.
  const double capacity =
      std::ceil(static_cast<double>(routed) / static_cast<double>(o.experts) * o.capacity_factor);
  return capacity >= static_cast<double>(routed) ? routed : static_cast<std::int64_t>(capacity);
}

std::int64_t expert_rows(std::int64_t tokens, const MoeRouterOptions& o) {
  const std::int64_t routed = plan_mul(tokens, o.topk), capacity = expert_capacity(tokens, o);
  // E · capacity only where it is below the routed pairs (it cannot overflow there).
  return static_cast<double>(o.experts) * static_cast<double>(capacity) < static_cast<double>(routed)
             ? o.experts * capacity
             : routed;
}

namespace {

// Cuts each expert's token list to the capacity: the largest probs (the earlier token on a tie),
// or the earliest tokens; the lists stay in token order.
void drop_over_capacity(MoeRouting& r, const MoeRouterOptions& o) {
  r.capacity = expert_capacity(r.tokens, o);
  for (std::int64_t e = 0; e < r.experts; ++e) {
    auto& tokens = r.expert_tokens[static_cast<std::size_t>(e)];
    auto& slots = r.expert_slots[static_cast<std::size_t>(e)];
    const auto count = static_cast<std::int64_t>(tokens.size());
    if (count <= r.capacity) continue;
    std::vector<std::size_t> keep(tokens.size());
    std::iota(keep.begin(), keep.end(), std::size_t{0});
    if (!o.drop_by_position) {
      const auto prob = [&](std::size_t i) { return r.probs[static_cast<std::size_t>(tokens[i] * r.topk + slots[i])]; };
      std::stable_sort(keep.begin(), keep.end(), [&](std::size_t a, std::size_t b) { return prob(a) > prob(b); });
    }
    keep.resize(static_cast<std::size_t>(r.capacity));
    std::sort(keep.begin(), keep.end());
    std::vector<std::int32_t> kept_tokens, kept_slots;
    for (std::size_t i : keep) {
      kept_tokens.push_back(tokens[i]);
      kept_slots.push_back(slots[i]);
    }
    r.dropped += count - r.capacity;
    tokens = std::move(kept_tokens);
    slots = std::move(kept_slots);
  }
}

// Sinkhorn routing's scores are the sigmoid (top-1) or the softmax over all experts (top-k), the
// chosen entries unnormalised: the sigmoid and pre-softmax paths' formulas.
MoeRouterOptions score_options(const MoeRouterOptions& o) {
  MoeRouterOptions e = o;
  if (o.sinkhorn) {
    e.sigmoid = o.topk == 1;
    e.pre_softmax = o.topk > 1;
  }
  return e;
}

// Megatron-Core's sinkhorn(): cost = exp(logits); d0 = 1 / (N · (cost · d1 + ε)), d1 = 1 / (E ·
// (d0 · cost + ε)) until mean |Δd1| ≤ 1e-4; the balanced matrix d1 · cost · d0 [N·E]. It converges
// in tens of rounds; the cap only keeps non-finite logits from looping forever.
std::vector<float> sinkhorn_balanced(const float* logits, std::int64_t N, std::int64_t E) {
  const double eps = 1e-8, tol = 1e-4;
  std::int64_t rounds = 0;
  std::vector<double> cost(static_cast<std::size_t>(N * E)), d0(static_cast<std::size_t>(N), 1.0),
      d1(static_cast<std::size_t>(E), 1.0);
  for (std::size_t i = 0; i < cost.size(); ++i) cost[i] = std::exp(static_cast<double>(logits[i]));
  for (double error = 1e9; error > tol && rounds < 100000; ++rounds) {
    for (std::int64_t t = 0; t < N; ++t) {
      double sum = 0.0;
      for (std::int64_t e = 0; e < E; ++e) sum += d1[static_cast<std::size_t>(e)] * cost[static_cast<std::size_t>(t * E + e)];
      d0[static_cast<std::size_t>(t)] = 1.0 / static_cast<double>(N) / (sum + eps);
    }
    error = 0.0;
    for (std::int64_t e = 0; e < E; ++e) {
      double sum = 0.0;
      for (std::int64_t t = 0; t < N; ++t) sum += d0[static_cast<std::size_t>(t)] * cost[static_cast<std::size_t>(t * E + e)];
      const double next = 1.0 / static_cast<double>(E) / (sum + eps);
      error += std::abs(d1[static_cast<std::size_t>(e)] - next);
      d1[static_cast<std::size_t>(e)] = next;
    }
    error /= static_cast<double>(E);
  }
  std::vector<float> balanced(cost.size());
  for (std::int64_t t = 0; t < N; ++t)
    for (std::int64_t e = 0; e < E; ++e)
      balanced[static_cast<std::size_t>(t * E + e)] = static_cast<float>(
          d1[static_cast<std::size_t>(e)] * cost[static_cast<std::size_t>(t * E + e)] * d0[static_cast<std::size_t>(t)]);
  return balanced;
}

// What token t's scores are divided by to make the load-balancing loss's probabilities: 1 for the
// softmax (already a distribution) and for one sigmoid choice, else Σ_e sigmoid + 1e-20 (Megatron-Core's
// compute_routing_scores_for_aux_loss).
double balance_normaliser(const MoeRouting& r, const MoeRouterOptions& o, std::int64_t t) {
  if (!o.sigmoid || o.topk == 1) return 1.0;
  const float* s = r.scores.data() + t * r.experts;
  return std::accumulate(s, s + r.experts, 0.0) + 1e-20;
}

// The k entries of `key` [E] to route to, largest first (ties: the lower index), among the experts
// of the group_topk best groups when routing is group-limited.
void choose_experts(const float* key, const MoeRouterOptions& o, bool limit_groups, std::vector<std::int32_t>& order) {
  const std::int64_t E = o.experts, k = o.topk;
  const auto larger = [&](std::int32_t a, std::int32_t b) { return key[a] > key[b] || (key[a] == key[b] && a < b); };
  std::iota(order.begin(), order.end(), 0);
  auto candidates_end = order.end();
  if (limit_groups && o.num_groups > 0) {
    const std::int64_t G = o.num_groups, per_group = E / G, best = k / o.group_topk;
    std::vector<double> group_score(static_cast<std::size_t>(G));
    std::vector<float> top(static_cast<std::size_t>(per_group));
    for (std::int64_t g = 0; g < G; ++g) {
      std::copy(key + g * per_group, key + (g + 1) * per_group, top.begin());
      std::partial_sort(top.begin(), top.begin() + best, top.end(), std::greater<float>());
      group_score[static_cast<std::size_t>(g)] = std::accumulate(top.begin(), top.begin() + best, 0.0);
    }
    std::vector<std::int32_t> groups(static_cast<std::size_t>(G));
    std::iota(groups.begin(), groups.end(), 0);
    std::partial_sort(groups.begin(), groups.begin() + o.group_topk, groups.end(), [&](std::int32_t a, std::int32_t b) {
      return group_score[a] > group_score[b] || (group_score[a] == group_score[b] && a < b);
    });
    std::vector<char> allowed(static_cast<std::size_t>(G), 0);
    for (std::int64_t i = 0; i < o.group_topk; ++i) allowed[static_cast<std::size_t>(groups[i])] = 1;
    candidates_end = std::stable_partition(order.begin(), order.end(),
                                           [&](std::int32_t e) { return allowed[static_cast<std::size_t>(e / per_group)] != 0; });
  }
  std::partial_sort(order.begin(), order.begin() + k, candidates_end, larger);
}

}  // namespace

MoeRouting route_tokens(const float* logits, std::int64_t tokens, const MoeRouterOptions& options, std::int64_t sequence,
                        const float* expert_bias, bool training) {
  const MoeRouterOptions o = score_options(options);
  const std::int64_t E = o.experts, k = o.topk;
  if (E < 1 || k < 1 || k > E) throw ConfigError("MoE routing: topk must be in [1, experts]");
  MoeRouting r;
  r.tokens = tokens;
  r.experts = E;
  r.topk = k;
  r.chosen.resize(static_cast<std::size_t>(tokens * k));
  r.probs.resize(r.chosen.size());
  r.scores.resize(static_cast<std::size_t>(tokens * E));
  r.logsumexp.resize(static_cast<std::size_t>(tokens));
  r.logits.resize(r.scores.size());
  r.expert_tokens.assign(static_cast<std::size_t>(E), {});
  r.expert_slots.assign(static_cast<std::size_t>(E), {});
  // With group-limited routing or an expert bias the load-balancing counts are the plain top-k's
  // (balance_chosen).
  if (o.expert_bias && expert_bias == nullptr) throw Error("MoE routing: expert bias enabled but not given");
  const bool separate_balance = o.load_balancing && (o.num_groups > 0 || o.expert_bias);
  std::vector<float> biased(o.expert_bias ? static_cast<std::size_t>(E) : 0);
  std::vector<std::int32_t> balance_chosen(separate_balance ? r.chosen.size() : 0);
  std::vector<std::int32_t> order(static_cast<std::size_t>(E));
  const std::vector<float> balanced = o.sinkhorn && training ? sinkhorn_balanced(logits, tokens, E) : std::vector<float>();
  for (std::int64_t t = 0; t < tokens; ++t) {
    const float* l = logits + t * E;
    float* s = r.scores.data() + t * E;
    const float top = *std::max_element(l, l + E);
    double sum = 0.0;
    for (std::int64_t e = 0; e < E; ++e) sum += std::exp(static_cast<double>(l[e]) - top);
    r.logsumexp[static_cast<std::size_t>(t)] = static_cast<float>(top + std::log(sum));
    for (std::int64_t e = 0; e < E; ++e)
      s[e] = o.sigmoid ? static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(l[e]))))
                       : static_cast<float>(std::exp(static_cast<double>(l[e]) - top) / sum);
    std::copy(l, l + E, r.logits.begin() + t * E);
    // Selection by the logits (softmax after the top-k), else by the scores (plus the expert bias),
    // or in Sinkhorn training by the balanced matrix.
    const float* key = o.sigmoid || o.pre_softmax ? s : l;
    if (!balanced.empty()) key = balanced.data() + t * E;
    if (o.expert_bias) {
      for (std::int64_t e = 0; e < E; ++e) biased[static_cast<std::size_t>(e)] = s[e] + expert_bias[e];
      key = biased.data();
    }
    choose_experts(key, o, true, order);
    double chosen_sum = 0.0;  // the softmax over the chosen logits (the first is the largest), or Σ sigmoid
    for (std::int64_t j = 0; j < k; ++j)
      chosen_sum += o.sigmoid ? static_cast<double>(s[order[j]]) : std::exp(static_cast<double>(l[order[j]]) - l[order[0]]);
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int32_t e = order[static_cast<std::size_t>(j)];
      const auto at = static_cast<std::size_t>(t * k + j);
      r.chosen[at] = e;
      double p = 0.0;
      if (o.sigmoid)
        p = k > 1 ? s[e] / (chosen_sum + 1e-20) : s[e];
      else if (o.pre_softmax)
        p = s[e];
      else
        p = std::exp(static_cast<double>(l[e]) - l[order[0]]) / chosen_sum;
      r.probs[at] = static_cast<float>(o.topk_scaling_factor * p);
      r.expert_tokens[static_cast<std::size_t>(e)].push_back(static_cast<std::int32_t>(t));
      r.expert_slots[static_cast<std::size_t>(e)].push_back(static_cast<std::int32_t>(j));
    }
    if (separate_balance) {
      choose_experts(s, o, false, order);  // the plain top-k of the scores
      std::copy(order.begin(), order.begin() + k, balance_chosen.begin() + t * k);
    }
  }
  if (tokens > 0) {
    // Groups of consecutive tokens: each sequence (per_sequence), else the whole batch.
    const std::int64_t G = o.per_sequence && sequence > 0 && tokens % sequence == 0 ? sequence : tokens;
    const std::int64_t groups = tokens / G;
    r.group_tokens = G;
    r.group_counts.assign(static_cast<std::size_t>(groups * E), 0);
    const std::vector<std::int32_t>& counted = separate_balance ? balance_chosen : r.chosen;
    for (std::size_t i = 0; i < counted.size(); ++i)
      ++r.group_counts[static_cast<std::size_t>(static_cast<std::int64_t>(i) / k / G * E + counted[i])];
    std::vector<double> p(static_cast<std::size_t>(groups * E), 0.0);  // Σ_t of each group's probabilities
    for (std::int64_t t = 0; t < tokens; ++t) {
      const double norm = balance_normaliser(r, o, t);
      for (std::int64_t e = 0; e < E; ++e) p[static_cast<std::size_t>(t / G * E + e)] += r.scores[static_cast<std::size_t>(t * E + e)] / norm;
    }
    double balance = 0.0, z = 0.0;
    for (std::size_t i = 0; i < p.size(); ++i) balance += p[i] * static_cast<double>(r.group_counts[i]);
    for (float v : r.logsumexp) z += static_cast<double>(v) * v;
    const double n = static_cast<double>(G);
    r.load_balancing_loss =
        balance * static_cast<double>(E) / (static_cast<double>(k) * n * n * static_cast<double>(groups));
    r.z_loss = z / static_cast<double>(tokens);
  }
  drop_over_capacity(r, o);  // after the counts: the load-balancing loss sees the routing before the cut
  return r;
}

std::vector<float> router_logits_grad(const MoeRouting& r, const std::vector<float>& dprobs,
                                      const MoeRouterOptions& options, float loss_grad_scale) {
  const MoeRouterOptions o = score_options(options);
  const std::int64_t N = r.tokens, E = r.experts, k = r.topk;
  std::vector<float> dlogits(static_cast<std::size_t>(N * E), 0.0f);
  if (N == 0) return dlogits;
  const double n = static_cast<double>(N), scale = o.topk_scaling_factor;
  // d(aux)/d(probability[t, e]) = coeff · E · count_ge / (k · G² · groups) for token t of group g
  // (of G tokens), the same for every token of a group.
  const std::int64_t G = r.group_tokens, groups = N / G;
  std::vector<double> balance(static_cast<std::size_t>(groups * E), 0.0);
  if (o.aux_loss_coeff != 0.0)
    for (std::size_t i = 0; i < balance.size(); ++i)
      balance[i] = loss_grad_scale * o.aux_loss_coeff * static_cast<double>(E) * static_cast<double>(r.group_counts[i]) /
                   (static_cast<double>(k) * static_cast<double>(G) * static_cast<double>(G) * static_cast<double>(groups));
  std::vector<double> dscores(static_cast<std::size_t>(E));
  for (std::int64_t t = 0; t < N; ++t) {
    const float* s = r.scores.data() + t * E;
    const float* l = r.logits.data() + t * E;
    float* dl = dlogits.data() + t * E;
    const float* dp = dprobs.data() + t * k;
    const float* p = r.probs.data() + t * k;
    const std::int32_t* chosen = r.chosen.data() + t * k;
    const auto group = balance.begin() + (t / G) * E;
    const double lse = r.logsumexp[static_cast<std::size_t>(t)];
    // dscores: the objective's gradient with respect to the scores (softmax or sigmoid).
    const double norm = balance_normaliser(r, o, t);
    double balance_dot = 0.0;  // through the probabilities' normalisation over all experts
    if (norm != 1.0)
      for (std::int64_t e = 0; e < E; ++e) balance_dot += group[e] * s[e] / norm;
    for (std::int64_t e = 0; e < E; ++e) dscores[static_cast<std::size_t>(e)] = (group[e] - balance_dot) / norm;
    if (o.sigmoid) {  // probs = scale · s[chosen] / Σ s[chosen] (k > 1), or scale · s
      double sum = 1e-20, dot = 0.0;
      for (std::int64_t j = 0; j < k; ++j) sum += s[chosen[j]];
      for (std::int64_t j = 0; j < k; ++j) dot += static_cast<double>(dp[j]) * s[chosen[j]];
      for (std::int64_t j = 0; j < k; ++j)
        dscores[static_cast<std::size_t>(chosen[j])] += k > 1 ? scale * (dp[j] / sum - dot / (sum * sum)) : scale * dp[j];
      for (std::int64_t e = 0; e < E; ++e)
        dl[e] += static_cast<float>(dscores[static_cast<std::size_t>(e)] * s[e] * (1.0 - s[e]));
    } else {
      if (o.pre_softmax) {
        for (std::int64_t j = 0; j < k; ++j) dscores[static_cast<std::size_t>(chosen[j])] += scale * dp[j];
      } else {  // probs = scale · softmax(logits[chosen]): d logits_j = u_j (g_j − Σ u·g), u = probs / scale, g = scale · dp
        double dot = 0.0;
        for (std::int64_t j = 0; j < k; ++j) dot += static_cast<double>(p[j]) * dp[j];
        for (std::int64_t j = 0; j < k; ++j) dl[chosen[j]] += static_cast<float>(p[j] * (dp[j] - dot / scale));
      }
      double dot = 0.0;  // the softmax over all experts
      for (std::int64_t e = 0; e < E; ++e) dot += s[e] * dscores[static_cast<std::size_t>(e)];
      for (std::int64_t e = 0; e < E; ++e) dl[e] += static_cast<float>(s[e] * (dscores[static_cast<std::size_t>(e)] - dot));
    }
    // z-loss: d(mean_t lse_t²)/d(l[t, e]) = 2 · lse_t · softmax(l_t)_e / N.
    if (o.z_loss_coeff != 0.0) {
      const double z = loss_grad_scale * o.z_loss_coeff * 2.0 * lse / n;
      for (std::int64_t e = 0; e < E; ++e) dl[e] += static_cast<float>(z * std::exp(static_cast<double>(l[e]) - lse));
    }
  }
  return dlogits;
}

}  // namespace tessera
