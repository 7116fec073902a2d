// Top-k token routing of a mixture-of-experts layer (Megatron-Core's TopKRouter, dropless), on the
// host: the router's logits [N, E] are E numbers per token, small next to the experts' work, and
// the per-expert token lists that the dispatch needs are host data anyway (as Megatron's
// tokens_per_expert, which its grouped GEMM reads on the host).
//
// For token t with logits l (E experts, k of them chosen), with the softmax score function:
//   scores      = softmax(l) over all experts (the load-balancing loss's probabilities);
//   chosen      = the k largest logits, largest first (ties: the lower expert index);
//   probs       = softmax(l[chosen]) — or, with pre_softmax, scores[chosen] unnormalised —
//                 times topk_scaling_factor (DeepSeek-V2's routed scaling);
//   output      = Σ_j probs_j · expert_{chosen_j}(x_t).
// With the sigmoid score function (DeepSeek-V3's; Megatron-Core's score_function "sigmoid"):
//   scores = sigmoid(l); chosen = the k largest scores; probs = scores[chosen] / Σ scores[chosen]
//   (k > 1; the score itself when k = 1) times topk_scaling_factor; the load-balancing loss's
//   probabilities are the scores normalised over all experts (k > 1).
// Group-limited routing (num_groups G, group_topk g; DeepSeek's device-limited routing,
// Megatron-Core's group_limited_topk): the E experts are G groups of consecutive experts, each
// group scored by the sum of its k/g largest selection scores (the logits, or the scores with
// pre_softmax or sigmoid); the k are chosen from the g best groups only. The load-balancing loss
// then counts the plain top-k of its probabilities, as Megatron-Core's
// compute_routing_scores_for_aux_loss (without groups: the routing's own counts).
// Sinkhorn routing (load_balancing_type "sinkhorn", Megatron-Core's sinkhorn_load_balancing, from
// BASE layers): in training the k experts are the top-k of the Sinkhorn-balanced matrix
// diag(d0) · exp(l) · diag(d1) of the microbatch (d0, d1 iterated until d1 moves less than 1e-4 on
// average), outside training the top-k of the scores; the weights are the scores of the chosen —
// sigmoid(l) for k = 1, the softmax over all experts for k > 1 — unnormalised.
// The expert bias (DeepSeek-V3's aux-loss-free balancing, sigmoid scores only): the k are chosen
// by scores + bias[e] (groups too), their weights taken from the unbiased scores; the
// load-balancing counts are then the plain top-k's as well. The bias is a buffer its layer updates
// after each iteration (MoeLayer).
// Losses added to the objective (Megatron-Core's, applied through MoEAuxLossAutoScaler, whose
// gradient scale is the main loss's, here StepContext::loss_grad_scale):
//   load balancing (aux_loss_coeff): coeff · E / (k · N²) · Σ_e count_e · Σ_t scores[t, e], count_e
//     the tokens routed to e (switch_load_balancing_loss_func; counts carry no gradient); per
//     sequence (load_balancing_type "seq_aux_loss", DeepSeek-V2's): the same over each sequence's
//     T tokens, averaged over the sequences (sequence_load_balancing_loss_func);
//   z-loss (z_loss_coeff): coeff · mean_t logsumexp(l_t)² (ST-MoE).
// Token dropping (capacity_factor > 0; Megatron-Core's topk_softmax_with_capacity): each expert
// takes at most capacity = ⌈N·k / E · capacity_factor⌉ of the tokens routed to it — those with the
// largest probs (ties: the earlier token), or with drop_by_position the earliest — and a dropped
// (token, slot) adds nothing to the output (its prob is not renormalised away: the kept slots keep
// theirs). The load-balancing loss counts the routing before the capacity cut, as Megatron-Core's.
#pragma once
#include <cstdint>
#include <vector>

namespace tessera {

struct MoeRouterOptions {
  std::int64_t experts = 0, topk = 2;
  bool sigmoid = false;         // score function "sigmoid" (moe_router_score_function), else softmax
  std::int64_t num_groups = 0, group_topk = 0;  // group-limited routing (0: none)
  bool expert_bias = false;        // moe_router_enable_expert_bias (sigmoid scores only)
  bool sinkhorn = false;           // load_balancing_type "sinkhorn" (no load-balancing loss)
  double bias_update_rate = 1e-3;  // moe_router_bias_update_rate
  bool pre_softmax = false;     // probs from the softmax over all experts (moe_router_pre_softmax)
  double topk_scaling_factor = 1.0;  // probs times this (moe_router_topk_scaling_factor)
  bool load_balancing = true;   // load_balancing_type "aux_loss" or "seq_aux_loss" (false: "none")
  bool per_sequence = false;    // "seq_aux_loss": the load-balancing loss over each sequence
  double aux_loss_coeff = 0.0;  // its weight in the objective (0 with "none")
  double z_loss_coeff = 0.0;
  double capacity_factor = 0.0;  // > 0: token dropping (moe_expert_capacity_factor); 0: dropless
  bool drop_by_position = false; // a full expert keeps its earliest tokens (moe_token_drop_policy "position")
};

// The most tokens one expert takes from N routed to top-k of E with token dropping
// (Megatron-Core's get_capacity over N·k routed pairs); N·k (no limit) when dropless.
std::int64_t expert_capacity(std::int64_t tokens, const MoeRouterOptions& o);
// The most (token, expert) pairs the experts take from N tokens: N·k dropless, at most E·capacity
// with token dropping (what the plan holds activations for).
std::int64_t expert_rows(std::int64_t tokens, const MoeRouterOptions& o);

struct MoeRouting {
  std::int64_t tokens = 0, experts = 0, topk = 0;
  std::vector<std::int32_t> chosen;  // [N·k] expert of each (token, slot), largest logit first
  std::vector<float> probs;          // [N·k] the output's weights
  std::vector<float> scores;         // [N·E] the score function over all experts (softmax or sigmoid)
  std::vector<float> logsumexp;      // [N]
  std::vector<float> logits;         // [N·E] (the z-loss's gradient needs their softmax)
  // Per expert: the tokens routed to it and kept (ascending) and, for each, its slot j (0 … k−1).
  // A (token, slot) pair that its expert dropped is in neither; its probs entry stays (the
  // softmax's backward needs it) but weighs nothing.
  std::vector<std::vector<std::int32_t>> expert_tokens, expert_slots;
  // The load-balancing loss's groups of consecutive tokens (a sequence each with per_sequence, else
  // all N) and each group's count of tokens routed to each expert [groups · E] (before any capacity
  // cut; with group-limited routing, of the plain top-k).
  std::int64_t group_tokens = 0;
  std::vector<std::int64_t> group_counts;
  double load_balancing_loss = 0.0;  // Σ_e count_e · Σ_t scores · E / (k · N²), without the coefficient
  double z_loss = 0.0;               // mean_t logsumexp², without the coefficient
  std::int64_t capacity = 0;         // expert_capacity(tokens)
  std::int64_t dropped = 0;          // (token, slot) pairs over their expert's capacity
};

// Routes N tokens from their f32 logits [N, E]; `sequence`: tokens per sequence (rows are whole
// sequences one after another), for per_sequence (ignored where it does not divide N: one group).
// `expert_bias` [E]: the expert bias (with o.expert_bias; null otherwise).
// `training`: Sinkhorn routing balances in training only.
MoeRouting route_tokens(const float* logits, std::int64_t tokens, const MoeRouterOptions& o, std::int64_t sequence = 0,
                        const float* expert_bias = nullptr, bool training = true);

// d(objective)/d(logits) [N·E] from d(objective)/d(probs) [N·k] (already scaled by the main loss's
// gradient scale) plus the load-balancing and z-losses' gradients scaled by `loss_grad_scale`.
std::vector<float> router_logits_grad(const MoeRouting& r, const std::vector<float>& dprobs, const MoeRouterOptions& o,
                                      float loss_grad_scale);

}  // namespace tessera
