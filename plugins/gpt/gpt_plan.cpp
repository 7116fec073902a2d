// The GPT model's costs for `tessera plan` (kind "model_plan", name "gpt"): what GptModel builds and
// saves on one rank, from [model] and the layout alone, so that huge layouts are planned without
// allocating anything.
//
// Every count below mirrors a line of code; tests/model/test_model_plan.cpp builds the model for
// each stage and tensor-parallel rank and requires exact equality. Symbols: b micro batch, T seq,
// N = b·T token rows, h hidden, H heads, g query groups, D = h/H head dim, F ffn, t tp, V_t = padded
// vocabulary / t, P max positions, per = layers in the chunk.
//
// Parameters per layer on a rank (14 tensors): ln1 2h; query (h/t)·h + h/t; key_value
// kv·h + kv with kv = 2·g_t·D, g_t = g/t (g ≥ t) or 1 (MQA, replicated); output h·(h/t) + h;
// ln2 2h; fc1 (F/t)·h + F/t; fc2 h·(F/t) + h. First virtual stage: + V_t·h + P·h (2 tensors); last:
// final norm 2h (2 tensors) and, when it is not also the first, the LM head's copy of the tied
// embedding V_t·h (1 tensor).
//
// Saved for backward per microbatch (nn/*.cpp, each distinct tensor once as ActivationStore counts):
//   per layer  ln1: input N·h, mean N, rstd N · ln1's output N·h (saved by query AND key_value:
//              once) · attention: q N·h/t, kv N·kv, lse b·(H/t)·T (the context it also keeps is the output
//              projection's input) · output proj.: context N·h/t ·
//              ln2: input N·h, mean, rstd 2N · fc1: ln2's output N·h · mlp: fc1 output N·F/t ·
//              fc2: gelu output N·F/t                 = 4Nh + 4N + 2Nh/t + N·kv + b(H/t)T + 2NF/t
//   first      token ids N (embedding), position ids N (GPT)
//   last       final norm: input N·h, mean, rstd 2N · the fused head's input gradient N·h
// Dropout saves nothing (its mask is regenerated from the seed).
// Sequence parallelism (tp > 1) keeps Ns = N/t rows where the code holds a token shard: ln1 and ln2
// inputs and statistics, fc1's input, a recomputed group's input, the position ids, the final
// norm's input and the head's input gradient; attention still keeps the gathered ln1 output.
// Activation recompute: "selective" drops lse b·(H/t)·T from every layer; "full" keeps of each
// recomputed group of layers (GptModel::Segment) only its input N·h, and its 2 forward all-reduces
// per layer run again in backward. The scratch store a group refills in backward is not counted.
//
// Tensor-parallel all-reduces per microbatch (t > 1): forward — the embedding's output [N, h] on
// the first stage, two per layer (attention and MLP outputs, [N, h]), and on the last stage the
// head's input gradient [N, h] (the head's backward is fused into its forward); backward — two per
// layer (inputs of attention and of the MLP); loss statistics — per head chunk of rows, the row
// max [n] and [Σexp | target logit] [2n] (3N in all). Once per iteration: MQA's replicated K/V
// gradients (2 tensors per layer).
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "gpt_options.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/model_plan.hpp"
#include "tessera/plugin.hpp"

namespace tessera::gpt {

namespace {

CollectiveCount times(CollectiveCount c, std::int64_t k) { return c.times(k); }

// The largest counts chunk_cost forms are a few times these (weights, a layer's saved activations,
// the LM head); past 2^58 some sum or product may not fit 64 bits.
void check_countable(const GptOptions& o, std::int64_t micro_batch) {
  const long double h = o.hidden_size, F = o.ffn_hidden_size, T = o.seq_length, b = micro_batch;
  const long double V = o.padded_vocab_size, H = o.num_attention_heads, L = o.num_layers;
  const long double per_layer = 4 * h * h + 3 * F * h + b * T * (10 * h + 2 * F) + b * H * T;
  const long double total = L * per_layer + V * h * (2 + b * T) + o.max_position_embeddings * h;
  if (total > static_cast<long double>(std::int64_t{1} << 58))
    throw ConfigError(fmt::format(
        "gpt: model.num_layers {}, hidden_size {}, ffn_hidden_size {}, seq_length {}, num_attention_heads {} with "
        "micro_batch_size {} need about {:.3g} elements, more than can be counted in 64 bits",
        o.num_layers, o.hidden_size, o.ffn_hidden_size, o.seq_length, o.num_attention_heads, micro_batch,
        static_cast<double>(total)));
}

class GptPlanner : public ModelPlanner {
 public:
  GptPlanner(const ConfigSection& s, const ModelPlanContext& c) : sizes_(c.sizes) {
    o_ = read_gpt_options(s, c.vocab_size, 0, sizes_.tp, sizes_.pp, sizes_.vpp, sizes_.sequence_parallel);
  }

  ModelChunkCost chunk_cost(const ParallelLayout& layout, int chunk, std::int64_t b) const override {
    if (layout.tp() != sizes_.tp || layout.pp() != sizes_.pp || layout.vpp() != sizes_.vpp)
      throw Error(fmt::format("gpt plan: layout {} is not the one the planner was made for (tp {}, pp {}, vpp {})",
                              layout.str(), sizes_.tp, sizes_.pp, sizes_.vpp));
    if (chunk < 0 || chunk >= layout.vpp())
      throw Error(fmt::format("gpt plan: chunk {} outside [0, {})", chunk, layout.vpp()));
    if (b < 1) throw Error(fmt::format("gpt plan: micro batch size {} < 1", b));
    check_countable(o_, b);
    const std::int64_t t = layout.tp(), p = layout.pp(), v = layout.vpp();
    const std::int64_t virtual_stage = chunk * p + layout.pp_rank(), virtual_stages = p * v;
    const std::int64_t per = o_.num_layers / virtual_stages, first_layer = virtual_stage * per;
    const bool first = virtual_stage == 0, last = virtual_stage == virtual_stages - 1;

    const std::int64_t h = o_.hidden_size, H = o_.num_attention_heads, D = h / H, F = o_.ffn_hidden_size;
    const std::int64_t g = query_groups(), T = o_.seq_length, N = b * T, Vt = o_.padded_vocab_size / t;
    const bool replicated_kv = g < t;  // MQA under tp: one K/V head on every rank
    const bool sp = sizes_.sequence_parallel && t > 1;
    const std::int64_t Ns = sp ? N / t : N;  // token rows held between tensor-parallel regions
    const std::int64_t kv = 2 * (replicated_kv ? 1 : g / t) * D;

    ModelChunkCost c;
    c.contents = per == 1 ? fmt::format("layer {}", first_layer)
                          : fmt::format("layers {}–{}", first_layer, first_layer + per - 1);
    if (first) c.contents += ", embeddings";
    if (last) c.contents += first ? ", final norm, LM head" : ", final norm, LM head (tied copy)";

    const std::int64_t layer_params = 2 * h + (h / t) * h + h / t + kv * h + kv + h * (h / t) + h + 2 * h +
                                      (F / t) * h + F / t + h * (F / t) + h;
    c.parameters = per * layer_params;
    c.parameter_tensors = 14 * per;
    if (first) {
      c.parameters += Vt * h + o_.max_position_embeddings * h;
      c.parameter_tensors += 2;
    }
    if (last) {
      c.parameters += 2 * h;
      c.parameter_tensors += 2;
      if (!first) {
        c.parameters += Vt * h;
        c.parameter_tensors += 1;
      }
    }
    if (!(first && last) && (first || last)) c.tied_embedding_grads = {1, Vt * h};
    if (t > 1 && replicated_kv) c.tp_replicated_grads = {2 * per, per * (kv * h + kv)};
    if (sp) {  // norms (and the position embedding) see only this rank's tokens
      c.tp_replicated_grads += {4 * per, per * 4 * h};
      if (first) c.tp_replicated_grads += {1, o_.max_position_embeddings * h};
      if (last) c.tp_replicated_grads += {2, 2 * h};
    }

    const bool selective = o_.recompute_granularity == "selective";
    // Under sequence parallelism ln1, ln2 and fc1 keep only this rank's Ns rows; attention keeps the
    // gathered N rows it projects.
    const std::int64_t layer_saved = 2 * (Ns * h + 2 * Ns) + N * h + Ns * h + 2 * N * h / t + N * kv +
                                     (selective ? 0 : b * (H / t) * T) + 2 * N * F / t;
    // Full recompute: groups checkpointed (each keeps its input) and layers recomputed.
    std::int64_t groups = 0, recomputed = 0;
    if (o_.recompute_granularity == "full") {
      const std::int64_t k = o_.recompute_num_layers;
      groups = o_.recompute_method == "uniform" ? per / k : k;
      recomputed = o_.recompute_method == "uniform" ? per : k;
    }
    c.activation_elements = (per - recomputed) * layer_saved + groups * Ns * h + (first ? N + Ns : 0) +
                            (last ? 2 * Ns * h + 2 * Ns : 0);
    c.output_elements = last ? 0 : Ns * h;

    if (sp) {
      // Per layer: forward gathers attention's and fc1's input and reduce-scatters the outputs of
      // attention and MLP; backward mirrors that and gathers fc1's saved input shard again. The
      // embedding reduce-scatters its output and gathers its output gradient (every vocabulary
      // shard needs every row's); the head gathers its input and reduce-scatters its gradient.
      const CollectiveCount rows{1, N * h};
      c.tp_all_gather = times(rows, 5 * per + 2 * recomputed + (first ? 1 : 0) + (last ? 1 : 0));
      c.tp_reduce_scatter = times(rows, 4 * per + 2 * recomputed + (first ? 1 : 0) + (last ? 1 : 0));
      if (last) {
        const std::int64_t chunks = (N + head_chunk_rows(Vt) - 1) / head_chunk_rows(Vt);
        c.tp_loss_statistics = {2 * chunks, 3 * N};
      }
    } else if (t > 1) {
      c.tp_forward = {2 * per, 2 * per * N * h};
      c.tp_backward = {2 * per, 2 * per * N * h};
      c.tp_recompute = {2 * recomputed, 2 * recomputed * N * h};
      if (first) c.tp_forward += {1, N * h};
      if (last) {
        c.tp_forward += {1, N * h};
        const std::int64_t chunks = (N + head_chunk_rows(Vt) - 1) / head_chunk_rows(Vt);
        c.tp_loss_statistics = {2 * chunks, 3 * N};
      }
    }
    return c;
  }

  std::int64_t total_parameters() const override {
    check_countable(o_, 1);
    const std::int64_t h = o_.hidden_size, F = o_.ffn_hidden_size, D = h / o_.num_attention_heads;
    const std::int64_t kv = 2 * query_groups() * D;
    const std::int64_t layer = 2 * h + h * h + h + kv * h + kv + h * h + h + 2 * h + F * h + F + h * F + h;
    return o_.num_layers * layer + o_.padded_vocab_size * h + o_.max_position_embeddings * h + 2 * h;
  }

  std::int64_t seq_length() const override { return o_.seq_length; }

  double flops_per_iteration(std::int64_t sequences) const override { return gpt_flops_per_iteration(o_, sequences); }

  std::string describe() const override {
    return fmt::format("GPT: {} layers, hidden {}, {} heads ({} query groups), ffn {}, seq {}, vocab {} (padded {})",
                       o_.num_layers, o_.hidden_size, o_.num_attention_heads, query_groups(), o_.ffn_hidden_size,
                       o_.seq_length, o_.vocab_size, o_.padded_vocab_size);
  }

 private:
  std::int64_t query_groups() const { return o_.num_query_groups > 0 ? o_.num_query_groups : o_.num_attention_heads; }

  GptOptions o_;
  ParallelSizes sizes_;
};

std::unique_ptr<ModelPlanner> make_gpt_plan(const ConfigSection& s, const ModelPlanContext& context) {
  return std::make_unique<GptPlanner>(s, context);
}

}  // namespace
}  // namespace tessera::gpt

TESSERA_PLUGIN(model_plan, gpt, tessera::gpt::make_gpt_plan)
