// Inference path and sampling: generation is an optional interface (GPT has it, a model without it
// is a clear error), next_token_logits agrees with the training path's loss, and the samplers
// choose what they promise.
#include <cmath>
#include <random>

#include <catch2/catch.hpp>

#include "expect_error.hpp"
#include "tiny_gpt.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/generation.hpp"
#include "tessera/model.hpp"
#include "tessera/plugin.hpp"
#include "tessera/tools/sampling.hpp"
#include "gpt_batch.hpp"

using namespace tessera;

namespace {
// A model that cannot generate (as an encoder-only model): every Model method, no Generator.
class EncoderOnly : public Model {
 public:
  FieldSpecs batch_fields() const override { return {}; }
  void collect_parameters(std::vector<Parameter*>&) override {}
  StageOutput forward_stage(StepContext&, const Batch&, const std::vector<Tensor>&, int) override { return {}; }
  std::vector<Tensor> backward_stage(StepContext&, const std::vector<Tensor>&, int) override { return {}; }
  std::vector<TensorSpec> stage_boundary(std::int64_t, int) const override { return {}; }
  std::int64_t seq_length() const override { return 8; }
  double flops_per_iteration(std::int64_t) const override { return 0; }
  std::string describe() const override { return "encoder only"; }
};
}  // namespace

TEST_CASE("generation is an optional interface of a model", "[unit]") {
  EncoderOnly model;
  CHECK(model.generator() == nullptr);
  const std::string msg = message_of<ConfigError>([&] { require_generator(model, "model plugin 'bert'"); });
  CHECK(msg.find("model plugin 'bert' does not support generation") != std::string::npos);
}

namespace {
// next_token_logits of each row's first `prefix` tokens against the training forward of the whole
// row, masked to position prefix − 1 (causal: the same logits, at the same positions — rope
// included). `extra`: more [model] keys.
void check_next_token_logits(const std::string& extra, std::int64_t prefix) {
  const std::int64_t vocab = 37, B = 2, T = 11;
  auto model = test::make_tiny_gpt(vocab, "num_query_groups = 2\n" + extra);  // every Llama-style key is read
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> tok(0, vocab - 1);
  Tensor tokens = Tensor::empty({B, T}, DType::i32);
  for (std::int64_t i = 0; i < B * T; ++i) tokens.data<std::int32_t>()[i] = tok(rng);
  Generator* generator = model->generator();
  REQUIRE(generator != nullptr);
  CHECK(&require_generator(*model, "model plugin 'gpt'") == generator);
  Tensor context = Tensor::empty({B, prefix}, DType::i32);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t t = 0; t < prefix; ++t) context.data<std::int32_t>()[b * prefix + t] = tokens.data<std::int32_t>()[b * T + t];
  Tensor logits = generator->next_token_logits(context);
  REQUIRE(logits.shape() == Shape{B, vocab});
  for (std::int64_t b = 0; b < B; ++b) {
    // The training path's loss of one sequence, masked to position prefix − 1, for a few labels:
    // loss = logsumexp(padded logits) − logit[label]. Differences between labels cancel the
    // logsumexp, so they must equal differences of next_token_logits.
    Tensor row = Tensor::empty({1, T}, DType::i32);
    for (std::int64_t t = 0; t < T; ++t) row.data<std::int32_t>()[t] = tokens.data<std::int32_t>()[b * T + t];
    auto loss_for = [&](int label) {
      Batch batch = gpt_batch(row, Tensor::zeros({1, T}, DType::i32), Tensor::zeros({1, T}));
      batch.get("labels").data<std::int32_t>()[prefix - 1] = label;
      batch.get("loss_mask").data<float>()[prefix - 1] = 1.0f;
      ActivationStore store;
      StepContext ctx{store};
      ctx.training = false;
      return model->forward_loss(ctx, batch);
    };
    const double l0 = loss_for(0);
    for (int label : {1, 7, 36}) {
      const double expected = logits.data<float>()[b * vocab + label] - logits.data<float>()[b * vocab];
      CHECK(l0 - loss_for(label) == Approx(expected).margin(1e-5));
    }
  }
}
}  // namespace

TEST_CASE("next_token_logits matches the training forward at the last position", "[unit]") {
  check_next_token_logits("", 11);
  check_next_token_logits("", 5);  // a prefix of the row the training forward sees whole
}

TEST_CASE("next_token_logits of a Llama-style GPT (rope, untied head) matches the training forward", "[unit]") {
  const std::string llama = "position_embedding_type = \"rope\"\nnormalization = \"RMSNorm\"\nswiglu = true\n"
                            "untie_embeddings_and_output_weights = true\nadd_bias_linear = false\n";
  check_next_token_logits(llama, 11);
  check_next_token_logits(llama, 4);
  check_next_token_logits(llama + "rotary_percent = 0.5\nrotary_interleaved = true\n", 7);
}

TEST_CASE("sampling: greedy, top-k, top-p and temperature", "[unit]") {
  std::vector<float> logits{0.1f, 2.0f, 1.0f, -1.0f, 1.9f};
  std::mt19937_64 rng(7);
  CHECK(sample_token(logits.data(), 5, {0.0, 0, 1.0}, rng) == 1);  // greedy
  for (int i = 0; i < 50; ++i) {
    CHECK(sample_token(logits.data(), 5, {1.0, 1, 1.0}, rng) == 1);  // top-k 1
    const auto t = sample_token(logits.data(), 5, {1.0, 2, 1.0}, rng);
    CHECK((t == 1 || t == 4));                                         // top-k 2
    CHECK(sample_token(logits.data(), 5, {1.0, 0, 0.01}, rng) == 1);  // tiny nucleus
  }
  // Temperature 1 draws follow the softmax.
  std::vector<int> counts(5, 0);
  const int draws = 40000;
  for (int i = 0; i < draws; ++i) ++counts[static_cast<std::size_t>(sample_token(logits.data(), 5, {1.0, 0, 1.0}, rng))];
  double z = 0;
  for (float l : logits) z += std::exp(l);
  for (int i = 0; i < 5; ++i) CHECK(counts[i] / double(draws) == Approx(std::exp(logits[i]) / z).margin(0.01));
}
