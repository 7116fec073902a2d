// Mixture-of-experts MLP (Megatron-Core's MoELayer with its TopKRouter, dropless or with token
// dropping, no expert parallelism): a router picks k of E expert MLPs for each token (nn/moe_routing.hpp), each expert
// runs on its tokens only, and the token's output is the probability-weighted sum of its experts'.
// Parameter names: <name>.router.weight [E, C] (and, with the layers' linear biases, add_bias_linear,
// <name>.router.bias [E], as Megatron-Core's router and gpt-oss's), <name>.experts.<e>.fc1/fc2 as Mlp's; with the
// expert bias the buffer <name>.router.expert_bias [E] (Parameter::trainable = false, zeros at
// first), which the layer moves after every training iteration by bias_update_rate · sign(mean − count_e)
// of the tokens routed to each expert over the global batch (DeepSeek-V3's aux-loss-free balancing,
// Megatron-Core's get_updated_expert_bias; the counts summed over microbatches and data-parallel
// ranks by the trainer, StepContext::buffer_statistics). A shared
// expert (Megatron-Core's SharedExpertMLP, DeepSeek's and Qwen-MoE's) is one more MLP every token
// passes through, its output added: <name>.shared_expert.fc1/fc2; with its gate (Qwen-MoE's,
// SharedExpertMLP's gate_weight) the output is first scaled per token by sigmoid(x · w), w the
// parameter <name>.shared_expert.gate_weight [1, C] (replicated over tp; its gradient, from the
// partial outputs, is summed over tp as the routing weights' is).
//
// Tensor parallelism splits every expert as a dense MLP (fc1 by columns, fc2 by rows; Megatron-Core
// with expert_model_parallel_size 1): each rank computes its partial outputs of all experts, the
// weighted sum happens on the partials and one all-reduce (sequence parallel: one reduce-scatter)
// completes the layer, as a dense MLP's. The router is replicated: its input is the full token set
// on every rank (under sequence parallelism the layer all-gathers the rows first, as Megatron's
// allgather token dispatcher), so every rank routes alike; the gradient of the routing
// probabilities, partial on each rank, is summed over tp (N·k numbers) before the router's backward.
//
// Expert tensor parallel size 1 (MoeOptions::expert_tensor_parallel, Megatron-Core's
// --expert-tensor-parallel-size 1): the tp ranks hold different experts whole instead of a part of
// each. Nothing else changes: every tp rank still routes the same rows, each sums the outputs of its
// own experts, and the same all-reduce (reduce-scatter) completes the layer — a sum over experts
// now where it was a sum over ffn shards. With ep 1 every tp rank holds every expert and runs them on
// its share of the rows (RowShare), so each routed pair still runs once; their gradients are then
// summed over tp (Parameter::reduce_grad_over_tp). The routing weights' gradient, whole on the rank holding
// the pair's expert and zero on the others, is summed over tp as before.
//
// Expert parallelism (MoeOptions::expert_group of ep ranks, Megatron-Core's
// expert_model_parallel_size with the allgather token dispatcher): rank q of the group holds the
// experts [q·E/ep, (q+1)·E/ep) only (their parameters marked Parameter::expert_parallel), under
// their global names. Every rank routes its own tokens, then the group all-gathers the token rows
// and each token's chosen experts and weights; each rank runs its experts on the rows of every rank
// routed to them, and a reduce-scatter over the group hands each rank the sum for its own rows.
// Backward mirrors it: the output gradient is all-gathered, the input gradient and the routing
// weights' gradient reduce-scattered back to the rows' ranks. With the all-to-all dispatcher
// (MoeOptions::alltoall) the rows and their outputs and gradients travel point-to-point instead, each
// only to the ranks whose experts take it (every rank knows which from the gathered routing table). The router, the shared expert and the
// losses stay per rank, as without expert parallelism, so every layout computes what one process
// does.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tessera/nn/mlp.hpp"
#include "tessera/nn/moe_dispatch.hpp"
#include "tessera/nn/moe_routing.hpp"

namespace tessera {

struct MoeOptions {
  MoeRouterOptions router;           // router.experts = 0: a dense MLP
  std::int64_t ffn_hidden = 0;       // each expert's (moe_ffn_hidden_size)
  std::int64_t shared_ffn_hidden = 0;  // the shared expert's (moe_shared_expert_intermediate_size); 0: none
  bool shared_gate = false;  // moe_shared_expert_gate: the shared expert's output times sigmoid(x · w) per token
  // activation_func_clamp_shared_expert (Megatron-Core's): false leaves the shared expert's gated unit
  // unclamped (DeepSeek-V4's), the routed experts clamped.
  bool clamp_shared_expert = true;
  bool swiglu = false, squared_relu = false;  // the experts' activation (else the layer's GELU)
  // Selective recompute (recompute_modules, nn/recompute.hpp): "shared_experts" keeps only the
  // shared expert's input (RecomputedModule), "moe_act" the experts' activations computed again in
  // backward (MlpOptions::recompute_activation).
  bool recompute_shared_expert = false, recompute_expert_activation = false;
  // Expert parallelism: the ep size (parallel.expert_model_parallel_size, which the plan reads) and,
  // in a built model, its group (null: one rank).
  int expert_parallel = 1;
  std::shared_ptr<Communicator> expert_group;
  // expert_tensor_parallel_size: 0 splits every expert over tp (fc1 by columns, fc2 by rows); 1 keeps
  // them whole, tp rank t holding the experts of expert-parallel rank t + tp · (its place in
  // expert_group), which then spans ep / tp data-parallel ranks — or, with ep 1, every expert, each
  // tp rank taking its share of the rows.
  int expert_tensor_parallel = 0;
  // moe_token_dispatcher_type "alltoall": each rank sends each other rank only its token rows that
  // rank's experts take (point-to-point, as Megatron-Core's all-to-all dispatcher), and gets their
  // outputs back the same way; "allgather" (false, Megatron-LM's default): every rank gathers every
  // row. The routing table and the routing weights' gradient go by all-gather / reduce-scatter either way.
  bool alltoall = false;
  // moe_per_layer_logging (Megatron-Core's): each layer also reports its own statistics, under
  // moe_layer_metric_name (TensorBoard only).
  bool per_layer_logging = false;
};

class MoeLayer : public Module {
 public:
  // `layer`: the dense MLP's options (hidden, init, bias, GELU form, sequence parallelism), whose
  // ffn and activation `moe` replaces for the experts.
  MoeLayer(const std::string& name, const MlpOptions& layer, const MoeOptions& moe, std::uint64_t seed, TpGroup tp);
  void collect_parameters(std::vector<Parameter*>& out) override;
  // x [B,T,C] (sequence parallel: [B·T/tp, C]) → the same shape.
  Tensor forward(StepContext& ctx, const Tensor& x) override;
  Tensor backward(StepContext& ctx, const Tensor& dy) override;
  // On `rows` token rows (all of them) on one of `tp` ranks. Dropless routing sends rows·k rows
  // through the experts whatever the routing, so the cost does not depend on the data; with token
  // dropping it is the most the capacity lets through.
  static ModuleCost cost(const MlpOptions& layer, const MoeOptions& moe, std::int64_t rows, std::int64_t tp);

  // The expert bias's step from one iteration's token counts per expert (over the global batch).
  void update_expert_bias(const std::vector<double>& tokens_per_expert);

 private:
  // An expert's options (ffn: the routed experts' or the shared one's).
  static MlpOptions expert_options(const MlpOptions& layer, const MoeOptions& moe, std::int64_t ffn);
  static MlpOptions shared_expert_options(const MlpOptions& layer, const MoeOptions& moe);
  std::int64_t hidden_;
  std::int64_t layer_index_;  // in the whole model (per-layer statistics)
  bool sequence_parallel_;
  MoeOptions moe_;
  TpGroup tp_;
  TpGroup ep_;                      // the expert-parallel group; null or one rank: every expert here
  // Expert tensor parallel size 1: the tp ranks holding different experts (tp with ep > 1; else 1),
  // this rank's place among them, and its share of the rows among the tp ranks holding its experts.
  int expert_slices_ = 1, expert_slice_ = 0;
  RowShare row_share_;
  std::int64_t first_expert_ = 0;   // the global index of experts_[0]
  Parameter router_;
  bool router_has_bias_;   // add_bias_linear: the router's logits x·Wᵀ + b, as Megatron-Core's (gpt-oss's)
  Parameter router_bias_;  // [E]; collected only with router_has_bias_
  Parameter expert_bias_;  // [E]; collected only with moe_.router.expert_bias
  std::vector<std::unique_ptr<Mlp>> experts_;  // this rank's: E / ep of them
  std::unique_ptr<Module> shared_;  // null without a shared expert; a RecomputedModule Mlp when recomputed
  Parameter shared_gate_;        // [1, C]; collected only with moe_.shared_gate
};

// What a MoeLayer reports to StepContext::metrics in training, under Megatron-LM's names: the
// load-balancing loss (load_balancing_type "aux_loss"; "seq_load_balancing_loss" with
// "seq_aux_loss") and the z-loss (z_loss_coeff > 0), each without its coefficient (1 is a perfectly
// balanced router for the first).
inline const std::string kLoadBalancingLoss = "load_balancing_loss", kSeqLoadBalancingLoss = "seq_load_balancing_loss",
                         kZLoss = "z_loss";
// With per_layer_logging each layer reports its own too, as "moe/<name>_layer_<i>" (Megatron-Core's
// TensorBoard tags; i the layer's index in the whole model); `moe_layers` lists the model's mixture
// layers, for those names (Model::metric_names: every rank lists every layer's).
std::string moe_layer_metric_name(const std::string& name, std::int64_t layer);
std::vector<std::string> moe_metric_names(const MoeOptions& moe, const std::vector<std::int64_t>& moe_layers = {});

// Expert e's parameters are named <layer>.experts.<e>.<…>. Under expert parallelism the files that
// hold every expert (checkpoint model files) are read and described by these: whether a tensor is an
// expert's, and its role — the name with the expert index as '*' (the experts of a layer are alike).
inline constexpr const char* kExpertsNamePart = ".experts.";
bool is_expert_tensor(const std::string& name);
std::string expert_role(const std::string& name);
// The run's model line for such layers: "mixture of E experts (top k …, expert ffn F, …)".
std::string describe_moe(const MoeOptions& moe);

}  // namespace tessera
