// `tessera plan`'s figures (train/plan.hpp, plugins/gpt/gpt_plan.cpp, plugins/bert/bert_plan.cpp)
// against the implementation itself, exactly, for every pipeline stage and tensor-parallel rank of
// several layouts — in one process, without MPI:
//
// Each (stage, tp rank) of a layout gets the real GPT (or BERT) model, built through the plugin with a
// Parallel whose groups are shape-only communicators: they have the layout's sizes and ranks, do
// nothing to the data (reductions are identities, receives give zeros) and count every call and
// element. One real iteration (run_iteration: the schedule's steps through the pipeline executor,
// the tp/embedding/dp reductions, the grad norm, an Adam step) then measures on that rank what the
// plan predicts: parameters and optimizer state, the executor's peak held microbatches and
// elements, and the calls and elements of every collective per group. The values computed are
// wrong (nothing is summed), the sizes and counts are exactly a real run's.
//
// Also: the plan's whole-model parameter count and FLOPs equal the one-process model's, and for
// pp = 1 the trainer's TrainingRecord::peak_held_elements equals the prediction. The stage-0
// figures against `tessera train`'s log lines under mpirun: tests/parallel/check_plan.py.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <tuple>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "expect_error.hpp"
#include "tessera/config.hpp"
#include "test_util.hpp"
#include "tessera/data/indexed_dataset.hpp"
#include "tessera/logging.hpp"
#include "tessera/model.hpp"
#include "tessera/optimizer.hpp"
#include "tessera/plugin.hpp"
#include "tessera/schedule.hpp"
#include "tessera/train/components.hpp"
#include "tessera/train/grad_buckets.hpp"
#include "tessera/train/memory_check.hpp"
#include "tessera/train/iteration.hpp"
#include "tessera/train/plan.hpp"
#include "tessera/train/trainer.hpp"
#include "training_corpus.hpp"
#include "gpt_batch.hpp"
#include "t5_batch.hpp"
#include "shape_only_communicator.hpp"

using namespace tessera;
using test::ShapeOnlyCommunicator;
using test::Tally;

namespace {

std::shared_ptr<const Parallel> shape_only_parallel(const ParallelLayout& layout, const std::shared_ptr<Tally>& tally) {
  auto make = [&](const char* name, GroupKind kind) -> std::shared_ptr<Communicator> {
    const std::vector<int> ranks = layout.group_ranks(kind);
    if (ranks.empty()) return nullptr;  // middle stages are in no embedding group
    const int rank = static_cast<int>(std::find(ranks.begin(), ranks.end(), layout.rank()) - ranks.begin());
    return std::make_shared<ShapeOnlyCommunicator>(name, rank, static_cast<int>(ranks.size()), tally);
  };
  ProcessGroups groups;
  groups.world = std::make_shared<ShapeOnlyCommunicator>("world", layout.rank(), layout.world_size(), tally);
  groups.tp = make("tp", GroupKind::tp);
  groups.dp = make("dp", GroupKind::dp);
  groups.pp = make("pp", GroupKind::pp);
  groups.embedding = make("embedding", GroupKind::embedding);
  groups.ep = make("ep", GroupKind::ep);
  groups.expert_dp = make("expert_dp", GroupKind::expert_dp);
  return std::make_shared<const Parallel>(Parallel{layout, groups});
}

constexpr std::int64_t kVocab = 301;

// The model planned and built: the gpt plugin, bert with or without its binary head (pooler,
// sentence-order loss, token types), or t5 (one stage: encoder of seq_length tokens, decoder of
// kT5DecoderSeq with cross-attention, a decoder one layer shallower than the encoder).
struct TestModel {
  std::string plugin;
  bool binary_head = true;  // bert only
  std::string name() const { return plugin == "bert" && !binary_head ? "bert without binary head" : plugin; }
};
const TestModel kGpt{"gpt"}, kBert{"bert"}, kBertNoBinaryHead{"bert", false}, kT5{"t5"};
constexpr std::int64_t kT5DecoderSeq = 8;

std::string config_text(const TestModel& model, std::int64_t heads, std::int64_t groups, int tp, int pp,
                        std::int64_t micro, std::int64_t global, const std::string& recompute = "", bool sp = false,
                        int split = 0, std::int64_t first_stage_layers = 0, bool counted = false, int ep = 1,
                        int etp = 0) {
  std::string own = model.plugin == "bert" ? fmt::format("bert_binary_head = {}\n", model.binary_head) : "";
  if (model.plugin == "t5") own = fmt::format("decoder_num_layers = 3\ndecoder_seq_length = {}\n", kT5DecoderSeq);
  // T5 is multi-head only and reads no num_query_groups.
  const std::string query_groups = model.plugin == "t5" ? "" : fmt::format("num_query_groups = {}\n", groups);
  return fmt::format(R"(
[model]
plugin = "{}"
{}num_layers = 4
hidden_size = 32
num_attention_heads = {}
{}ffn_hidden_size = 48
seq_length = 12
max_position_embeddings = 20
hidden_dropout = 0.1
make_vocab_size_divisible_by = 16
{}
[parallel]
tensor_model_parallel_size = {}
pipeline_model_parallel_size = {}
pipeline_model_parallel_split_rank = {}
sequence_parallel = {}
decoder_first_pipeline_num_layers = {}
account_for_embedding_in_pipeline_split = {}
account_for_loss_in_pipeline_split = {}
expert_model_parallel_size = {}
{}
[training]
micro_batch_size = {}
global_batch_size = {}
[optimizer]
plugin = "adam"
{}
)", model.plugin, own, heads, query_groups, recompute, tp, pp, split, sp, first_stage_layers, counted, counted, ep,
                     etp > 0 ? fmt::format("expert_tensor_parallel_size = {}", etp) : "", micro,
                     global,
                     pp > 1 ? "[schedule]\nplugin = \"1f1b\"" : "");  // core has no default schedule
}

Batch random_batch(const TestModel& model, std::int64_t B, std::int64_t T, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> token(0, kVocab - 1);
  if (model.plugin == "gpt") {
    Batch b = gpt_batch(Tensor::empty({B, T}, DType::i32), Tensor::empty({B, T}, DType::i32),
                        Tensor::full({B, T}, 1.0f));
    for (std::int64_t i = 0; i < B * T; ++i) {
      b.get("tokens").data<std::int32_t>()[i] = token(rng);
      b.get("labels").data<std::int32_t>()[i] = token(rng);
    }
    return b;
  }
  if (model.plugin == "t5") {
    // As tests/model/test_t5_reference.cpp: encoder rows of T/2 … T real tokens and decoder rows of
    // Sd/2 … Sd, then padding (id 0); real decoder positions predicted, padding labelled −1, mask 0.
    const std::int64_t Sd = kT5DecoderSeq;
    std::vector<std::int64_t> enc_lengths, dec_lengths;
    for (std::int64_t b = 0; b < B; ++b) {
      enc_lengths.push_back(std::uniform_int_distribution<std::int64_t>(T / 2, T)(rng));
      dec_lengths.push_back(std::uniform_int_distribution<std::int64_t>(Sd / 2, Sd)(rng));
    }
    return t5_padded_batch(enc_lengths, dec_lengths, T, Sd, token, rng);
  }
  // BERT (tests/model/test_bert_reference.cpp): sequences of T/2 … T real tokens, then padding;
  // labels −1 (Megatron's "not predicted") outside the predicted positions, which the loss mask keeps;
  // token types 0 then 1 over the real tokens; the sentence-order target per sequence.
  Tensor tokens = Tensor::zeros({B, T}, DType::i32), labels = Tensor::zeros({B, T}, DType::i32);
  Tensor loss_mask = Tensor::zeros({B, T}), padding = Tensor::zeros({B, T}, DType::u8);
  Tensor types = Tensor::zeros({B, T}, DType::i32), is_random = Tensor::zeros({B, 1}, DType::i32);
  std::uniform_int_distribution<std::int64_t> length(T / 2, T);
  std::bernoulli_distribution predicted(0.25);
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t n = length(rng);
    is_random.data<std::int32_t>()[b] = static_cast<std::int32_t>(rng() % 2);
    for (std::int64_t t = 0; t < T; ++t) {
      const std::int64_t i = b * T + t;
      const bool real = t < n, masked = real && (t == 1 || predicted(rng));
      tokens.data<std::int32_t>()[i] = real ? token(rng) : 0;
      padding.data<std::uint8_t>()[i] = real ? 1 : 0;
      types.data<std::int32_t>()[i] = real && t >= n / 2 ? 1 : 0;
      labels.data<std::int32_t>()[i] = masked ? token(rng) : -1;
      loss_mask.data<float>()[i] = masked ? 1.0f : 0.0f;
    }
  }
  Batch batch;
  batch.set("tokens", tokens);
  batch.set("labels", labels);
  batch.set("loss_mask", loss_mask);
  batch.set("padding_mask", padding);
  if (model.binary_head) {
    batch.set("types", types);
    batch.set("is_random", is_random);
  }
  return batch;
}

// Every (stage, tp rank) of tp × pp × dp against the plan.
// T5 under pipeline parallelism splits at `split` (encoder stages [0, split)); GPT and BERT may put
// `first_stage_layers` of their 4 on the first stage (uneven stages), or count the embedding and loss
// as layers of the split (`counted`). With expert parallelism (`ep`) the shape-only all-gathers hand
// back zeros, so every other rank's token rows route to expert 0: the dispatch (and so the held
// activations) is not the even one the plan assumes, and those are not compared; every parameter,
// optimizer state and collective is.
void check_layout(const TestModel& model_kind, std::int64_t heads, std::int64_t groups, int tp, int pp, int dp,
                  std::int64_t micro, std::int64_t global, const std::string& recompute = "", bool sp = false,
                  int split = 0, std::int64_t first_stage_layers = 0, bool counted = false, int ep = 1,
                  int etp = 0) {
  INFO(fmt::format("{}: heads {} groups {} tp {} pp {} dp {} micro {} global {} {} sp {} split {} first stage {} "
                   "embedding and loss counted {}",
                   model_kind.name(), heads, groups, tp, pp, dp, micro, global, recompute, sp, split,
                   first_stage_layers, counted));
  const std::string text =
      config_text(model_kind, heads, groups, tp, pp, micro, global, recompute, sp, split, first_stage_layers, counted, ep, etp);
  const int world = tp * pp * dp;
  const Plan plan = make_plan(Config::from_string(text), PlanRequest{world, kVocab});
  REQUIRE(plan.stages.size() == static_cast<std::size_t>(pp));
  const std::int64_t m = plan.num_microbatches;
  REQUIRE(m == global / (micro * dp));
  const ParallelSizes sizes{tp, pp, 1, sp, split, first_stage_layers, 0, counted, counted, ep, etp == tp ? 0 : etp};
  const ParallelLayout any = ParallelLayout::make(0, world, sizes);

  for (int stage = 0; stage < pp; ++stage)
    for (int r = 0; r < tp; ++r) {
      INFO(fmt::format("stage {} tp rank {}", stage, r));
      const StagePlan& sp = plan.stages[stage];
      const Config config = Config::from_string(text);
      const ParallelLayout layout = ParallelLayout::make(any.world_rank_of(r, 0, stage), world, sizes);
      auto tally = std::make_shared<Tally>();
      auto parallel = shape_only_parallel(layout, tally);
      PluginPtr<Model> model = build_model(config, kVocab, 7, parallel);
      std::vector<Parameter*> params;
      model->collect_parameters(params);
      // As the trainer: with dp > 1 the grads become views into the bucket buffer before the optimizer is built.
      std::unique_ptr<GradBuckets> buckets;
      if (layout.dp() > 1) buckets = std::make_unique<GradBuckets>(params, 40000000, layout.tp() > 1, layout.dp());
      PluginPtr<Optimizer> optimizer = build_optimizer(config, params, OptimizerContext{parallel, buckets.get()});
      PluginPtr<Schedule> schedule = build_schedule(config, layout);

      // Memory: parameters (and their tensors, tied copies, tp-replicated grads), optimizer state.
      CHECK(count_elements(params) == sp.parameters);
      CHECK(optimizer->state_elements() == sp.optimizer_state);
      std::int64_t tensors = 0, tied = 0, replicated = 0;
      for (const ModelChunkCost& c : sp.chunks) {
        tensors += c.parameter_tensors;
        tied += c.tied_embedding_grads.elements;
        replicated += c.tp_replicated_grads.elements;
      }
      std::int64_t measured_tied = 0, measured_replicated = 0;
      for (const Parameter* p : params) {
        if (p->stage_tie != Parameter::StageTie::none) measured_tied += p->value.numel();
        if (p->reduce_grad_over_tp && tp > 1) measured_replicated += p->value.numel();
      }
      CHECK(static_cast<std::int64_t>(params.size()) == tensors);
      CHECK(measured_tied == tied);
      CHECK(measured_replicated == replicated);
      // What the plan's pp sends carry (under sequence parallelism this rank's token rows; T5's
      // decoder stages send the decoder's hidden state and the encoder output).
      if (stage < pp - 1) {
        const std::vector<TensorSpec> boundary = model->stage_boundary(micro, stage);
        std::int64_t elements = 0;
        for (const TensorSpec& spec : boundary) {
          CHECK(spec.dtype == DType::f32);
          elements += shape_numel(spec.shape);
        }
        CHECK(static_cast<std::int64_t>(boundary.size()) == sp.chunks.at(0).output_tensors);
        CHECK(elements == sp.chunks.at(0).output_elements);
        if (model_kind.plugin != "t5")
          CHECK(boundary.at(0).shape == (sizes.sequence_parallel && tp > 1 ? Shape{micro * plan.seq_length / tp, 32}
                                                                           : Shape{micro, plan.seq_length, 32}));
      }

      // One iteration: held activations and every collective.
      IterationSettings s;
      s.num_microbatches = m;
      s.micro_batch_size = micro;
      s.lr = 1e-3;
      const auto batch = [&](std::int64_t k) {
        return random_batch(model_kind, micro, plan.seq_length, static_cast<unsigned>(k));
      };
      const IterationResult result =
          run_iteration(*model, params, *optimizer, batch, s, *parallel, schedule.get(), buckets.get());
      CHECK(result.peak_microbatches_held == sp.peak_passes_held);
      if (ep == 1 && etp == 0) {  // else a rank's expert rows depend on the routing
        CHECK(result.peak_held_elements == sp.peak_held_elements);
        CHECK(result.peak_held_elements == sp.peak_passes_held * sp.activation_elements);
      }

      Tally predicted;
      for (const PlanTraffic& t : sp.traffic) predicted[{t.group, t.op}] += t.count;
      // Receives mirror the neighbours' sends; the world group is not used by an iteration.
      Tally measured;
      // The all-to-all token dispatcher's point-to-point rows depend on the routing, which the plan
      // does not count (its routing collectives it does).
      const bool alltoall = recompute.find("alltoall") != std::string::npos;
      for (const auto& [key, count] : *tally)
        if (key.second != "recv" && key.first != "world" && !(alltoall && key == std::pair<std::string, std::string>{"ep", "send"}))
          measured[key] = count;
      for (const auto& [key, count] : predicted) {
        INFO(key.first << " " << key.second);
        if (key.first == "dp" || key.first == "expert_dp") {
          // The plan counts gradient elements; buckets send each gradient padded to a 16-element
          // (64-byte) boundary, and group them into fewer calls.
          CHECK(measured[key].elements >= count.elements);
          CHECK(measured[key].elements - count.elements < 16 * tensors);
        } else {
          CHECK(measured[key].elements == count.elements);
          CHECK(measured[key].calls == count.calls);
        }
      }
      for (const auto& [key, count] : measured) {
        INFO("measured but not predicted: " << key.first << " " << key.second);
        CHECK(predicted.count(key) == 1);
      }
    }
}

}  // namespace

TEST_CASE("the plan equals every stage and tp rank of the model, measured in one process", "[unit]") {
  log_state().level = LogLevel::warn;
  SECTION("one process, gradient accumulation") { check_layout(kGpt, 4, 4, 1, 1, 1, 2, 6); }
  SECTION("dp 2") { check_layout(kGpt, 4, 2, 1, 1, 2, 2, 8); }
  SECTION("pp 2, MQA") { check_layout(kGpt, 4, 1, 1, 2, 1, 2, 8); }
  SECTION("pp 4, fewer microbatches than stages") { check_layout(kGpt, 4, 4, 1, 4, 1, 1, 3); }
  SECTION("tp 2, MHA") { check_layout(kGpt, 4, 4, 2, 1, 1, 2, 4); }
  SECTION("tp 2 · pp 2 · dp 2, MQA (K/V replicated over tp)") { check_layout(kGpt, 4, 1, 2, 2, 2, 1, 8); }
  SECTION("tp 4 · pp 2, GQA 8 heads / 4 groups") { check_layout(kGpt, 8, 4, 4, 2, 1, 2, 6); }
  SECTION("tp 2 · pp 4, GQA 4 heads / 2 groups, micro 3") { check_layout(kGpt, 4, 2, 2, 4, 1, 3, 15); }
  SECTION("sequence parallel: tp 2, MHA") { check_layout(kGpt, 4, 4, 2, 1, 1, 2, 4, "", true); }
  SECTION("sequence parallel: tp 2 · pp 2 · dp 2, MQA") { check_layout(kGpt, 4, 1, 2, 2, 2, 1, 8, "", true); }
  SECTION("sequence parallel: tp 4 · pp 2, GQA") { check_layout(kGpt, 8, 4, 4, 2, 1, 2, 6, "", true); }
  SECTION("sequence parallel with full recompute, tp 2 · pp 2") {
    check_layout(kGpt, 4, 4, 2, 2, 1, 2, 8, "recompute_granularity = \"full\"\nrecompute_method = \"uniform\"", true);
  }
  SECTION("sequence parallel with selective recompute, tp 2") {
    check_layout(kGpt, 4, 2, 2, 1, 1, 2, 4, "recompute_granularity = \"selective\"", true);
  }
  SECTION("uneven stages: 1 + 3 layers, tp 2 · pp 2 · dp 2, sequence parallel") {
    check_layout(kGpt, 4, 2, 2, 2, 2, 1, 8, "", true, 0, 1);
  }
  SECTION("uneven stages: 2 + 1 + 1 layers, pp 3, full recompute") {
    check_layout(kGpt, 4, 4, 1, 3, 1, 1, 6, "recompute_granularity = \"full\"\nrecompute_method = \"uniform\"", false,
                 0, 2);
  }
  SECTION("the embedding and loss counted: 1 + 2 + 1 layers, tp 2 · pp 3, sequence parallel") {
    check_layout(kGpt, 4, 2, 2, 3, 1, 1, 6, "", true, 0, 0, true);
  }
}

TEST_CASE("the plan equals the model with activation recompute", "[unit]") {
  log_state().level = LogLevel::warn;
  const std::string full = "recompute_granularity = \"full\"\nrecompute_method = ";
  SECTION("selective, tp 2 · pp 2") { check_layout(kGpt, 4, 4, 2, 2, 1, 2, 6, "recompute_granularity = \"selective\""); }
  SECTION("full uniform 1, one process") { check_layout(kGpt, 4, 4, 1, 1, 1, 2, 6, full + "\"uniform\""); }
  SECTION("full uniform 2, tp 2 · pp 2, MQA") {
    check_layout(kGpt, 4, 1, 2, 2, 1, 2, 8, full + "\"uniform\"\nrecompute_num_layers = 2");
  }
  SECTION("full uniform 2, tp 2, GQA") { check_layout(kGpt, 4, 2, 2, 1, 1, 1, 3, full + "\"uniform\"\nrecompute_num_layers = 2"); }
  SECTION("full block 1, tp 2 · pp 2") { check_layout(kGpt, 4, 4, 2, 2, 1, 2, 8, full + "\"block\"\nrecompute_num_layers = 1"); }
  SECTION("full uniform with distribute_saved_activations: 1/tp of each group's input, tp 2 · pp 2, tp 4") {
    check_layout(kGpt, 4, 4, 2, 2, 1, 2, 8, full + "\"uniform\"\ndistribute_saved_activations = true");
    check_layout(kGpt, 4, 4, 4, 1, 1, 1, 3,
                 full + "\"block\"\nrecompute_num_layers = 2\ndistribute_saved_activations = true");
  }
  SECTION("recompute_modules: the MLP, with and without the attention core; sequence parallel") {
    const std::string modules = "recompute_granularity = \"selective\"\nrecompute_modules = ";
    check_layout(kGpt, 4, 4, 2, 2, 1, 2, 8, modules + "[\"mlp\"]");
    check_layout(kGpt, 4, 2, 2, 2, 1, 2, 8, modules + "[\"core_attn\", \"mlp\"]", true);
    // Mixture-of-experts layers (layers 1 and 3; a shared expert): the whole layer; the experts'
    // activations and the shared expert; with expert parallelism.
    const std::string moe = "num_experts = 4\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 24\n"
                            "moe_shared_expert_intermediate_size = 16\nmoe_layer_freq = [0, 1, 0, 1]\n";
    check_layout(kGpt, 4, 4, 2, 2, 1, 2, 8, moe + modules + "[\"moe\", \"mlp\"]", true);
    check_layout(kGpt, 4, 4, 2, 1, 1, 2, 4, moe + modules + "[\"moe_act\", \"shared_experts\"]");
    check_layout(kGpt, 4, 4, 1, 1, 2, 2, 8, moe + modules + "[\"moe_act\", \"core_attn\"]", false, 0, 0, false, 2);
  }
  SECTION("full block 3, pp 1") { check_layout(kGpt, 4, 4, 1, 1, 1, 1, 3, full + "\"block\"\nrecompute_num_layers = 3"); }
  SECTION("recompute_modules \"layernorm\": the norms' outputs; sequence parallel; MQA; with the MLPs recomputed") {
    const std::string modules = "recompute_granularity = \"selective\"\nrecompute_modules = ";
    check_layout(kGpt, 4, 4, 2, 2, 1, 2, 8, modules + "[\"layernorm\"]");
    check_layout(kGpt, 4, 2, 2, 2, 1, 2, 8, modules + "[\"core_attn\", \"layernorm\", \"mlp\"]", true);
    check_layout(kGpt, 4, 1, 2, 1, 1, 2, 4, modules + "[\"layernorm\"]", true);  // K/V replicated over tp
    // Mixture-of-experts layers keep their input unless recomputed whole.
    const std::string moe = "num_experts = 4\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 24\n"
                            "moe_shared_expert_intermediate_size = 16\nmoe_layer_freq = [0, 1, 0, 1]\n";
    check_layout(kGpt, 4, 4, 2, 2, 1, 2, 8, moe + modules + "[\"layernorm\", \"moe\", \"mlp\"]", true);
    check_layout(kGpt, 4, 4, 2, 1, 1, 2, 4, moe + modules + "[\"layernorm\", \"moe_act\"]", true);
  }
}

TEST_CASE("the BERT plan equals every stage and tp rank of the model, measured in one process", "[unit]") {
  // Padding-masked encoder (the block keeps its key mask), token types on the first stage, the LM
  // transform + bias, pooler and binary head on the last, whose input gradient is all-reduced over
  // tp even under sequence parallelism (plugins/bert/bert_plan.cpp).
  log_state().level = LogLevel::warn;
  SECTION("one process, gradient accumulation") { check_layout(kBert, 4, 4, 1, 1, 1, 2, 6); }
  SECTION("dp 2") { check_layout(kBert, 4, 4, 1, 1, 2, 2, 8); }
  SECTION("pp 2") { check_layout(kBert, 4, 4, 1, 2, 1, 2, 8); }
  SECTION("tp 2") { check_layout(kBert, 4, 4, 2, 1, 1, 2, 4); }
  SECTION("tp 2 · pp 2 · dp 2") { check_layout(kBert, 4, 4, 2, 2, 2, 1, 8); }
  SECTION("sequence parallel: tp 2") { check_layout(kBert, 4, 4, 2, 1, 1, 2, 4, "", true); }
  SECTION("sequence parallel: tp 2 · pp 2 · dp 2") { check_layout(kBert, 4, 4, 2, 2, 2, 1, 8, "", true); }
  SECTION("full recompute, tp 2 · pp 2") {
    check_layout(kBert, 4, 4, 2, 2, 1, 2, 8, "recompute_granularity = \"full\"\nrecompute_method = \"uniform\"");
  }
  SECTION("selective recompute, sequence parallel tp 2") {
    check_layout(kBert, 4, 4, 2, 1, 1, 2, 4, "recompute_granularity = \"selective\"", true);
  }
  SECTION("without the binary head: tp 2 · pp 2, sequence parallel") {
    check_layout(kBertNoBinaryHead, 4, 4, 2, 2, 1, 2, 8, "", true);
  }
  SECTION("without the binary head: one process") { check_layout(kBertNoBinaryHead, 4, 4, 1, 1, 1, 2, 6); }
  SECTION("uneven stages: 3 + 1 layers, tp 2 · pp 2") { check_layout(kBert, 4, 4, 2, 2, 1, 2, 8, "", false, 0, 3); }
  SECTION("the embedding and loss counted: 1 + 2 + 1 layers, pp 3") {
    check_layout(kBert, 4, 4, 1, 3, 1, 2, 8, "", false, 0, 0, true);
  }
}

TEST_CASE("the T5 plan equals every tp rank of the model, measured in one process", "[unit]") {
  // One stage: both sequences embedded in one lookup, the padded encoder (its key mask kept), the
  // decoder with cross-attention (the encoder output kept, its gradient all-reduced over tp), the
  // tied head with its bias over the decoder's rows (plugins/t5/t5_plan.cpp).
  log_state().level = LogLevel::warn;
  const std::string full = "recompute_granularity = \"full\"\nrecompute_method = ";
  SECTION("one process, gradient accumulation") { check_layout(kT5, 4, 4, 1, 1, 1, 2, 6); }
  SECTION("dp 2") { check_layout(kT5, 4, 4, 1, 1, 2, 2, 8); }
  SECTION("tp 2") { check_layout(kT5, 4, 4, 2, 1, 1, 2, 4); }
  SECTION("tp 2 · dp 2") { check_layout(kT5, 4, 4, 2, 1, 2, 1, 4); }
  SECTION("full uniform recompute, tp 2") { check_layout(kT5, 4, 4, 2, 1, 1, 2, 4, full + "\"uniform\""); }
  SECTION("full block 2 recompute, one process") {
    check_layout(kT5, 4, 4, 1, 1, 1, 2, 4, full + "\"block\"\nrecompute_num_layers = 2");
  }
  SECTION("kv_channels 12 (heads wider than h / heads), tp 2") { check_layout(kT5, 4, 4, 2, 1, 1, 2, 4, "kv_channels = 12"); }
  SECTION("selective recompute, tp 2") { check_layout(kT5, 4, 4, 2, 1, 1, 2, 4, "recompute_granularity = \"selective\""); }
  SECTION("the norms' outputs recomputed (cross-attention's too), tp 2") {
    check_layout(kT5, 4, 4, 2, 1, 1, 2, 4,
                 "recompute_granularity = \"selective\"\nrecompute_modules = [\"core_attn\", \"layernorm\", \"mlp\"]");
  }
  // Pipeline splits (4 encoder, 3 decoder layers): the split rank is also the last stage; a decoder
  // stage in the middle and the head's stage holding tied copies only; an encoder stage that ends the
  // encoder after receiving its input.
  SECTION("pp 2, split 1") { check_layout(kT5, 4, 4, 1, 2, 1, 2, 8, "", false, 1); }
  SECTION("pp 4, split 1, fewer microbatches than stages") { check_layout(kT5, 4, 4, 1, 4, 1, 1, 3, "", false, 1); }
  SECTION("pp 3, split 2") { check_layout(kT5, 4, 4, 1, 3, 1, 2, 8, "", false, 2); }
  SECTION("tp 2 · pp 2 · dp 2, split 1") { check_layout(kT5, 4, 4, 2, 2, 2, 1, 8, "", false, 1); }
  SECTION("full uniform recompute, tp 2 · pp 4, split 1") {
    check_layout(kT5, 4, 4, 2, 4, 1, 2, 6, full + "\"uniform\"", false, 1);
  }
}

TEST_CASE("the plan's whole-model parameters and FLOPs are the one-process model's", "[unit]") {
  const std::vector<std::tuple<TestModel, int, int>> models = {{kGpt, 4, 4},  {kGpt, 4, 1},
                                                                {kGpt, 8, 2},  {kBert, 4, 4},
                                                                {kBert, 8, 8}, {kBertNoBinaryHead, 4, 4},
                                                                {kT5, 4, 4},   {kT5, 8, 8}};
  for (const auto& [kind, heads, groups] : models) {
    INFO(kind.name() << " heads " << heads << " groups " << groups);
    const std::string text = config_text(kind, heads, groups, 1, 1, 2, 6);
    const Plan plan = make_plan(Config::from_string(text), PlanRequest{1, kVocab});
    PluginPtr<Model> model = build_model(Config::from_string(text), kVocab, 7);
    std::vector<Parameter*> params;
    model->collect_parameters(params);
    CHECK(plan.total_parameters == count_elements(params));
    CHECK(plan.stages.at(0).parameters == count_elements(params));
    CHECK(plan.flops_per_iteration == model->flops_per_iteration(6));
  }
}

TEST_CASE("the plan of a pp = 1 run equals the trainer's TrainingRecord::peak_held_elements", "[unit]") {
  log_state().level = LogLevel::warn;
  const std::string recompute = GENERATE(std::string(""), std::string("recompute_granularity = \"selective\""),
                                         std::string("recompute_granularity = \"full\"\nrecompute_method = \"block\"\nrecompute_num_layers = 2"));
  INFO(recompute);
  const std::string text = small_gpt_sections(3, recompute) + R"(
[training]
micro_batch_size = 3
global_batch_size = 9
train_iters = 2
num_threads = 1
[optimizer]
plugin = "adam"
)";
  const Plan plan = make_plan(Config::from_string(text), PlanRequest{1, 0});  // vocabulary from the byte tokenizer
  CHECK(plan.vocab_size == 257);
  Trainer trainer(Config::from_string(text));
  std::vector<Parameter*> params;
  trainer.model().collect_parameters(params);
  CHECK(count_elements(params) == plan.stages.at(0).parameters);
  const TrainingRecord rec = trainer.train();
  CHECK(rec.peak_microbatches_held == 1);
  CHECK(rec.peak_held_elements == plan.stages.at(0).peak_held_elements);
  CHECK(rec.flops == plan.flops_per_iteration * 2);
}

TEST_CASE("the optimizer plugin reports its plan: state per rank and data-parallel traffic", "[unit]") {
  const std::string adam = config_text(kGpt, 4, 4, 1, 1, 2, 8);
  const auto with_optimizer = [&](const std::string& name) {
    std::string text = adam;
    text.replace(text.find("plugin = \"adam\""), 15, "plugin = \"" + name + "\"");
    return make_plan(Config::from_string(text), PlanRequest{2, kVocab});  // dp = 2
  };
  const auto dp_traffic = [](const StagePlan& st) {
    std::vector<PlanTraffic> out;
    for (const PlanTraffic& t : st.traffic)
      if (t.group == "dp" && t.what.find("scalar") == std::string::npos) out.push_back(t);
    return out;
  };
  const Plan a = with_optimizer("adam");
  const StagePlan& sa = a.stages.at(0);
  CHECK(sa.optimizer_state == 2 * sa.parameters);
  REQUIRE(dp_traffic(sa).size() == 1);
  CHECK(dp_traffic(sa)[0].op == "all_reduce");
  CHECK(dp_traffic(sa)[0].count.elements == sa.parameters);

  const Plan d = with_optimizer("distributed_adam");
  const StagePlan& sd = d.stages.at(0);
  CHECK(d.optimizer_state_rule.find("/ dp") != std::string::npos);
  CHECK(sd.optimizer_state == 2 * ((sd.parameters + 1) / 2));
  const auto traffic = dp_traffic(sd);
  REQUIRE(traffic.size() == 2);
  CHECK(traffic[0].op == "reduce_scatter");
  CHECK(traffic[1].op == "all_gather");
  CHECK(traffic[1].count.elements == sd.parameters);

  // An optimizer whose library exports no plan: no state predicted, and it says so.
  const Plan n = with_optimizer("no_plan_optimizer");
  CHECK(n.optimizer_state_rule == "not predicted");
  CHECK(n.stages.at(0).optimizer_state == 0);
  CHECK(std::any_of(n.notes.begin(), n.notes.end(), [](const std::string& s) {
    return s.find("optimizer plugin 'no_plan_optimizer'") != std::string::npos;
  }));
}

TEST_CASE("a model of one stack of layers refuses a pipeline split rank, in its plan and when built", "[unit]") {
  for (const char* plugin : {"gpt", "bert"}) {
    INFO(plugin);
    const std::string text = config_text(TestModel{plugin}, 4, 4, 1, 2, 1, 2, "", false, /*split=*/1);
    CHECK_THROWS_WITH(make_plan(Config::from_string(text), PlanRequest{2, kVocab}),
                      Catch::Contains("pipeline_model_parallel_split_rank (1) is for encoder-decoder models") &&
                          Catch::Contains(std::string("model plugin '") + plugin + "'"));
    const ParallelLayout layout = ParallelLayout::make(0, 2, ParallelSizes{1, 2, 1, false, 1});
    CHECK_THROWS_WITH(build_model(Config::from_string(text), kVocab, 7, shape_only_parallel(layout, std::make_shared<Tally>())),
                      Catch::Contains("is for encoder-decoder models"));
  }
}

namespace {
// Llama-style [model] keys (docs/llama.md) on config_text's 4-layer, h 32, ffn 48 GPT.
const std::string kLlamaKeys =
    "position_embedding_type = \"rope\"\nnormalization = \"RMSNorm\"\nswiglu = true\n"
    "untie_embeddings_and_output_weights = true\nadd_bias_linear = false";
}  // namespace

TEST_CASE("the plan equals every stage and tp rank of a Llama-style GPT, measured in one process", "[unit]") {
  SECTION("one process") { check_layout(kGpt, 4, 2, 1, 1, 1, 2, 6, kLlamaKeys); }
  SECTION("tp 2, GQA") { check_layout(kGpt, 4, 2, 2, 1, 1, 2, 4, kLlamaKeys); }
  SECTION("pp 2: untied output layer on the last stage, no tied copy") { check_layout(kGpt, 4, 2, 1, 2, 1, 2, 8, kLlamaKeys); }
  SECTION("tp 2 · pp 2 · dp 2, MQA") { check_layout(kGpt, 4, 1, 2, 2, 2, 1, 8, kLlamaKeys); }
  SECTION("sequence parallel: tp 2 · pp 2") { check_layout(kGpt, 4, 2, 2, 2, 1, 2, 8, kLlamaKeys, true); }
  SECTION("rope only, tied, biases: tp 2 · pp 2") {
    check_layout(kGpt, 4, 4, 2, 2, 1, 2, 8, "position_embedding_type = \"rope\"\nrotary_percent = 0.5");
  }
  SECTION("q/k norms (qk_layernorm): tp 2, GQA; MQA with K replicated; sequence parallel with pp") {
    check_layout(kGpt, 4, 2, 2, 1, 1, 2, 4, kLlamaKeys + "\nqk_layernorm = true");
    check_layout(kGpt, 4, 1, 2, 1, 1, 2, 4, "qk_layernorm = true");
    check_layout(kGpt, 4, 2, 2, 2, 1, 2, 8, kLlamaKeys + "\nqk_layernorm = true", true);
  }
  SECTION("squared ReLU MLP: tp 2 · pp 2, sequence parallel") {
    check_layout(kGpt, 4, 4, 2, 2, 1, 2, 8, "squared_relu = true", true);
  }
  SECTION("mixture of experts: one process; tp 2 · pp 2; sequence parallel; SwiGLU experts") {
    const std::string moe = "num_experts = 4\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 24";
    check_layout(kGpt, 4, 4, 1, 1, 1, 2, 4, moe);
    check_layout(kGpt, 4, 4, 2, 2, 1, 2, 8, moe);
    check_layout(kGpt, 4, 2, 2, 2, 1, 2, 8, moe, true);
    check_layout(kGpt, 4, 2, 2, 1, 1, 2, 4, kLlamaKeys + "\nnum_experts = 3\nmoe_router_topk = 1", true);
    // Dense and MoE layers mixed (moe_layer_freq), over pipeline stages.
    check_layout(kGpt, 4, 4, 2, 2, 1, 2, 8, moe + "\nmoe_layer_freq = 3");
    check_layout(kGpt, 4, 4, 1, 2, 1, 2, 8, moe + "\nmoe_layer_freq = [0, 1, 1, 0]", true);
    // A shared expert (its input the layer's rows, held once), tp with and without sequence parallelism.
    check_layout(kGpt, 4, 4, 2, 1, 1, 2, 4, moe + "\nmoe_shared_expert_intermediate_size = 16");
    // Expert parallelism: dp 2 = ep 2; dp 4 with ep 2 (expert gradients over pairs); with tp 2 · pp 2,
    // sequence parallelism and a shared expert.
    check_layout(kGpt, 4, 4, 1, 1, 2, 2, 8, moe, false, 0, 0, false, 2);
    check_layout(kGpt, 4, 4, 1, 1, 4, 2, 16, moe, false, 0, 0, false, 2);
    check_layout(kGpt, 4, 4, 1, 1, 2, 2, 8, moe + "\nmoe_token_dispatcher_type = \"alltoall\"", false, 0, 0, false, 2);
    check_layout(kGpt, 4, 2, 2, 2, 2, 2, 16, moe + "\nmoe_shared_expert_intermediate_size = 16", true, 0, 0, false, 2);
    check_layout(kGpt, 4, 2, 2, 2, 1, 2, 8, moe + "\nmoe_shared_expert_intermediate_size = 16", true);
    check_layout(kGpt, 4, 4, 2, 1, 1, 2, 4, moe + "\nmoe_shared_expert_intermediate_size = 16\nmoe_shared_expert_gate = true");
    // Expert tensor parallel size 1: whole experts spread over the tp ranks (ep = tp), and over tp
    // and dp (ep 4 of tp 2 · dp 2) with sequence parallelism, a shared expert, either dispatcher;
    // an expert ffn that tp does not divide, over pipeline stages.
    check_layout(kGpt, 4, 4, 2, 1, 1, 2, 4, moe, false, 0, 0, false, 2, 1);
    check_layout(kGpt, 4, 2, 2, 1, 2, 2, 8, moe + "\nmoe_shared_expert_intermediate_size = 16", true, 0, 0, false, 4, 1);
    check_layout(kGpt, 4, 2, 2, 1, 2, 2, 8, moe + "\nmoe_token_dispatcher_type = \"alltoall\"", true, 0, 0, false, 4, 1);
    check_layout(kGpt, 4, 4, 2, 2, 2, 2, 16, "num_experts = 4\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 25", false, 0,
                 0, false, 2, 1);
    // ep 1: every tp rank every expert whole, on its share of the rows (tp 4; tp 2 · dp 2 with sequence
    // parallelism), the experts' gradients summed over tp.
    check_layout(kGpt, 8, 4, 4, 1, 1, 2, 4, moe, false, 0, 0, false, 1, 1);
    check_layout(kGpt, 4, 2, 2, 1, 2, 2, 8, moe, true, 0, 0, false, 1, 1);
  }
  SECTION("biases on q, k, v only (add_qkv_bias): tp 2, GQA") {
    check_layout(kGpt, 4, 2, 2, 1, 1, 2, 4, kLlamaKeys + "\nadd_qkv_bias = true");
  }
  SECTION("no position embedding (NoPE): sequence parallel, tp 2 · pp 2") {
    check_layout(kGpt, 4, 4, 2, 2, 1, 2, 8, "position_embedding_type = \"none\"", true);
  }
  SECTION("kv_channels 12 (heads wider than h / heads), tp 2") { check_layout(kT5, 4, 4, 2, 1, 1, 2, 4, "kv_channels = 12"); }
  SECTION("selective recompute, tp 2") {
    check_layout(kGpt, 4, 2, 2, 1, 1, 2, 4, kLlamaKeys + "\nrecompute_granularity = \"selective\"");
  }
  SECTION("kv_channels 12 (heads wider than h / heads), tp 2") {
    check_layout(kGpt, 4, 2, 2, 1, 1, 2, 4, kLlamaKeys + "\nkv_channels = 12");
  }
}

TEST_CASE("the plan equals every stage and tp rank of a GPT with multi-token prediction, measured in one process",
          "[unit]") {
  log_state().level = LogLevel::warn;
  const std::string mtp = "mtp_num_layers = 2";
  SECTION("one process, two depths") { check_layout(kGpt, 4, 4, 1, 1, 1, 2, 6, mtp); }
  SECTION("tp 2, dp 2") { check_layout(kGpt, 4, 2, 2, 1, 2, 2, 8, "mtp_num_layers = 1"); }
  SECTION("pp 2: the last stage's copies of the word and position tables") { check_layout(kGpt, 4, 4, 1, 2, 1, 2, 8, mtp); }
  SECTION("sequence parallel: tp 2 · pp 2, Llama-style (untied: a word-embedding copy only)") {
    check_layout(kGpt, 4, 2, 2, 2, 1, 2, 8, kLlamaKeys + "\n" + mtp, true);
  }
  SECTION("sequence parallel with full recompute, learned positions: tp 2 · pp 2") {
    check_layout(kGpt, 4, 4, 2, 2, 1, 2, 8,
                 mtp + "\nrecompute_granularity = \"full\"\nrecompute_method = \"uniform\"", true);
  }
  SECTION("a mixture-of-experts last layer, so depths of experts: tp 2 · pp 2, sequence parallel") {
    check_layout(kGpt, 4, 4, 2, 2, 1, 2, 8,
                 mtp + "\nnum_experts = 4\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 24\nmoe_layer_freq = [0, 0, 0, 1]",
                 true);
  }
  // mtp_use_repeated_layer: one depth's weights, every depth's activations.
  const std::string repeated = "mtp_num_layers = 3\nmtp_use_repeated_layer = true";
  SECTION("one layer repeated over three depths: one process, and tp 2 · pp 2 sequence parallel") {
    check_layout(kGpt, 4, 4, 1, 1, 1, 2, 6, repeated);
    check_layout(kGpt, 4, 2, 2, 2, 1, 2, 8, kLlamaKeys + "\n" + repeated, true);
  }
  SECTION("one repeated mixture-of-experts layer: tp 2 · pp 2, sequence parallel") {
    check_layout(kGpt, 4, 4, 2, 2, 1, 2, 8,
                 repeated + "\nnum_experts = 4\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 24\nmoe_layer_freq = [0, 0, 0, 1]",
                 true);
  }
  SECTION("whole-model parameters and FLOPs: the one-process model's") {
    for (const std::string& keys : {mtp, kLlamaKeys + "\n" + mtp, repeated}) {
      const std::string text = config_text(kGpt, 4, 2, 1, 1, 2, 6, keys);
      const Plan plan = make_plan(Config::from_string(text), PlanRequest{1, kVocab});
      PluginPtr<Model> model = build_model(Config::from_string(text), kVocab, 7);
      std::vector<Parameter*> params;
      model->collect_parameters(params);
      CHECK(plan.total_parameters == count_elements(params));
      CHECK(plan.flops_per_iteration == model->flops_per_iteration(6));
    }
  }
}

TEST_CASE("a Llama-style GPT's plan counts its parameters and SwiGLU FLOPs as the trainer's model", "[unit]") {
  const std::string text = config_text(kGpt, 4, 2, 1, 1, 2, 6, kLlamaKeys);
  const Plan plan = make_plan(Config::from_string(text), PlanRequest{1, kVocab});
  PluginPtr<Model> model = build_model(Config::from_string(text), kVocab, 7);
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  // By hand: h 32, 4 heads of 8 in 2 groups, ffn 48, 4 layers, vocabulary 301 padded to 304; no
  // biases, no position table, RMSNorm weights only, fc1 [2·48, 32], an untied output layer.
  const std::int64_t h = 32, kv = 2 * 2 * 8, ffn = 48, V = 304, L = 4;
  const std::int64_t per_layer = h * h + kv * h + h * h + 2 * ffn * h + h * ffn + 2 * h;
  const std::int64_t expected = L * per_layer + h + 2 * V * h;
  CHECK(count_elements(params) == expected);
  CHECK(plan.total_parameters == expected);
  CHECK(plan.stages.at(0).parameters == expected);
  // Megatron's FLOPs with SwiGLU: the MLP term counts three h×ffn matrices.
  const double B = 6, s = 12, f = 3;
  const double layer = 2 * B * s * h * (h + kv) + 2 * B * s * h * h + 2 * 3 * B * s * h * ffn + 4 * B * s * s * h;
  const double flops = f * L * layer + 6 * B * s * h * V;
  CHECK(model->flops_per_iteration(6) == Approx(flops).epsilon(1e-12));
  CHECK(plan.flops_per_iteration == model->flops_per_iteration(6));
}

TEST_CASE("kv_channels: the plan and the model count heads·kv_channels-wide projections and Megatron's FLOPs", "[unit]") {
  const std::string text = config_text(kGpt, 4, 2, 1, 1, 2, 6, kLlamaKeys + "\nkv_channels = 12");
  const Plan plan = make_plan(Config::from_string(text), PlanRequest{1, kVocab});
  PluginPtr<Model> model = build_model(Config::from_string(text), kVocab, 7);
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  // h 32, 4 heads of 12 channels (not 8) in 2 groups: q [48, 32], kv [2·2·12, 32], output [32, 48].
  const std::int64_t h = 32, H = 4, G = 2, d = 12, hq = H * d, kv = 2 * G * d, ffn = 48, V = 304, L = 4;
  const std::int64_t per_layer = hq * h + kv * h + h * hq + 2 * ffn * h + h * ffn + 2 * h;
  const std::int64_t expected = L * per_layer + h + 2 * V * h;
  CHECK(count_elements(params) == expected);
  CHECK(plan.total_parameters == expected);
  // Megatron-LM's num_floating_point_operations with --kv-channels: 12·B·s·L·h²·[(1 + G/H + s/h)·r
  // + (ffn/h)·3/2 + V/(2·L·h)], r = kv_channels·H / h its query_projection_to_hidden_size_ratio.
  const double B = 6, s = 12, r = double(hq) / h;
  const double flops = 12 * B * s * L * h * h * ((1 + double(G) / H + s / h) * r + double(ffn) / h * 1.5 + V / (2.0 * L * h));
  CHECK(model->flops_per_iteration(6) == Approx(flops).epsilon(1e-12));
  CHECK(plan.flops_per_iteration == model->flops_per_iteration(6));
  CHECK_THAT(model->describe(), Catch::Contains("kv_channels 12"));
}

TEST_CASE("BigCode's attention_head_type (StarCoder's --attention-head-type) sets the key/value heads", "[unit]") {
  // The plan of 4 heads with attention_head_type equals that with num_query_groups 1 (multiquery) or
  // 4 (multihead); K/V parameters differ between the two, so the comparison can fail.
  const auto plan = [](const std::string& groups_line) {
    std::string text = config_text(kGpt, 4, 4, 1, 1, 2, 4);
    text.replace(text.find("num_query_groups = 4\n"), 21, groups_line);
    return make_plan(Config::from_string(text, "bc.toml"), PlanRequest{1, kVocab}).stages.at(0).parameters;
  };
  CHECK(plan("attention_head_type = \"multiquery\"\n") == plan("num_query_groups = 1\n"));
  CHECK(plan("attention_head_type = \"multihead\"\n") == plan("num_query_groups = 4\n"));
  CHECK(plan("num_query_groups = 1\n") != plan("num_query_groups = 4\n"));
  CHECK_THAT(message_of<ConfigError>([&] { plan("attention_head_type = \"multiquery\"\nnum_query_groups = 1\n"); }),
             Catch::Contains("model.attention_head_type (in bc.toml) and model.num_query_groups (in bc.toml)"));
  CHECK_THAT(message_of<ConfigError>([&] { plan("attention_head_type = \"multi_query\"\n"); }),
             Catch::Contains("attention_head_type") && Catch::Contains("multihead, multiquery"));
}

namespace {
// config_text's GPT (h 32, 4 heads of 8) with `extra` in [model], as if read from `file`, on tp ranks.
Config gpt_config(const std::string& extra, const std::string& file, int tp) {
  return Config::from_string(config_text(kGpt, 4, 2, tp, 1, 2, 4, extra), file);
}
// The ConfigError the plan gives for it; the model refuses it the same way (built for one process
// when tp = 1).
std::string refused_config(const std::string& extra, const std::string& file, int tp) {
  try {
    make_plan(gpt_config(extra, file, tp), PlanRequest{tp, kVocab});
  } catch (const ConfigError& e) {
    if (tp == 1) CHECK_THROWS_AS(build_model(gpt_config(extra, file, 1), kVocab, 7), ConfigError);
    return e.what();
  }
  FAIL("no ConfigError for: " << extra);
  return "";
}
}  // namespace

TEST_CASE("multi-token prediction keys: ConfigErrors naming the key and its file; Megatron-LM's FLOPs", "[unit]") {
  using Catch::Contains;
  const auto refused = [](const std::string& extra) { return refused_config(extra, "mtp.toml", 1); };
  CHECK_THAT(refused("mtp_num_layers = -1"), Contains("model.mtp_num_layers") && Contains("mtp.toml"));
  // seq_length 12: depth 11 would have no position with a target.
  CHECK_THAT(refused("mtp_num_layers = 11"), Contains("model.mtp_num_layers") && Contains("10"));
  CHECK_THAT(refused("mtp_loss_scaling_factor = 0.2"),
             Contains("model.mtp_loss_scaling_factor") && Contains("mtp.toml") && Contains("mtp_num_layers"));
  CHECK_THAT(refused("mtp_num_layers = 1\nmtp_loss_scaling_factor = -1.0"), Contains("model.mtp_loss_scaling_factor"));
  CHECK_THAT(refused("mtp_use_repeated_layer = true"),
             Contains("model.mtp_use_repeated_layer") && Contains("mtp.toml") && Contains("mtp_num_layers"));
  CHECK_THAT(refused("mtp_num_layers = 2\nmtp_use_repeated_layer = 1"), Contains("model.mtp_use_repeated_layer"));

  // Megatron-LM's num_floating_point_operations: each depth a layer like the last, 3h + 2h² per
  // token for its norms and projection, and another LM head; forward and backward (× 3).
  PluginPtr<Model> plain = build_model(gpt_config("", "mtp.toml", 1), kVocab, 7);
  PluginPtr<Model> mtp = build_model(gpt_config("mtp_num_layers = 2\nmtp_loss_scaling_factor = 0.5", "mtp.toml", 1),
                                     kVocab, 7);
  CHECK_THAT(mtp->describe(), Contains("multi-token prediction of 2 depths (loss weight 0.5)"));
  const double B = 6, s = 12, h = 32, hq = 32, hkv = 16, ffn = 48, V = 304;  // config_text's GQA 4 / 2, vocab 301 padded
  const double layer = 2 * B * s * h * (hq + 2 * hkv) + 2 * B * s * hq * h + 2 * 2 * B * s * h * ffn + 4 * B * s * s * hq;
  const double depth = 3 * (layer + 2 * B * s * (3 * h + 2 * h * h)) + 6 * B * s * h * V;
  CHECK(mtp->flops_per_iteration(6) - plain->flops_per_iteration(6) == Approx(2 * depth).epsilon(1e-12));
  // A repeated layer computes as much as separate ones; it holds one depth's weights.
  PluginPtr<Model> repeated = build_model(
      gpt_config("mtp_num_layers = 2\nmtp_loss_scaling_factor = 0.5\nmtp_use_repeated_layer = true", "mtp.toml", 1),
      kVocab, 7);
  CHECK_THAT(repeated->describe(), Contains("multi-token prediction of 2 depths sharing one layer (loss weight 0.5)"));
  CHECK(repeated->flops_per_iteration(6) == mtp->flops_per_iteration(6));
  std::vector<Parameter*> separate, shared, none;
  mtp->collect_parameters(separate);
  repeated->collect_parameters(shared);
  plain->collect_parameters(none);
  CHECK(count_elements(separate) - count_elements(shared) == count_elements(shared) - count_elements(none));
  for (Parameter* p : shared) CHECK(p->name.rfind("mtp.layers.1", 0) == std::string::npos);
}

TEST_CASE("bad Llama-style keys are ConfigErrors naming the key, its file and what is allowed", "[unit]") {
  using Catch::Contains;
  const auto config = [](const std::string& extra, int tp = 1) { return gpt_config(extra, "llama.toml", tp); };
  const auto refused = [](const std::string& extra, int tp = 1) { return refused_config(extra, "llama.toml", tp); };
  for (const char* value : {"0", "1.5", "-0.5"}) {
    const std::string msg = refused(std::string("position_embedding_type = \"rope\"\nrotary_percent = ") + value);
    CHECK_THAT(msg, Contains("model.rotary_percent") && Contains("llama.toml") && Contains("(0, 1]"));
  }
  // int(8 · 0.3) = 2 channels is fine; int(8 · 0.2) = 1 is odd.
  CHECK_NOTHROW(make_plan(config("position_embedding_type = \"rope\"\nrotary_percent = 0.3"), PlanRequest{1, kVocab}));
  CHECK_THAT(refused("position_embedding_type = \"rope\"\nrotary_percent = 0.2"),
             Contains("model.rotary_percent") && Contains("even"));
  CHECK_THAT(refused("normalization = \"RMSnorm\""),
             Contains("normalization") && Contains("llama.toml") && Contains("LayerNorm, RMSNorm") &&
                 Contains("did you mean 'RMSNorm'"));
  CHECK_THAT(refused("position_embedding_type = \"rotary\""),
             Contains("position_embedding_type") && Contains("llama.toml") && Contains("learned_absolute, rope"));
  CHECK_THAT(refused("norm_epsilon = 1e-6\nlayernorm_epsilon = 1e-6"),
             Contains("model.norm_epsilon") && Contains("model.layernorm_epsilon"));
  // SwiGLU: fc1's two halves are each split over tp, so tp must divide ffn_hidden_size.
  const auto with = [](std::string text, const std::string& from, const std::string& to) {
    text.replace(text.find(from), from.size(), to);
    return Config::from_string(text, "llama.toml");
  };
  const std::string tp2 = config_text(kGpt, 4, 2, 2, 1, 2, 4, "swiglu = true");
  CHECK_THROWS_WITH(make_plan(with(tp2, "ffn_hidden_size = 48", "ffn_hidden_size = 49"), PlanRequest{2, kVocab}),
                    Contains("model.ffn_hidden_size (49)") && Contains("llama.toml") &&
                        Contains("parallel.tensor_model_parallel_size (2)"));
  // Unset with swiglu: Megatron-Core's int(4h·2/3 / 64)·64 = 64 for h 32 (fc1 [2·64, 32]); 0 for h 16.
  const std::string one = config_text(kGpt, 4, 2, 1, 1, 2, 4, "swiglu = true");
  PluginPtr<Model> model = build_model(with(one, "ffn_hidden_size = 48\n", ""), kVocab, 7);
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  bool found = false;
  for (const Parameter* p : params)
    if (p->name == "layers.0.mlp.fc1.weight") {
      found = true;
      CHECK(p->value.shape() == Shape{128, 32});
    }
  CHECK(found);
  std::string small = one;
  small.replace(small.find("ffn_hidden_size = 48\n"), 21, "");
  CHECK_THROWS_WITH(make_plan(with(small, "hidden_size = 32", "hidden_size = 16"), PlanRequest{1, kVocab}),
                    Contains("swiglu") && Contains("set model.ffn_hidden_size"));
}

TEST_CASE("gated unit keys (quick_geglu, activation_func_clamp_value, glu_linear_offset): errors name the key; the "
          "model line and the plan say what was built",
          "[unit]") {
  using Catch::Contains;
  const auto refused = [](const std::string& extra) { return refused_config(extra, "glu.toml", 1); };
  CHECK_THAT(refused("swiglu = true\nquick_geglu = true"),
             Contains("model.swiglu") && Contains("model.quick_geglu") && Contains("glu.toml"));
  CHECK_THAT(refused("quick_geglu = true\nsquared_relu = true"),
             Contains("model.quick_geglu") && Contains("model.squared_relu"));
  CHECK_THAT(refused("activation_func_clamp_value = 7.0"),
             Contains("model.activation_func_clamp_value") && Contains("glu.toml") && Contains("quick_geglu"));
  CHECK_THAT(refused("glu_linear_offset = 1.0"), Contains("model.glu_linear_offset") && Contains("swiglu"));
  CHECK_THAT(refused("swiglu = true\nactivation_func_clamp_value = 0.0"), Contains("model.activation_func_clamp_value"));
  // The shared expert's clamp switch: only with a mixture, a shared expert and a clamp.
  CHECK_THAT(refused("swiglu = true\nactivation_func_clamp_value = 7.0\nactivation_func_clamp_shared_expert = false"),
             Contains("model.activation_func_clamp_shared_expert") && Contains("num_experts is not set"));
  const std::string moe = "swiglu = true\nnum_experts = 4\nmoe_ffn_hidden_size = 16\n";
  CHECK_THAT(refused(moe + "moe_shared_expert_intermediate_size = 16\nactivation_func_clamp_shared_expert = false"),
             Contains("model.activation_func_clamp_shared_expert") && Contains("model.activation_func_clamp_value"));
  CHECK_THAT(refused(moe + "activation_func_clamp_value = 7.0\nactivation_func_clamp_shared_expert = false"),
             Contains("model.moe_shared_expert_intermediate_size"));
  // gpt-oss's unit on the experts: described, and with the router bias the plan counts what is built.
  const Config oss = gpt_config("quick_geglu = true\nactivation_func_clamp_value = 7.0\nglu_linear_offset = 1.0\n"
                                "num_experts = 4\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 16",
                                "glu.toml", 1);
  PluginPtr<Model> model = build_model(oss, kVocab, 7);
  CHECK_THAT(model->describe(), Contains("quick GeGLU (clamp 7, linear offset 1)"));
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  bool router_bias = false;
  for (const Parameter* p : params)
    router_bias = router_bias || (p->name == "layers.0.mlp.router.bias" && p->value.shape() == Shape{4});
  CHECK(router_bias);
  CHECK(make_plan(oss, PlanRequest{1, kVocab}).stages.at(0).parameters == count_elements(params));
}

TEST_CASE("mixture-of-experts keys: ConfigErrors naming the key; FLOPs count the top-k experts", "[unit]") {
  using Catch::Contains;
  const auto config = [](const std::string& extra, int tp = 1) { return gpt_config(extra, "moe.toml", tp); };
  const auto refused = [](const std::string& extra, int tp = 1) { return refused_config(extra, "moe.toml", tp); };
  CHECK_THAT(refused("moe_router_topk = 2"), Contains("model.moe_router_topk") && Contains("moe.toml") &&
                                                 Contains("model.num_experts is not set"));
  CHECK_THAT(refused("num_experts = 2\nmoe_router_topk = 3"), Contains("moe_router_topk") && Contains("moe.toml"));
  CHECK_THAT(refused("num_experts = 4\nmoe_router_load_balancing_type = \"switch\""),
             Contains("moe_router_load_balancing_type") && Contains("aux_loss, seq_aux_loss, sinkhorn, none"));
  CHECK_THAT(refused("num_experts = 4\nmoe_router_load_balancing_type = \"sinkhorn\"\nmoe_aux_loss_coeff = 0.1"),
             Contains("moe_aux_loss_coeff") && Contains("\"sinkhorn\"") && Contains("no load-balancing loss"));
  CHECK_THAT(refused("num_experts = 4\nmoe_router_load_balancing_type = \"sinkhorn\"\nmoe_router_score_function = \"sigmoid\""),
             Contains("model.moe_router_score_function") && Contains("Sinkhorn routing has its own scores"));
  CHECK_THAT(build_model(config("num_experts = 4\nmoe_router_topk = 1\nmoe_router_load_balancing_type = \"sinkhorn\""),
                         kVocab, 7)
                 ->describe(),
             Contains("Sinkhorn-balanced"));
  CHECK_THAT(refused("num_experts = 4\nmoe_router_load_balancing_type = \"none\"\nmoe_aux_loss_coeff = 0.1"),
             Contains("moe_aux_loss_coeff") && Contains("\"none\""));
  CHECK_THAT(refused("num_experts = 4\nmoe_router_topk_scaling_factor = 2.0"),
             Contains("moe_router_topk_scaling_factor") && Contains("moe_router_pre_softmax = true"));
  CHECK_THAT(refused("num_experts = 4\nmoe_layer_freq = [1, 0]"),
             Contains("model.moe_layer_freq") && Contains("moe.toml") && Contains("4 values of 0"));
  CHECK_THAT(refused("num_experts = 4\nmoe_layer_freq = [0, 0, 0, 0]"), Contains("at least one 1"));
  CHECK_THAT(refused("num_experts = 4\nmoe_layer_freq = 5"), Contains("moe_layer_freq"));
  CHECK_THAT(refused("moe_layer_freq = 2"), Contains("model.num_experts is not set"));
  CHECK_THAT(refused("num_experts = 4\nmoe_ffn_hidden_size = 25", 2),
             Contains("model.moe_ffn_hidden_size 25") && Contains("tensor_model_parallel_size (2)"));
  // Megatron-LM's accounting: each token through top-k experts of moe_ffn_hidden_size, so 4 experts
  // of 24 with top-2 cost what one dense MLP of 48 (config_text's ffn_hidden_size) does.
  PluginPtr<Model> dense = build_model(config(""), kVocab, 7);
  PluginPtr<Model> moe = build_model(config("num_experts = 4\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 24"), kVocab, 7);
  PluginPtr<Model> top1 = build_model(config("num_experts = 4\nmoe_router_topk = 1\nmoe_ffn_hidden_size = 24"), kVocab, 7);
  CHECK(moe->flops_per_iteration(6) == dense->flops_per_iteration(6));
  CHECK(top1->flops_per_iteration(6) < dense->flops_per_iteration(6));
  // Half the layers dense (ffn 48), half of 4 top-1 experts of 24: the mean of the two.
  PluginPtr<Model> half = build_model(
      config("num_experts = 4\nmoe_router_topk = 1\nmoe_ffn_hidden_size = 24\nmoe_layer_freq = 2"), kVocab, 7);
  CHECK(half->flops_per_iteration(6) == Approx((dense->flops_per_iteration(6) + top1->flops_per_iteration(6)) / 2));
  CHECK_THAT(half->describe(), Contains("in 2 of 4 layers"));
  // A shared expert of 24 beside one top-1 expert of 24: what a dense MLP of 48 costs (Megatron-LM's
  // shared_expert_ffn_hidden_size term).
  PluginPtr<Model> shared = build_model(config("num_experts = 4\nmoe_router_topk = 1\nmoe_ffn_hidden_size = 24\n"
                                               "moe_shared_expert_intermediate_size = 24"),
                                        kVocab, 7);
  CHECK(shared->flops_per_iteration(6) == dense->flops_per_iteration(6));
  CHECK_THAT(refused("num_experts = 4\nmoe_shared_expert_intermediate_size = 25", 2),
             Contains("moe_shared_expert_intermediate_size 25") && Contains("tensor_model_parallel_size (2)"));
  CHECK_THAT(moe->describe(), Contains("mixture of 4 experts (top 2, expert ffn 24)"));
  // Sigmoid scores and group-limited routing (DeepSeek-V3's).
  CHECK_THAT(refused("num_experts = 4\nmoe_router_score_function = \"tanh\""),
             Contains("model.moe_router_score_function") && Contains("softmax, sigmoid"));
  CHECK_THAT(refused("num_experts = 4\nmoe_router_num_groups = 2"),
             Contains("model.moe_router_num_groups") && Contains("moe.toml") && Contains("model.moe_router_group_topk too"));
  CHECK_THAT(refused("num_experts = 4\nmoe_router_num_groups = 3\nmoe_router_group_topk = 1"),
             Contains("split the experts evenly"));
  CHECK_THAT(refused("num_experts = 4\nmoe_router_topk = 2\nmoe_router_num_groups = 4\nmoe_router_group_topk = 1"),
             Contains("topk / group_topk experts"));  // one expert per group cannot give 2
  CHECK_THAT(refused("moe_router_score_function = \"sigmoid\""), Contains("model.num_experts is not set"));
  CHECK_THAT(refused("num_experts = 4\nmoe_router_enable_expert_bias = true"),
             Contains("model.moe_router_enable_expert_bias") && Contains("moe.toml") &&
                 Contains("moe_router_score_function = \"sigmoid\""));
  CHECK_THAT(refused("num_experts = 4\nmoe_router_score_function = \"sigmoid\"\nmoe_router_bias_update_rate = 0.1"),
             Contains("model.moe_router_bias_update_rate") && Contains("moe_router_enable_expert_bias = true"));
  {
    PluginPtr<Model> biased = build_model(
        config("num_experts = 4\nmoe_router_score_function = \"sigmoid\"\nmoe_router_enable_expert_bias = true"), kVocab, 7);
    CHECK_THAT(biased->describe(), Contains("expert bias (rate 0.001)"));
    std::vector<Parameter*> params;
    biased->collect_parameters(params);
    const auto buffers = static_cast<std::int64_t>(params.size() - trainable_parameters(params).size());
    CHECK(buffers == 4);  // one [E] bias per MoE layer, not trained
  }
  CHECK_THAT(build_model(config("num_experts = 8\nmoe_router_topk = 4\nmoe_router_score_function = \"sigmoid\"\n"
                                "moe_router_num_groups = 4\nmoe_router_group_topk = 2\nmoe_router_topk_scaling_factor = 2.5"),
                         kVocab, 7)
                 ->describe(),
             Contains("mixture of 8 experts (top 4 of the sigmoid scores in 2 of 4 expert groups"));
  // Token dropping (moe_expert_capacity_factor, moe_token_drop_policy).
  CHECK_THAT(refused("num_experts = 4\nmoe_expert_capacity_factor = 0"),
             Contains("model.moe_expert_capacity_factor = 0") && Contains("moe.toml") && Contains("dropless"));
  CHECK_THAT(refused("num_experts = 4\nmoe_token_drop_policy = \"position\""),
             Contains("model.moe_token_drop_policy") && Contains("moe_expert_capacity_factor > 0"));
  CHECK_THAT(refused("num_experts = 4\nmoe_expert_capacity_factor = 1.0\nmoe_token_drop_policy = \"random\""),
             Contains("moe_token_drop_policy") && Contains("probs, position"));
  CHECK_THAT(refused("moe_expert_capacity_factor = 1.0"), Contains("model.num_experts is not set"));
  PluginPtr<Model> dropping =
      build_model(config("num_experts = 4\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 24\nmoe_expert_capacity_factor = 1.5\n"
                         "moe_token_drop_policy = \"position\""),
                  kVocab, 7);
  CHECK_THAT(dropping->describe(), Contains("capacity factor 1.5, dropping by position"));
  CHECK(dropping->flops_per_iteration(6) == moe->flops_per_iteration(6));  // Megatron-LM counts the routing
  // A negative factor is dropless, as Megatron-LM's.
  CHECK_THAT(build_model(config("num_experts = 4\nmoe_expert_capacity_factor = -1"), kVocab, 7)->describe(),
             !Contains("capacity"));
  // The plan holds the most rows the capacity lets through: below 1 fewer than dropless, above 1 all.
  const auto activations = [&](const std::string& extra) {
    return make_plan(gpt_config("num_experts = 4\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 24\n" + extra, "moe.toml", 1),
                     PlanRequest{1, kVocab})
        .stages[0]
        .peak_held_elements;
  };
  CHECK(activations("moe_expert_capacity_factor = 0.5") < activations(""));
  CHECK(activations("moe_expert_capacity_factor = 2.0") == activations(""));
}

TEST_CASE("memory_warning: the largest stage's plan against the memory available, per process", "[unit]") {
  Plan plan;
  plan.stages.resize(2);
  plan.stages[0].stage = 0;
  plan.stages[0].parameters = plan.stages[0].gradients = 100;
  plan.stages[0].optimizer_state = 200;
  plan.stages[0].peak_held_elements = 600;  // 1000 elements: 4000 bytes
  plan.stages[1].stage = 1;
  plan.stages[1].peak_held_elements = 1500;  // 6000 bytes: the largest
  CHECK(memory_warning(plan, 1, 6000).empty());
  const std::string one = memory_warning(plan, 1, 5999);
  CHECK_THAT(one, Catch::Contains("for a rank of pipeline stage 1"));
  CHECK_THAT(one, Catch::Contains("the kernel may kill the run"));
  CHECK(memory_warning(plan, 2, 11999) != "");  // two ranks on this machine need 12000
  CHECK_THAT(memory_warning(plan, 2, 11999), Catch::Contains("× 2 ranks on this machine"));
  CHECK(memory_warning(plan, 2, 12000).empty());
  CHECK(memory_warning(Plan{}, 1, 1).empty());
  // This machine's /proc/meminfo is read (Linux).
  const std::optional<std::int64_t> here = available_host_memory();
  REQUIRE(here.has_value());
  CHECK(*here > 0);
}

TEST_CASE("parallel.num_layers_per_virtual_pipeline_stage gives Megatron-LM's virtual pipeline size", "[unit]") {
  const auto sizes = [](const std::string& parallel) {
    return read_parallel_sizes(Config::from_string("[model]\nnum_layers = 24\n[parallel]\n" + parallel, "v.toml"));
  };
  CHECK(sizes("pipeline_model_parallel_size = 2\nnum_layers_per_virtual_pipeline_stage = 3").vpp == 4);
  CHECK(sizes("pipeline_model_parallel_size = 4\nnum_layers_per_virtual_pipeline_stage = 6").vpp == 1);
  CHECK(sizes("num_layers_per_virtual_pipeline_stage = 24").vpp == 1);
  const auto error = [&](const std::string& parallel) {
    return message_of<ConfigError>([&] { sizes(parallel); });
  };
  CHECK_THAT(error("pipeline_model_parallel_size = 2\nnum_layers_per_virtual_pipeline_stage = 5"),
             Catch::Contains("num_layers_per_virtual_pipeline_stage = 5") && Catch::Contains("model.num_layers (24)"));
  CHECK_THAT(error("pipeline_model_parallel_size = 2\nnum_layers_per_virtual_pipeline_stage = 3\n"
                   "virtual_pipeline_model_parallel_size = 4"),
             Catch::Contains("give one"));
  CHECK_THAT(error("num_layers_per_virtual_pipeline_stage = 6"), Catch::Contains("pipeline_model_parallel_size > 1"));
  CHECK_THAT(message_of<ConfigError>([] {
               read_parallel_sizes(Config::from_string(
                   "[parallel]\npipeline_model_parallel_size = 2\nnum_layers_per_virtual_pipeline_stage = 1", "w.toml"));
             }),
             Catch::Contains("needs model.num_layers"));
}

TEST_CASE("uneven pipeline stages: Megatron-LM's old and new names, and what they cannot combine with", "[unit]") {
  const auto sizes = [](const std::string& parallel) {
    return read_parallel_sizes(Config::from_string("[model]\nnum_layers = 24\n[parallel]\n" + parallel, "u.toml"));
  };
  const ParallelSizes old_names =
      sizes("pipeline_model_parallel_size = 4\ndecoder_first_pipeline_num_layers = 3\ndecoder_last_pipeline_num_layers = 5");
  CHECK(old_names.first_stage_layers == 3);
  CHECK(old_names.last_stage_layers == 5);
  const ParallelSizes new_names =
      sizes("pipeline_model_parallel_size = 4\nnum_layers_in_first_pipeline_stage = 3\nnum_layers_in_last_pipeline_stage = 5");
  CHECK(new_names.first_stage_layers == 3);
  CHECK(new_names.last_stage_layers == 5);
  CHECK(sizes("pipeline_model_parallel_size = 4").first_stage_layers == 0);
  const auto error = [&](const std::string& parallel) { return message_of<ConfigError>([&] { sizes(parallel); }); };
  CHECK_THAT(error("decoder_first_pipeline_num_layers = 3\nnum_layers_in_first_pipeline_stage = 3"),
             Catch::Contains("parallel.decoder_first_pipeline_num_layers (in u.toml) and "
                             "parallel.num_layers_in_first_pipeline_stage (in u.toml)") &&
                 Catch::Contains("give one"));
  CHECK_THAT(error("pipeline_model_parallel_size = 2\nnum_layers_per_virtual_pipeline_stage = 3\n"
                   "decoder_last_pipeline_num_layers = 6"),
             Catch::Contains("num_layers_per_virtual_pipeline_stage (in u.toml) assumes even pipeline stages"));
  CHECK_THAT(error("decoder_last_pipeline_num_layers = -1"), Catch::Contains("decoder_last_pipeline_num_layers"));
  // The embedding and loss counted as layers: read, and not with layers per virtual stage.
  const ParallelSizes counted = sizes("pipeline_model_parallel_size = 2\naccount_for_embedding_in_pipeline_split = true");
  CHECK(counted.embedding_in_split);
  CHECK_FALSE(counted.loss_in_split);
  CHECK(sizes("account_for_loss_in_pipeline_split = true").loss_in_split);
  CHECK_THAT(error("pipeline_model_parallel_size = 2\nnum_layers_per_virtual_pipeline_stage = 3\n"
                   "account_for_loss_in_pipeline_split = true"),
             Catch::Contains("num_layers_per_virtual_pipeline_stage (in u.toml) counts model.num_layers only"));
  CHECK_THAT(error("account_for_loss_in_pipeline_split = 1"), Catch::Contains("account_for_loss_in_pipeline_split"));
  // T5 splits its stacks at the split rank only.
  CHECK_THAT(message_of<ConfigError>([] {
               make_plan(Config::from_string(config_text(kT5, 4, 4, 1, 2, 1, 4, "", false, 1, 1)), PlanRequest{2, kVocab});
             }),
             Catch::Contains("the t5 encoder-decoder splits its stacks by parallel.pipeline_model_parallel_split_rank"));
  CHECK_THAT(message_of<ConfigError>([] {
               make_plan(Config::from_string(config_text(kT5, 4, 4, 1, 2, 1, 4, "", false, 1, 0, true)),
                         PlanRequest{2, kVocab});
             }),
             Catch::Contains("not by counting the embedding or loss as layers"));
  // 4 layers, the embedding and loss counted, pp 2 · vpp 3: chunks of one counted layer, the first
  // holding the embedding alone and the last the loss alone.
  const Plan counted_plan = make_plan(Config::from_string(config_text(kGpt, 4, 4, 1, 2, 1, 4, "", false, 0, 0, true),
                                                          "c.toml", {"parallel.virtual_pipeline_model_parallel_size=3",
                                                                     "schedule.plugin=\"interleaved\""}),
                                      PlanRequest{2, kVocab});
  CHECK(counted_plan.stages.at(0).chunks.at(0).contents == "no layers, embeddings");
  CHECK(counted_plan.stages.at(1).chunks.at(0).contents == "layer 0");
  CHECK(counted_plan.stages.at(1).chunks.at(2).contents.rfind("no layers, final norm", 0) == 0);
  // The model's own check: the rest must split over the stages between.
  CHECK_THAT(message_of<ConfigError>([] {
               make_plan(Config::from_string(config_text(kGpt, 4, 4, 1, 3, 1, 4, "", false, 0, 1)), PlanRequest{3, kVocab});
             }),
             Catch::Contains("model.num_layers (4)") && Catch::Contains("the other 2 pipeline stage(s) share the remaining 3 layers"));
}
