// TransformerBlock for every layer spec (causal / padding-masked self-attention, with and without
// cross-attention), against three things:
// - PyTorch (tests/nn/transformer_block_reference.py, float64): the output and the gradients of x,
//   the memory and every parameter;
// - itself without recompute: selective and full (uniform, block) recompute give bit-identical
//   outputs and gradients;
// - its own cost (TransformerBlock::cost, what `tessera plan` sums): parameters, the elements the
//   store holds after forward, and, on each rank of tp = 2 (a counting communicator, in one
//   process), every collective of forward and backward, with and without sequence parallelism.
#include <filesystem>
#include <random>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "shape_only_communicator.hpp"
#include "tessera/io/safetensors.hpp"
#include "tessera/nn/transformer_block.hpp"
#include "tensor_compare.hpp"
#include "test_util.hpp"

using namespace tessera;
using test::bitwise_equal;
using test::rel_diff;

namespace {

constexpr std::int64_t kB = 2, kT = 6, kTk = 7, kC = 24, kHeads = 4, kFfn = 40, kLayers = 3, kFirst = 2;

struct Spec {
  const char* label;
  AttentionKind self;
  bool cross;
};
const Spec kSpecs[] = {{"causal", AttentionKind::causal_self, false},
                       {"padded", AttentionKind::padded_self, false},
                       {"causal + cross", AttentionKind::causal_self, true},
                       {"padded + cross", AttentionKind::padded_self, true}};

RecomputeOptions recompute(RecomputeOptions::Granularity g, RecomputeOptions::Method m = {}, std::int64_t n = 1) {
  RecomputeOptions r;
  r.granularity = g;
  r.method = m;
  r.num_layers = n;
  return r;
}

TransformerBlockOptions block_options(const Spec& spec, std::int64_t groups, TpGroup tp, bool sp,
                                      const RecomputeOptions& r, bool final_norm, float dropout) {
  TransformerBlockOptions o;
  o.layer.spec.self_attention = spec.self;
  o.layer.spec.cross_attention = spec.cross;
  o.layer.attention = {kC, kHeads, groups, 0.2f, 0.1f, std::move(tp), sp};
  o.layer.ffn_hidden = kFfn;
  o.layer.hidden_dropout = dropout;
  o.first_layer = kFirst;
  o.num_layers = kLayers;
  o.recompute = r;
  if (final_norm) o.final_norm = "final_layernorm";
  return o;
}

Tensor random_tensor(const Shape& shape, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  Tensor t = Tensor::empty(shape);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = normal(rng);
  return t;
}

// Padding masks: sequence b keeps its first len − b keys (never none).
Tensor padding_mask(std::int64_t B, std::int64_t T) {
  Tensor m = Tensor::empty({B, T}, DType::u8);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t t = 0; t < T; ++t) m.data<std::uint8_t>()[b * T + t] = t < T - 2 * b ? 1 : 0;
  return m;
}

struct Inputs {
  Tensor x, dy;
  AttentionInputs in;
};

Inputs make_inputs(const Spec& spec) {
  Inputs i{random_tensor({kB, kT, kC}, 1), random_tensor({kB, kT, kC}, 2), {}};
  if (spec.self == AttentionKind::padded_self) i.in.key_mask = padding_mask(kB, kT);
  if (spec.cross) {
    i.in.memory = random_tensor({kB, kTk, kC}, 3);
    i.in.memory_mask = padding_mask(kB, kTk);
  }
  return i;
}

struct Run {
  Tensor y, dx, dmemory;
  std::int64_t held = 0;
  std::vector<Parameter*> params;
};

StepContext step(ActivationStore& store) {
  StepContext ctx{store};
  ctx.seed = 5;
  ctx.iteration = 2;
  ctx.seq_length = kT;
  return ctx;
}

Run run(TransformerBlock& block, const Inputs& inputs) {
  ActivationStore store;
  StepContext ctx = step(store);
  Run r;
  r.y = block.forward(ctx, inputs.x, inputs.in);
  r.held = store.held_elements();
  TransformerBlock::Grads g = block.backward(ctx, inputs.dy);
  REQUIRE(store.empty());
  r.dx = g.dx;
  r.dmemory = g.dmemory;
  block.collect_parameters(r.params);
  return r;
}



}  // namespace

TEST_CASE("TransformerBlock equals PyTorch for every layer spec", "[reference]") {
  for (const Spec& spec : kSpecs) {
    INFO(spec.label);
    TransformerBlock block(block_options(spec, 2, nullptr, false, {}, true, 0.0f), 11);
    std::vector<Parameter*> params;
    block.collect_parameters(params);
    std::mt19937 rng(4);  // non-trivial norms and biases, so that their gradients are tested too
    std::normal_distribution<float> normal(0.0f, 0.1f);
    for (Parameter* p : params)
      if (p->value.dim() == 1)
        for (std::int64_t i = 0; i < p->value.numel(); ++i) p->value.data<float>()[i] += normal(rng);
    const Inputs inputs = make_inputs(spec);
    const Run got = run(block, inputs);

    const std::string dir = fmt::format("transformer_block_reference_{}{}",
                                        spec.self == AttentionKind::causal_self ? "causal" : "padded",
                                        spec.cross ? "_cross" : "");
    std::filesystem::create_directories(dir);
    NamedTensors out;
    for (Parameter* p : params) out.emplace_back(p->name, p->value);
    out.emplace_back("shape", Tensor::from<std::int32_t>({8}, {int(kLayers), int(kFirst), int(kC), int(kHeads), 2,
                                                               spec.self == AttentionKind::padded_self ? 1 : 0,
                                                               spec.cross ? 1 : 0, 1}));
    out.emplace_back("x", inputs.x);
    out.emplace_back("dy", inputs.dy);
    if (inputs.in.key_mask.defined()) out.emplace_back("key_mask", inputs.in.key_mask);
    if (spec.cross) {
      out.emplace_back("memory", inputs.in.memory);
      out.emplace_back("memory_mask", inputs.in.memory_mask);
    }
    save_safetensors(dir + "/tessera.safetensors", out);
    test::run_command({"/usr/bin/python3", TESSERA_TESTS_DIR "/nn/transformer_block_reference.py", dir});
    SafetensorsFile ref = load_safetensors(dir + "/torch.safetensors");
    CHECK(rel_diff(got.y, ref.tensors.at("y")) < 1e-5);
    CHECK(rel_diff(got.dx, ref.tensors.at("grad:x")) < 1e-4);
    if (spec.cross) CHECK(rel_diff(got.dmemory, ref.tensors.at("grad:memory")) < 1e-4);
    for (Parameter* p : params) {
      INFO(p->name);
      CHECK(rel_diff(p->grad, ref.tensors.at("grad:" + p->name)) < 1e-4);
    }
  }
}

TEST_CASE("TransformerBlock: recompute changes no bit, and the store holds what cost() says", "[unit]") {
  using G = RecomputeOptions::Granularity;
  using M = RecomputeOptions::Method;
  const RecomputeOptions variants[] = {recompute(G::selective), recompute(G::full, M::uniform, 1),
                                       recompute(G::full, M::uniform, 3), recompute(G::full, M::block, 2)};
  for (const Spec& spec : kSpecs) {
    for (bool final_norm : {false, true}) {
      INFO(spec.label << (final_norm ? ", final norm" : ""));
      const Inputs inputs = make_inputs(spec);
      const TransformerBlockOptions plain = block_options(spec, 1, nullptr, false, {}, final_norm, 0.2f);
      TransformerBlock reference(plain, 11);
      const Run want = run(reference, inputs);
      const ModuleCost plain_cost = TransformerBlock::cost(plain, {kB, kT, kTk, 1});
      CHECK(want.held == plain_cost.saved_elements);
      std::int64_t elements = 0;
      for (Parameter* p : want.params) elements += p->value.numel();
      CHECK(elements == plain_cost.parameters);
      CHECK(static_cast<std::int64_t>(want.params.size()) == plain_cost.parameter_tensors);
      CHECK(want.dmemory.defined() == spec.cross);

      for (const RecomputeOptions& r : variants) {
        INFO("recompute granularity " << static_cast<int>(r.granularity) << ", method " << static_cast<int>(r.method)
                                      << ", layers " << r.num_layers);
        const TransformerBlockOptions o = block_options(spec, 1, nullptr, false, r, final_norm, 0.2f);
        TransformerBlock block(o, 11);
        const Run got = run(block, inputs);
        CHECK(bitwise_equal(got.y, want.y));
        CHECK(bitwise_equal(got.dx, want.dx));
        CHECK(bitwise_equal(got.dmemory, want.dmemory));
        for (std::size_t i = 0; i < want.params.size(); ++i) {
          INFO(want.params[i]->name);
          CHECK(bitwise_equal(got.params[i]->grad, want.params[i]->grad));
        }
        CHECK(got.held == TransformerBlock::cost(o, {kB, kT, kTk, 1}).saved_elements);
        CHECK(got.held < want.held);
      }
    }
  }
}

namespace {

Collectives tallied(const test::Tally& tally) {
  Collectives c;
  for (const auto& [key, count] : tally) {
    REQUIRE(key.first == "tp");
    if (key.second == "all_reduce") c.all_reduce += count;
    else if (key.second == "all_gather") c.all_gather += count;
    else if (key.second == "reduce_scatter") c.reduce_scatter += count;
    else FAIL("unexpected collective " << key.second);
  }
  return c;
}

void check_equal(const Collectives& got, const Collectives& want) {
  for (auto [g, w, op] : {std::tuple{got.all_reduce, want.all_reduce, "all_reduce"},
                          std::tuple{got.all_gather, want.all_gather, "all_gather"},
                          std::tuple{got.reduce_scatter, want.reduce_scatter, "reduce_scatter"}}) {
    INFO(op);
    CHECK(g.calls == w.calls);
    CHECK(g.elements == w.elements);
  }
}

}  // namespace

TEST_CASE("TransformerBlock's cost equals what each rank of tp = 2 holds and communicates", "[unit]") {
  using G = RecomputeOptions::Granularity;
  using M = RecomputeOptions::Method;
  constexpr int kTp = 2;
  for (const Spec& spec : kSpecs)
    for (bool sp : {false, true}) {
      if (sp && spec.cross) continue;  // cross-attention refuses sequence parallelism (tested below)
      for (std::int64_t groups : {std::int64_t{4}, std::int64_t{1}})  // K/V split; MQA's replicated K/V
        for (const RecomputeOptions& r : {RecomputeOptions{}, recompute(G::selective), recompute(G::full, M::block, 2)})
          for (int rank = 0; rank < kTp; ++rank) {
            INFO(spec.label << (sp ? ", sequence parallel" : "") << ", query groups " << groups << ", recompute "
                            << static_cast<int>(r.granularity) << ", tp rank " << rank);
            auto tally = std::make_shared<test::Tally>();
            auto tp = std::make_shared<test::ShapeOnlyCommunicator>("tp", rank, kTp, tally);
            const TransformerBlockOptions o = block_options(spec, groups, tp, sp, r, true, 0.1f);
            const ModuleCost cost = TransformerBlock::cost(o, {kB, kT, kTk, kTp});
            TransformerBlock block(o, 11);
            std::vector<Parameter*> params;
            block.collect_parameters(params);
            std::int64_t elements = 0;
            CollectiveCount replicated;
            for (Parameter* p : params) {
              elements += p->value.numel();
              if (p->reduce_grad_over_tp) replicated += {1, p->value.numel()};
            }
            CHECK(elements == cost.parameters);
            CHECK(static_cast<std::int64_t>(params.size()) == cost.parameter_tensors);
            CHECK(replicated.calls == cost.tp_replicated_grads.calls);
            CHECK(replicated.elements == cost.tp_replicated_grads.elements);

            Inputs inputs = make_inputs(spec);
            if (sp) {  // this rank's token rows
              inputs.x = inputs.x.reshape({kB * kT, kC}).rows(rank * kB * kT / kTp, (rank + 1) * kB * kT / kTp);
              inputs.dy = inputs.dy.reshape({kB * kT, kC}).rows(rank * kB * kT / kTp, (rank + 1) * kB * kT / kTp);
            }
            ActivationStore store;
            StepContext ctx = step(store);
            block.forward(ctx, inputs.x, inputs.in);
            CHECK(store.held_elements() == cost.saved_elements);
            check_equal(tallied(*tally), cost.forward);
            tally->clear();
            block.backward(ctx, inputs.dy);
            Collectives backward = cost.backward;
            backward += cost.recompute;
            check_equal(tallied(*tally), backward);
          }
    }
}

TEST_CASE("TransformerBlock refuses what it cannot run, naming it", "[unit]") {
  auto tp = std::make_shared<test::ShapeOnlyCommunicator>("tp", 0, 2, std::make_shared<test::Tally>());
  CHECK_THROWS_WITH(TransformerBlock(block_options(kSpecs[2], 4, tp, true, {}, false, 0.0f), 1),
                    Catch::Contains("cross-attention does not support sequence parallelism"));
  TransformerBlockOptions bad = block_options(kSpecs[0], 4, nullptr, false, {}, false, 0.0f);
  bad.layer.spec.self_attention = AttentionKind::cross;
  CHECK_THROWS_WITH(TransformerBlock(bad, 1), Catch::Contains("LayerSpec::cross_attention"));

  ActivationStore store;
  StepContext ctx = step(store);
  const Inputs causal = make_inputs(kSpecs[0]), padded = make_inputs(kSpecs[1]), cross = make_inputs(kSpecs[2]);
  TransformerBlock padded_block(block_options(kSpecs[1], 4, nullptr, false, {}, false, 0.0f), 1);
  CHECK_THROWS_WITH(padded_block.forward(ctx, causal.x, causal.in), Catch::Contains("needs a key mask u8 [B,T]"));
  store.clear();
  AttentionInputs wrong = padded.in;
  wrong.key_mask = Tensor::empty({kB, kT + 1}, DType::u8);
  CHECK_THROWS_WITH(padded_block.forward(ctx, padded.x, wrong), Catch::Contains("expects a key mask u8 [2, 6]"));
  store.clear();
  TransformerBlock causal_block(block_options(kSpecs[0], 4, nullptr, false, {}, false, 0.0f), 1);
  CHECK_THROWS_WITH(causal_block.forward(ctx, padded.x, padded.in), Catch::Contains("takes no key mask"));
  store.clear();
  TransformerBlock cross_block(block_options(kSpecs[2], 4, nullptr, false, {}, false, 0.0f), 1);
  CHECK_THROWS_WITH(cross_block.forward(ctx, causal.x, causal.in), Catch::Contains("needs a memory [2, Tk, 24]"));
  store.clear();
  CHECK_NOTHROW(cross_block.forward(ctx, cross.x, cross.in));
}
