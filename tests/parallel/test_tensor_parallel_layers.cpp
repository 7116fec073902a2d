// The tensor-parallel building blocks over a tp group of the whole world, against their one-process
// counterparts on the same full weights and inputs: outputs and input gradients within 1e-5
// relative, parameter gradients gathered into their full shape likewise. Sizes are odd on purpose.
// Sequence parallelism: the row gather / reduce-scatter region ops against sums computed locally,
// and whole transformer layers on token shards against the one-process layer. TransformerBlocks with
// padding-masked self-attention and cross-attention (tp and sequence parallelism) likewise.
#include <cstdio>
#include <random>

#include <catch2/catch.hpp>

#include "mpi_test_world.hpp"
#include "tessera/nn/column_parallel_linear.hpp"
#include "tessera/nn/linear.hpp"
#include "tessera/nn/row_parallel_linear.hpp"
#include "tessera/nn/transformer_block.hpp"
#include "tessera/nn/vocab_parallel_cross_entropy.hpp"
#include "tessera/nn/vocab_parallel_embedding.hpp"
#include "tessera/ops.hpp"
#include "tp_test_util.hpp"

using namespace tessera;
using test::gather_full;
using test::rel_diff;

namespace {

Tensor random_tensor(const Shape& shape, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Tensor t = Tensor::empty(shape);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = normal(rng);
  return t;
}

TpGroup world_tp() { return Parallel::create(ParallelSizes{test_world()->size(), 1, 1, false})->groups.tp; }

void check_grads(const std::vector<Parameter*>& full, const std::vector<Parameter*>& split, const TpGroup& tp) {
  REQUIRE(full.size() == split.size());
  for (std::size_t i = 0; i < full.size(); ++i) {
    INFO(split[i]->name);
    CHECK(test::bitwise_equal(gather_full(*split[i], split[i]->value, tp), full[i]->value));
    CHECK(rel_diff(gather_full(*split[i], split[i]->grad, tp), full[i]->grad) < 1e-5);
  }
}

}  // namespace

TEST_CASE("ColumnParallelLinear → RowParallelLinear equals Linear → Linear", "[mpi]") {
  const TpGroup tp = world_tp();
  const std::int64_t N = 7, C = 9, H = 6 * tp_size(tp);
  ActivationStore s1, s2;
  StepContext c1{s1}, c2{s2};
  Linear fc1("fc1", {C, H, true, 0.3f}, 5), fc2("fc2", {H, C, true, 0.3f}, 5);
  ColumnParallelLinear col("fc1", {C, H, true, 0.3f}, 5, tp);
  RowParallelLinear row("fc2", {H, C, true, 0.3f}, 5, tp);
  std::vector<Parameter*> full, split;
  fc1.collect_parameters(full);
  fc2.collect_parameters(full);
  col.collect_parameters(split);
  row.collect_parameters(split);
  for (std::size_t i = 0; i < full.size(); i += 2) {  // non-zero biases (full values, sliced for col)
    full[i + 1]->value = random_tensor(full[i + 1]->value.shape(), 9 + static_cast<unsigned>(i));
  }
  const std::int64_t hl = H / tp_size(tp);
  std::copy(full[1]->value.data<float>() + tp_rank(tp) * hl, full[1]->value.data<float>() + (tp_rank(tp) + 1) * hl,
            split[1]->value.data<float>());
  ops::copy(full[3]->value, split[3]->value);

  Tensor x = random_tensor({N, C}, 1), dy = random_tensor({N, C}, 2);
  Tensor y1 = fc2.forward(c1, fc1.forward(c1, x)), y2 = row.forward(c2, col.forward(c2, x));
  CHECK(rel_diff(y2, y1) < 1e-5);
  Tensor dx1 = fc1.backward(c1, fc2.backward(c1, dy)), dx2 = col.backward(c2, row.backward(c2, dy));
  CHECK(rel_diff(dx2, dx1) < 1e-5);
  check_grads(full, split, tp);
}

TEST_CASE("ColumnParallelLinear with gather_output equals Linear; blocks split each block", "[mpi]") {
  const TpGroup tp = world_tp();
  const std::int64_t N = 5, C = 11, out = 2 * 3 * tp_size(tp);
  ActivationStore s1, s2;
  StepContext c1{s1}, c2{s2};
  Linear full_linear("w", {C, out, false, 0.2f}, 3);
  ColumnParallelOptions o{C, out, false, 0.2f};
  o.gather_output = true;
  ColumnParallelLinear gathered("w", o, 3, tp);
  Tensor x = random_tensor({N, C}, 4), dy = random_tensor({N, out}, 5);
  CHECK(rel_diff(gathered.forward(c2, x), full_linear.forward(c1, x)) < 1e-6);
  CHECK(rel_diff(gathered.backward(c2, dy), full_linear.backward(c1, dy)) < 1e-5);
  std::vector<Parameter*> full, split;
  full_linear.collect_parameters(full);
  gathered.collect_parameters(split);
  check_grads(full, split, tp);

  // blocks = 2 ([K | V]): rank r's rows are its slice of each block.
  ColumnParallelOptions kv{C, out, true, 0.2f};
  kv.blocks = 2;
  ColumnParallelLinear blocked("w", kv, 3, tp);
  CHECK(blocked.weight().tp_split_blocks == 2);
  CHECK(test::bitwise_equal(gather_full(blocked.weight(), blocked.weight().value, tp), full_linear.weight().value));
  const std::int64_t rows = out / 2 / tp_size(tp), r = tp_rank(tp);
  Tensor k_rows = full_linear.weight().value.rows(r * rows, (r + 1) * rows);
  Tensor v_rows = full_linear.weight().value.rows(out / 2 + r * rows, out / 2 + (r + 1) * rows);
  CHECK(test::bitwise_equal(blocked.weight().value.rows(0, rows), k_rows));
  CHECK(test::bitwise_equal(blocked.weight().value.rows(rows, 2 * rows), v_rows));
}

TEST_CASE("VocabParallelEmbedding equals the plain embedding", "[mpi]") {
  const TpGroup tp = world_tp();
  const std::int64_t V = 5 * tp_size(tp), C = 7;
  VocabParallelEmbedding emb("emb", V, C, 0.5f, 8, tp);
  VocabParallelEmbedding full("emb", V, C, 0.5f, 8, nullptr);
  Tensor ids = Tensor::from<std::int32_t>({9}, {0, static_cast<int>(V - 1), 3, 3, 6, 1, static_cast<int>(V / 2), 2, 4});
  ActivationStore s1, s2;
  StepContext c1{s1}, c2{s2};
  Tensor out = emb.forward(c2, ids), ref = full.forward(c1, ids);
  CHECK(test::bitwise_equal(out, ref));  // one non-zero term per element: the all-reduce is exact
  Tensor dout = random_tensor({9, C}, 6);
  emb.backward(c2, dout);
  full.backward(c1, dout);
  CHECK(emb.first_id() == tp_rank(tp) * 5);
  check_grads({&full.weight()}, {&emb.weight()}, tp);
}

TEST_CASE("vocab-parallel cross-entropy equals the fused op", "[mpi]") {
  const TpGroup tp = world_tp();
  const std::int64_t N = 6, Vl = 13, V = Vl * tp_size(tp), first = tp_rank(tp) * Vl;
  Tensor full = random_tensor({N, V}, 7);
  ops::scale(full, 4.0f);
  Tensor targets = Tensor::from<std::int32_t>({N}, {0, static_cast<int>(V - 1), 5, static_cast<int>(Vl), 2, 7});
  Tensor mask = Tensor::from<float>({N}, {1, 1, 0, 1, 1, 0.5f});
  Tensor shard = Tensor::empty({N, Vl});
  for (std::int64_t i = 0; i < N; ++i)
    std::copy(full.data<float>() + i * V + first, full.data<float>() + i * V + first + Vl, shard.data<float>() + i * Vl);
  Tensor losses_ref = Tensor::empty({N}), losses = Tensor::empty({N});
  ops::softmax_cross_entropy(full, targets, mask, losses_ref, true, 0.25f);
  vocab_parallel_cross_entropy(shard, targets, mask, losses, true, 0.25f, first, tp);
  CHECK(rel_diff(losses, losses_ref) < 1e-6);
  CHECK(rel_diff(gather_full_tensor(shard, 1, 1, tp), full) < 1e-6);
}

namespace {

// Rank r's token rows of x [..., C] (a copy), as sequence parallelism holds them: [N/tp, C].
Tensor token_shard(const Tensor& x, const TpGroup& tp) {
  const std::int64_t C = x.size(-1), N = x.numel() / C;
  const SequenceShard s = sequence_shard(N, tp);
  return x.reshape({N, C}).rows(s.first, s.first + s.rows).clone();
}

// Every rank's shard [n, C] concatenated in rank order, gathered independently of the op under test.
Tensor all_rows(const Tensor& shard, const TpGroup& tp) { return gather_full_tensor(shard, 0, 1, tp); }

}  // namespace

TEST_CASE("sequence-parallel region ops: all-gather and reduce-scatter of token rows", "[mpi]") {
  const TpGroup tp = world_tp();
  const int n = tp_size(tp), r = tp_rank(tp);
  const std::int64_t B = 3, T = 2 * n, C = 5, N = B * T;
  // Rank q's tensors are random_tensor(seed + q): every rank can compute the expected sums itself.
  Tensor full = random_tensor({B, T, C}, 21);
  Tensor shard = token_shard(full, tp);
  CHECK(shard.size(0) == N / n);
  CHECK(sequence_shard(N, tp).first == r * (N / n));

  // f forward: the shards gathered are the full rows, on every rank.
  Tensor gathered = gather_from_sequence_parallel_forward(shard, tp);
  CHECK(gathered.shape() == Shape{N, C});
  CHECK(test::bitwise_equal(gathered, full.reshape({N, C})));

  // g forward and f backward: reduce-scatter of each rank's partial [B,T,C] → this rank's rows of the sum.
  Tensor partial = random_tensor({B, T, C}, 30 + static_cast<unsigned>(r));
  Tensor sum = Tensor::zeros({B, T, C});
  for (int q = 0; q < n; ++q) ops::axpy(1.0f, random_tensor({B, T, C}, 30 + static_cast<unsigned>(q)), sum);
  Tensor expected = token_shard(sum, tp);
  Tensor scattered = reduce_scatter_to_sequence_parallel_forward(partial, tp);
  CHECK(scattered.shape() == Shape{N / n, C});
  CHECK(rel_diff(scattered, expected) < 1e-6);
  CHECK(rel_diff(gather_from_sequence_parallel_backward(partial, tp), expected) < 1e-6);

  // g backward: the shards' gradient gathered into the full rows.
  CHECK(test::bitwise_equal(reduce_scatter_to_sequence_parallel_backward(shard, tp), full.reshape({N, C})));

  // Rows that tp does not divide are a ShapeError, before any communication.
  if (n > 1) {
    CHECK_THROWS_AS(sequence_shard(N + 1, tp), ShapeError);
    CHECK_THROWS_AS(reduce_scatter_to_sequence_parallel_forward(random_tensor({N + 1, C}, 1), tp), ShapeError);
  }
}

namespace {

struct LayerRun {
  Tensor y, dx;                      // full [B,T,C] (gathered from shards under sequence parallelism)
  std::int64_t held_elements = 0;    // ActivationStore after forward, before backward
};

TransformerLayerOptions layer_options(std::int64_t groups, const TpGroup& tp, bool sp) {
  TransformerLayerOptions o;
  o.attention = {20, 4, groups, 0.2f, 0.1f, tp, sp};
  o.ffn_hidden = 24;
  o.hidden_dropout = 0.25f;
  return o;
}

// One training microbatch through `layer`: x, dy full [B,T,C]; under sequence parallelism the layer
// sees this rank's rows and its results are gathered.
LayerRun run_layer(TransformerLayer& layer, const Tensor& x, const Tensor& dy, bool sp, const TpGroup& tp) {
  ActivationStore store;
  StepContext ctx{store};
  ctx.seed = 17;
  ctx.iteration = 3;
  ctx.microbatch = 2;
  ctx.seq_length = x.size(1);
  LayerRun run;
  Tensor y = layer.forward(ctx, sp ? token_shard(x, tp) : x);
  run.held_elements = store.held_elements();
  Tensor dx = layer.backward(ctx, sp ? token_shard(dy, tp) : dy);
  REQUIRE(store.empty());
  run.y = sp ? all_rows(y, tp).reshape(x.shape()) : y;
  run.dx = sp ? all_rows(dx, tp).reshape(x.shape()) : dx;
  return run;
}

}  // namespace

TEST_CASE("TransformerLayer with sequence parallelism equals the one-process layer", "[mpi]") {
  const TpGroup tp = world_tp();
  const int n = tp_size(tp);
  // B·T = 12 rows: with tp 4 each rank's 3 rows straddle two sequences.
  const std::int64_t B = 3, T = 4, C = 20;
  const Tensor x = random_tensor({B, T, C}, 41), dy = random_tensor({B, T, C}, 42);
  for (std::int64_t groups : {std::int64_t{4}, std::int64_t{1}}) {  // MHA; MQA (K/V replicated)
    INFO("query groups " << groups << ", tp " << n);
    TransformerLayer ref("layer", layer_options(groups, nullptr, false), 9, 1);
    TransformerLayer sp("layer", layer_options(groups, tp, true), 9, 1);
    TransformerLayer tp_only("layer", layer_options(groups, tp, false), 9, 1);
    const LayerRun want = run_layer(ref, x, dy, false, nullptr);
    const LayerRun got = run_layer(sp, x, dy, true, tp);
    const LayerRun replicated = run_layer(tp_only, x, dy, false, tp);
    CHECK(rel_diff(got.y, want.y) < 1e-5);
    CHECK(rel_diff(got.dx, want.dx) < 1e-5);

    // Parameter gradients after what the trainer does once per iteration: sum the replicated
    // parameters whose gradients came from this rank's tokens (or heads) over tp.
    std::vector<Parameter*> full, split;
    ref.collect_parameters(full);
    sp.collect_parameters(split);
    for (Parameter* p : split) {
      INFO(p->name);
      // The norms compute from this rank's tokens; every other replicated parameter's gradient is
      // complete on each rank, except MQA's replicated K/V (this rank's heads).
      const bool norm = p->name.find(".ln") != std::string::npos;
      const bool mqa_kv = groups == 1 && p->name.find("key_value") != std::string::npos;
      CHECK(p->reduce_grad_over_tp == (n > 1 && (norm || mqa_kv)));
      if (p->reduce_grad_over_tp) tp->all_reduce(p->grad);
    }
    check_grads(full, split, tp);

    // Activation memory: ln1's and ln2's inputs [N, C] with their mean and rstd [N], and fc1's
    // input [N, C], are held as this rank's N/tp rows; everything else as without it.
    const std::int64_t N = B * T;
    CHECK(replicated.held_elements - got.held_elements == (N - N / n) * (3 * C + 4));
    if (n > 1) CHECK(got.held_elements < replicated.held_elements);
    // Forward-only steps: evaluation keeps the shards; with allow_sequence_parallel off (generation)
    // the same layer takes replicated [B,T,C] input whose B·T tp need not divide.
    ActivationStore unused;
    StepContext eval{unused}, generate{unused};
    eval.training = generate.training = false;
    eval.seq_length = T;
    generate.allow_sequence_parallel = false;
    CHECK(rel_diff(all_rows(sp.forward(eval, token_shard(x, tp)), tp).reshape(x.shape()), ref.forward(eval, x)) < 1e-5);
    const Tensor odd = random_tensor({1, 3, C}, 43);
    CHECK(rel_diff(sp.forward(generate, odd), ref.forward(generate, odd)) < 1e-5);
    CHECK(unused.empty());

    if (test_world()->rank() == 0)
      std::printf("TransformerLayer (query groups %lld, B %lld, T %lld, C %lld, ffn 24) held activation elements, "
                  "tp %d: %lld without sequence parallelism, %lld with (%.1f%%)\n",
                  static_cast<long long>(groups), static_cast<long long>(B), static_cast<long long>(T),
                  static_cast<long long>(C), n, static_cast<long long>(replicated.held_elements),
                  static_cast<long long>(got.held_elements),
                  100.0 * static_cast<double>(got.held_elements) / static_cast<double>(replicated.held_elements));
  }
}

namespace {

// A padding mask: sequence b keeps its first T − b keys (never none).
Tensor keep_first(std::int64_t B, std::int64_t T) {
  Tensor m = Tensor::empty({B, T}, DType::u8);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t t = 0; t < T; ++t) m.data<std::uint8_t>()[b * T + t] = t < T - b ? 1 : 0;
  return m;
}

}  // namespace

TEST_CASE("TransformerBlock with padding masks and cross-attention equals the one-process block", "[mpi]") {
  const TpGroup tp = world_tp();
  const int n = tp_size(tp);
  const std::int64_t B = 3, T = 4, Tk = 5, C = 20;
  const Tensor x = random_tensor({B, T, C}, 51), dy = random_tensor({B, T, C}, 52);
  AttentionInputs in{keep_first(B, T), random_tensor({B, Tk, C}, 53), keep_first(B, Tk), Tensor()};
  for (bool cross : {false, true})
    for (bool sp : {false, true}) {
      if (cross && sp) continue;  // refused (test_transformer_block)
      for (std::int64_t groups : {std::int64_t{4}, std::int64_t{1}}) {
        INFO((cross ? "padded + cross" : "padded") << (sp ? ", sequence parallel" : "") << ", query groups " << groups
                                                   << ", tp " << n);
        const auto options = [&](const TpGroup& group, bool seq_par) {
          TransformerBlockOptions o;
          o.layer = layer_options(groups, group, seq_par);
          o.layer.spec.self_attention = AttentionKind::padded_self;
          o.layer.spec.cross_attention = cross;
          o.first_layer = 1;
          o.num_layers = 2;
          o.recompute.granularity = RecomputeOptions::Granularity::full;  // uniform, one layer per segment
          o.final_norm = "final_layernorm";
          return o;
        };
        TransformerBlock ref(options(nullptr, false), 9), split(options(tp, sp), 9);
        const auto run = [&](TransformerBlock& block, bool shards) {
          ActivationStore store;
          StepContext ctx{store};
          ctx.seed = 17;
          ctx.iteration = 1;
          ctx.seq_length = T;
          Tensor y = block.forward(ctx, shards ? token_shard(x, tp) : x, in);
          TransformerBlock::Grads g = block.backward(ctx, shards ? token_shard(dy, tp) : dy);
          REQUIRE(store.empty());
          if (shards) {
            y = all_rows(y, tp).reshape(x.shape());
            g.dx = all_rows(g.dx, tp).reshape(x.shape());
          }
          return std::tuple{y, g.dx, g.dmemory};
        };
        const auto [want_y, want_dx, want_dmemory] = run(ref, false);
        const auto [got_y, got_dx, got_dmemory] = run(split, sp);
        CHECK(rel_diff(got_y, want_y) < 1e-5);
        CHECK(rel_diff(got_dx, want_dx) < 1e-5);
        if (cross) CHECK(rel_diff(got_dmemory, want_dmemory) < 1e-5);
        std::vector<Parameter*> full, shards;
        ref.collect_parameters(full);
        split.collect_parameters(shards);
        for (Parameter* p : shards)
          if (p->reduce_grad_over_tp) tp->all_reduce(p->grad);  // the trainer's once-per-iteration sum
        check_grads(full, shards, tp);
      }
    }
}
