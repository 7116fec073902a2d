// GPT under tensor parallelism against the same GPT in one process (run under mpirun, every rank
// runs every case): for MHA, GQA and MQA and tp 2 (and 4 where the world allows), the weights after
// construction are bitwise the full model's, the loss of one batch (with dropout) matches within
// 1e-5 relative, every gradient gathered into its full shape matches within 1e-5 relative (after
// the trainer's all-reduce of reduce_grad_over_tp grads), the global grad norm computed the way the
// trainer must compute it matches, the losses of a few Adam steps match, and next_token_logits
// returns the full vocabulary on every rank; sizes tp does not divide are ConfigErrors naming the keys.
// With sequence parallelism (T = 12, so that tp 4's shards of the 36 token rows straddle sequences)
// the same, and generation on a batch whose B·T tp does not divide.
#include <algorithm>
#include <cmath>
#include <random>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "mpi_test_world.hpp"
#include "tessera/config.hpp"
#include "tessera/generation.hpp"
#include "tessera/model.hpp"
#include "tessera/ops.hpp"
#include "tessera/optimizer.hpp"
#include "tessera/plugin.hpp"
#include "tp_test_util.hpp"
#include "gpt_batch.hpp"

using namespace tessera;
using test::gather_full;
using test::rel_diff;

namespace {

constexpr std::int64_t kVocab = 101, kB = 3, kT = 13, kTsp = 12;

struct Built {
  Config config;
  PluginPtr<Model> model;
  std::vector<Parameter*> params;
};

// 2 layers, hidden 40, 4 or 8 heads, ffn 72. The model pads the vocabulary to a multiple of
// make_vocab_size_divisible_by × tp (as Megatron-LM does), and the padded rows' logits take part in
// the softmax, so runs compare only when their padded vocabularies agree: the one-process model is
// built with make_vocab_size_divisible_by = 8 × pad_tp, the tensor-parallel one with 8.
Built build(std::int64_t heads, std::int64_t groups, int pad_tp, std::shared_ptr<const Parallel> parallel,
            std::int64_t T = kT, const std::string& model_extra = "") {
  Built b{Config::from_string(fmt::format(R"(
[model]
plugin = "gpt"
num_layers = 2
hidden_size = 40
num_attention_heads = {}
num_query_groups = {}
ffn_hidden_size = 72
seq_length = {}
hidden_dropout = 0.1
init_method_std = 0.1
make_vocab_size_divisible_by = {}
{}
[optimizer]
plugin = "adam"
)", heads, groups, T, 8 * pad_tp, model_extra)), nullptr, {}};
  b.model = create_plugin<Model>("model", "gpt", b.config.section("model"), ModelContext{kVocab, 11, parallel});
  b.model->collect_parameters(b.params);
  return b;
}

Batch make_batch(int seed, std::int64_t T = kT) {
  std::mt19937 rng(static_cast<unsigned>(seed));
  std::uniform_int_distribution<int> token(0, kVocab - 1);
  Batch batch =
      gpt_batch(Tensor::empty({kB, T}, DType::i32), Tensor::empty({kB, T}, DType::i32), Tensor::empty({kB, T}));
  for (std::int64_t i = 0; i < kB * T; ++i) {
    batch.get("tokens").data<std::int32_t>()[i] = token(rng);
    batch.get("labels").data<std::int32_t>()[i] = token(rng);
    batch.get("loss_mask").data<float>()[i] = (i % 7 == 2) ? 0.0f : 1.0f;
  }
  return batch;
}

// One training microbatch: zero grads, forward + backward, then what the trainer does once per
// iteration for tensor parallelism: all-reduce the grads of replicated parameters whose grads each
// rank computed from its own heads (reduce_grad_over_tp).
double train_step(Built& b, const Batch& batch, std::int64_t iteration, const TpGroup& tp) {
  for (Parameter* p : b.params) p->grad.fill_(0.0f);
  ActivationStore store;
  StepContext ctx{store};
  ctx.seed = 5;
  ctx.iteration = iteration;
  ctx.loss_grad_scale = 0.5f;
  const double loss = b.model->forward_loss(ctx, batch);
  b.model->backward(ctx);
  REQUIRE(store.empty());
  for (Parameter* p : b.params)
    if (p->reduce_grad_over_tp && tp_size(tp) > 1) tp->all_reduce(p->grad);
  return loss;
}

// The global grad norm the trainer must compute under tp: split parameters contribute their shard
// on every rank, replicated ones only on tp rank 0, then one all-reduce over tp.
double grad_norm(const std::vector<Parameter*>& params, const TpGroup& tp) {
  double local = 0;
  for (const Parameter* p : params)
    if (p->tp_split_dim >= 0 || tp_rank(tp) == 0) local += ops::sum_squares(p->grad);
  Tensor t = Tensor::from<float>({1}, {static_cast<float>(local)});
  if (tp_size(tp) > 1) tp->all_reduce(t);
  return std::sqrt(static_cast<double>(t.item(0)));
}

void check_tensor_parallel(std::int64_t heads, std::int64_t groups, int tp, bool sp = false,
                           const std::string& model_extra = "") {
  const int world = test_world()->size();
  if (world % tp != 0) return;  // this world cannot hold the layout; another CTest run covers it
  auto parallel = Parallel::create(ParallelSizes{tp, 1, 1, sp});
  const TpGroup group = parallel->groups.tp;
  REQUIRE(group->size() == tp);
  const std::int64_t T = sp ? kTsp : kT;
  Built ref = build(heads, groups, tp, Parallel::single(), T, model_extra);
  Built par = build(heads, groups, 1, parallel, T, model_extra);
  REQUIRE(ref.params.size() == par.params.size());

  // Weights: bitwise the full model's, whatever the shard.
  for (std::size_t i = 0; i < ref.params.size(); ++i) {
    Parameter& p = *par.params[i];
    INFO(p.name);
    REQUIRE(p.name == ref.params[i]->name);
    CHECK(test::bitwise_equal(gather_full(p, p.value, group), ref.params[i]->value));
  }

  // Loss and every gradient.
  const Batch batch = make_batch(3, T);
  const double loss_ref = train_step(ref, batch, 1, nullptr);
  const double loss_par = train_step(par, batch, 1, group);
  const double loss_diff = std::abs(loss_par - loss_ref) / std::abs(loss_ref);
  INFO("loss tp1 " << loss_ref << ", tp" << tp << " " << loss_par);
  CHECK(loss_diff < 1e-5);
  double worst = 0;
  std::string worst_name;
  for (std::size_t i = 0; i < ref.params.size(); ++i) {
    Parameter& p = *par.params[i];
    const double d = rel_diff(gather_full(p, p.grad, group), ref.params[i]->grad);
    INFO(p.name << ": relative gradient difference " << d);
    CHECK(d < 1e-5);
    if (d > worst) worst = d, worst_name = p.name;
  }
  const double norm_ref = grad_norm(ref.params, nullptr), norm_par = grad_norm(par.params, group);
  const double norm_diff = std::abs(norm_par - norm_ref) / norm_ref;
  CHECK(norm_diff < 1e-5);

  // Inference: full-vocabulary logits on every rank, on the same weights. (After Adam steps the
  // weights differ by more than rounding: Adam's first step is ±lr whatever a gradient's size, so an
  // entry whose gradient is ~0 turns rounding noise into a full step; see compare_layouts.py.)
  Tensor tokens = batch.get("tokens");
  Generator& gen_ref = require_generator(*ref.model, "gpt"), &gen_par = require_generator(*par.model, "gpt");
  Tensor logits_ref = gen_ref.next_token_logits(tokens), logits_par = gen_par.next_token_logits(tokens);
  REQUIRE(logits_par.shape() == Shape{kB, kVocab});
  double logits_diff = rel_diff(logits_par, logits_ref);
  // One sequence of 5 tokens: B·T that tp does not divide (generation runs without sequence parallelism).
  Tensor odd = batch.get("tokens").reshape({kB * T}).rows(0, 5).reshape({1, 5});
  logits_diff = std::max(logits_diff, rel_diff(gen_par.next_token_logits(odd), gen_ref.next_token_logits(odd)));
  CHECK(logits_diff < 1e-5);

  // A few Adam steps with clipping: the losses stay equal.
  auto opt_ref = create_plugin<Optimizer>("optimizer", "adam", ref.config.section("optimizer"), ref.params,
                                           OptimizerContext{});
  auto opt_par = create_plugin<Optimizer>("optimizer", "adam", par.config.section("optimizer"), par.params,
                                           OptimizerContext{});
  double step_diff = 0;
  for (int it = 1; it <= 4; ++it) {
    const double nr = grad_norm(ref.params, nullptr), np = grad_norm(par.params, group);
    opt_ref->step(UpdateRates{3e-3f, 0.01f}, static_cast<float>(std::min(1.0, 0.5 / nr)));
    opt_par->step(UpdateRates{3e-3f, 0.01f}, static_cast<float>(std::min(1.0, 0.5 / np)));
    const Batch next = make_batch(10 + it, T);
    const double lr = train_step(ref, next, it + 1, nullptr), lp = train_step(par, next, it + 1, group);
    INFO("step " << it << ": loss tp1 " << lr << ", tp" << tp << " " << lp);
    CHECK(std::abs(lp - lr) / std::abs(lr) < 1e-5);
    step_diff = std::max(step_diff, std::abs(lp - lr) / std::abs(lr));
  }

  if (test_world()->rank() == 0)
    fmt::print("tp {}{} heads {} groups {}: loss rel diff {:.2e}, max grad rel diff {:.2e} ({}), grad norm {:.2e}, "
               "after 4 Adam steps {:.2e}, next-token logits {:.2e}\n",
               tp, sp ? " sp" : "", heads, groups, loss_diff, worst, worst_name, norm_diff, step_diff, logits_diff);
}

}  // namespace

TEST_CASE("GPT tp2 equals one process: multi-head attention", "[mpi]") { check_tensor_parallel(4, 4, 2); }
TEST_CASE("GPT tp2 equals one process: grouped-query attention", "[mpi]") { check_tensor_parallel(8, 2, 2); }
TEST_CASE("GPT tp2 equals one process: multi-query attention", "[mpi]") { check_tensor_parallel(4, 1, 2); }
TEST_CASE("GPT tp4 equals one process: multi-head attention", "[mpi]") { check_tensor_parallel(8, 8, 4); }
TEST_CASE("GPT tp4 equals one process: grouped-query attention", "[mpi]") { check_tensor_parallel(8, 4, 4); }
TEST_CASE("GPT tp4 equals one process: multi-query attention", "[mpi]") { check_tensor_parallel(4, 1, 4); }

TEST_CASE("GPT tp2 with sequence parallelism equals one process: multi-head attention", "[mpi]") {
  check_tensor_parallel(4, 4, 2, true);
}
TEST_CASE("GPT tp2 with sequence parallelism equals one process: multi-query attention", "[mpi]") {
  check_tensor_parallel(4, 1, 2, true);
}
TEST_CASE("GPT tp4 with sequence parallelism equals one process: grouped-query attention", "[mpi]") {
  check_tensor_parallel(8, 4, 4, true);
}
TEST_CASE("GPT tp4 with sequence parallelism equals one process: multi-query attention", "[mpi]") {
  check_tensor_parallel(4, 1, 4, true);
}
// kv_channels (Megatron-LM's --kv-channels): heads narrower or wider than hidden / heads, so the
// query and output projections are not hidden wide.
TEST_CASE("GPT tp2 equals one process: grouped-query attention with kv_channels 6", "[mpi]") {
  check_tensor_parallel(8, 2, 2, false, "kv_channels = 6");
}
TEST_CASE("GPT tp4 with sequence parallelism equals one process: multi-query attention with kv_channels 16", "[mpi]") {
  check_tensor_parallel(4, 1, 4, true, "kv_channels = 16");
}

TEST_CASE("GPT sizes that tp does not divide are config errors naming the keys", "[mpi]") {
  if (test_world()->size() % 2 != 0) return;
  auto parallel = Parallel::create(ParallelSizes{2, 1, 1, false});
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(build(5, 5, 1, parallel), Contains("model.num_attention_heads (5)") &&
                                                  Contains("parallel.tensor_model_parallel_size (2)"));
  CHECK_THROWS_WITH(build(10, 5, 1, parallel), Contains("model.num_query_groups (5)"));
  // Sequence parallelism splits every microbatch's tokens: tp must divide seq_length (13).
  auto sp = Parallel::create(ParallelSizes{2, 1, 1, true});
  CHECK_THROWS_WITH(build(4, 4, 1, sp), Contains("model.seq_length (13)") &&
                                            Contains("parallel.tensor_model_parallel_size (2)") &&
                                            Contains("parallel.sequence_parallel = true"));
  CHECK_NOTHROW(build(4, 4, 1, sp, kTsp));
}
