#include "tessera/nn/moe_routing.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tessera/error.hpp"

namespace tessera {

std::int64_t expert_capacity(std::int64_t tokens, const MoeRouterOptions& o) {
  const std::int64_t routed = tokens * o.topk;
  if (o.capacity_factor <= 0.0) return routed;
  // Megatron-Core: ceil((num_tokens / num_experts) * capacity_factor), num_tokens the routed pairs.
  const double capacity =
      std::ceil(static_cast<double>(routed) / static_cast<double>(o.experts) * o.capacity_factor);
  return std::min<std::int64_t>(routed, static_cast<std::int64_t>(capacity));
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

}  // namespace

MoeRouting route_tokens(const float* logits, std::int64_t tokens, const MoeRouterOptions& o, std::int64_t sequence) {
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
  r.expert_tokens.assign(static_cast<std::size_t>(E), {});
  r.expert_slots.assign(static_cast<std::size_t>(E), {});
  std::vector<std::int32_t> order(static_cast<std::size_t>(E));
  for (std::int64_t t = 0; t < tokens; ++t) {
    const float* l = logits + t * E;
    float* s = r.scores.data() + t * E;
    const float top = *std::max_element(l, l + E);
    double sum = 0.0;
    for (std::int64_t e = 0; e < E; ++e) sum += std::exp(static_cast<double>(l[e]) - top);
    for (std::int64_t e = 0; e < E; ++e) s[e] = static_cast<float>(std::exp(static_cast<double>(l[e]) - top) / sum);
    r.logsumexp[static_cast<std::size_t>(t)] = static_cast<float>(top + std::log(sum));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](std::int32_t a, std::int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
    // probs: softmax over the chosen logits (the first is the largest), or the chosen scores.
    double chosen_sum = 0.0;
    for (std::int64_t j = 0; j < k; ++j) chosen_sum += std::exp(static_cast<double>(l[order[j]]) - l[order[0]]);
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int32_t e = order[static_cast<std::size_t>(j)];
      const auto at = static_cast<std::size_t>(t * k + j);
      r.chosen[at] = e;
      r.probs[at] = o.pre_softmax
                        ? static_cast<float>(o.topk_scaling_factor * s[e])
                        : static_cast<float>(std::exp(static_cast<double>(l[e]) - l[order[0]]) / chosen_sum);
      r.expert_tokens[static_cast<std::size_t>(e)].push_back(static_cast<std::int32_t>(t));
      r.expert_slots[static_cast<std::size_t>(e)].push_back(static_cast<std::int32_t>(j));
    }
  }
  if (tokens > 0) {
    // Groups of consecutive tokens: each sequence (per_sequence), else the whole batch.
    const std::int64_t G = o.per_sequence && sequence > 0 && tokens % sequence == 0 ? sequence : tokens;
    const std::int64_t groups = tokens / G;
    r.group_tokens = G;
    r.group_counts.assign(static_cast<std::size_t>(groups * E), 0);
    for (std::size_t i = 0; i < r.chosen.size(); ++i)
      ++r.group_counts[static_cast<std::size_t>(static_cast<std::int64_t>(i) / k / G * E + r.chosen[i])];
    double balance = 0.0, z = 0.0;
    for (std::int64_t g = 0; g < groups; ++g)
      for (std::int64_t e = 0; e < E; ++e) {
        double p = 0.0;
        for (std::int64_t t = g * G; t < (g + 1) * G; ++t) p += r.scores[static_cast<std::size_t>(t * E + e)];
        balance += p * static_cast<double>(r.group_counts[static_cast<std::size_t>(g * E + e)]);
      }
    for (float v : r.logsumexp) z += static_cast<double>(v) * v;
    const double n = static_cast<double>(G);
    r.load_balancing_loss =
        balance * static_cast<double>(E) / (static_cast<double>(k) * n * n * static_cast<double>(groups));
    r.z_loss = z / static_cast<double>(tokens);
  }
  drop_over_capacity(r, o);  // after the counts: the load-balancing loss sees the routing before the cut
  return r;
}

std::vector<float> router_logits_grad(const MoeRouting& r, const std::vector<float>& dprobs, const MoeRouterOptions& o,
                                      float loss_grad_scale) {
  const std::int64_t N = r.tokens, E = r.experts, k = r.topk;
  std::vector<float> dlogits(static_cast<std::size_t>(N * E), 0.0f);
  if (N == 0) return dlogits;
  const double n = static_cast<double>(N);
  // d(aux)/d(scores[t, e]) = coeff · E · count_ge / (k · G² · groups) for token t of group g (of G
  // tokens), the same for every token of a group.
  const std::int64_t G = r.group_tokens, groups = N / G;
  std::vector<double> balance(static_cast<std::size_t>(groups * E), 0.0);
  if (o.aux_loss_coeff != 0.0)
    for (std::size_t i = 0; i < balance.size(); ++i)
      balance[i] = loss_grad_scale * o.aux_loss_coeff * static_cast<double>(E) * static_cast<double>(r.group_counts[i]) /
                   (static_cast<double>(k) * static_cast<double>(G) * static_cast<double>(G) * static_cast<double>(groups));
  std::vector<double> dscores(static_cast<std::size_t>(E));
  for (std::int64_t t = 0; t < N; ++t) {
    const float* s = r.scores.data() + t * E;
    float* dl = dlogits.data() + t * E;
    const float* dp = dprobs.data() + t * k;
    const float* p = r.probs.data() + t * k;
    const std::int32_t* chosen = r.chosen.data() + t * k;
    const auto group = balance.begin() + (t / G) * E;
    std::copy(group, group + E, dscores.begin());
    if (o.pre_softmax) {
      for (std::int64_t j = 0; j < k; ++j) dscores[static_cast<std::size_t>(chosen[j])] += o.topk_scaling_factor * dp[j];
    } else {  // probs = softmax(logits[chosen]): d logits_j = p_j (dp_j − Σ p·dp)
      double dot = 0.0;
      for (std::int64_t j = 0; j < k; ++j) dot += static_cast<double>(p[j]) * dp[j];
      for (std::int64_t j = 0; j < k; ++j) dl[chosen[j]] += static_cast<float>(p[j] * (dp[j] - dot));
    }
    double dot = 0.0;  // the softmax over all experts
    for (std::int64_t e = 0; e < E; ++e) dot += s[e] * dscores[static_cast<std::size_t>(e)];
    // z-loss: d(mean_t lse_t²)/d(l[t, e]) = 2 · lse_t · scores[t, e] / N.
    const double z = loss_grad_scale * o.z_loss_coeff * 2.0 * r.logsumexp[static_cast<std::size_t>(t)] / n;
    for (std::int64_t e = 0; e < E; ++e)
      dl[e] += static_cast<float>(s[e] * (dscores[static_cast<std::size_t>(e)] - dot) + z * s[e]);
  }
  return dlogits;
}

}  // namespace tessera
