// Documents packed into one GPT sample (data.reset_position_ids, data.reset_attention_mask, which
// gpt_indexed turns into the batch fields position_ids and document_start): the loss and every
// parameter gradient of a document placed after another one, with the first one's tokens masked
// out of the loss, equal those of the same document alone at the start of a sample. That holds for
// learned positions only when positions restart too, and for rotary ones (relative) with the
// attention reset alone; without the resets the first document leaks in and the loss differs.
#include <cmath>
#include <random>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "gpt_batch.hpp"
#include "tensor_compare.hpp"
#include "tessera/config.hpp"
#include "tessera/logging.hpp"
#include "tessera/model.hpp"
#include "tessera/train/components.hpp"

using namespace tessera;

namespace {

constexpr std::int64_t kVocab = 97, kSeq = 80, kFirstDoc = 30;  // 80 tokens: two 64-key tiles
constexpr std::int32_t kEod = 0;

struct Result {
  double loss = 0;
  std::vector<Tensor> grads;
};

// One microbatch through forward and backward of a fresh model (the same weights every call).
Result run(const std::string& model_keys, const Batch& batch) {
  const Config config = Config::from_string(fmt::format(R"(
[model]
plugin = "gpt"
num_layers = 2
hidden_size = 32
num_attention_heads = 4
seq_length = {}
make_vocab_size_divisible_by = 1
init_method_std = 0.2
{}
)",
                                                        kSeq, model_keys));
  PluginPtr<Model> model = build_model(config, kVocab, 5);
  ActivationStore store;
  StepContext ctx{store};
  Result r;
  r.loss = model->forward_stage(ctx, batch, {}, 0).loss;
  model->backward_stage(ctx, {}, 0);
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  for (Parameter* p : params) r.grads.push_back(p->grad.clone());
  return r;
}

struct Rows {
  Batch packed, alone;
};

// packed: a first document of kFirstDoc tokens ending with the eod, then the second document
// (the rest of the sample), the loss on the second only. alone: the second document at the start,
// random tokens after it (which causal attention keeps from it), the loss on it only.
Rows make_rows(bool reset_positions, bool reset_attention) {
  std::mt19937 rng(41);
  std::uniform_int_distribution<std::int32_t> id(1, kVocab - 1);
  const std::int64_t second = kSeq - kFirstDoc;
  std::vector<std::int32_t> doc(static_cast<std::size_t>(second)), labels(doc.size());
  for (auto& t : doc) t = id(rng);
  for (auto& t : labels) t = id(rng);

  auto tokens = Tensor::empty({1, kSeq}, DType::i32), target = Tensor::empty({1, kSeq}, DType::i32);
  auto mask = Tensor::zeros({1, kSeq}), positions = Tensor::empty({1, kSeq}, DType::i32);
  auto starts = Tensor::empty({1, kSeq}, DType::i32);
  for (std::int64_t t = 0; t < kSeq; ++t) {
    const bool in_second = t >= kFirstDoc;
    tokens.data<std::int32_t>()[t] = in_second ? doc[t - kFirstDoc] : t == kFirstDoc - 1 ? kEod : id(rng);
    target.data<std::int32_t>()[t] = in_second ? labels[t - kFirstDoc] : id(rng);
    mask.data<float>()[t] = in_second ? 1.0f : 0.0f;
    starts.data<std::int32_t>()[t] = in_second ? static_cast<std::int32_t>(kFirstDoc) : 0;
    positions.data<std::int32_t>()[t] = static_cast<std::int32_t>(in_second ? t - kFirstDoc : t);
  }
  Rows r;
  r.packed = gpt_batch(tokens, target, mask);
  if (reset_positions) r.packed.set("position_ids", positions);
  if (reset_attention) r.packed.set("document_start", starts);

  auto tokens1 = Tensor::empty({1, kSeq}, DType::i32), target1 = Tensor::empty({1, kSeq}, DType::i32);
  auto mask1 = Tensor::zeros({1, kSeq});
  for (std::int64_t t = 0; t < kSeq; ++t) {
    tokens1.data<std::int32_t>()[t] = t < second ? doc[t] : id(rng);
    target1.data<std::int32_t>()[t] = t < second ? labels[t] : id(rng);
    mask1.data<float>()[t] = t < second ? 1.0f : 0.0f;
  }
  r.alone = gpt_batch(tokens1, target1, mask1);
  return r;
}

void check_same(const Result& packed, const Result& alone) {
  CHECK(packed.loss == Approx(alone.loss).epsilon(1e-6));
  REQUIRE(packed.grads.size() == alone.grads.size());
  for (std::size_t i = 0; i < packed.grads.size(); ++i) {
    INFO("parameter " << i);
    CHECK(test::rel_diff(packed.grads[i], alone.grads[i]) < 1e-5);
  }
}

}  // namespace

TEST_CASE("a document packed after another trains as if alone under the resets", "[unit]") {
  log_state().level = LogLevel::error;
  for (const std::string keys : {"", "num_query_groups = 2", "recompute_granularity = \"selective\"",
                                 "recompute_granularity = \"full\"\nrecompute_method = \"uniform\""}) {
    INFO("learned positions; " << keys);
    const Rows rows = make_rows(true, true);
    check_same(run(keys, rows.packed), run(keys, rows.alone));
    // Either reset alone leaves the first document's trace: other losses.
    for (const auto& [positions, attention] : {std::pair{true, false}, {false, true}, {false, false}}) {
      const Rows partial = make_rows(positions, attention);
      CHECK(std::abs(run(keys, partial.packed).loss - run(keys, partial.alone).loss) > 1e-4);
    }
  }
  // Rotary positions are relative: the attention reset alone suffices (position_ids do not apply,
  // as in Megatron-Core), and without it the loss differs.
  const std::string rope = "position_embedding_type = \"rope\"\nnum_query_groups = 1";
  for (const bool reset_positions : {false, true}) {
    const Rows rows = make_rows(reset_positions, true);
    check_same(run(rope, rows.packed), run(rope, rows.alone));
  }
  const Rows leaky = make_rows(false, false);
  CHECK(std::abs(run(rope, leaky.packed).loss - run(rope, leaky.alone).loss) > 1e-4);
}
