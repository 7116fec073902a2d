// A 2-layer BERT built by the bert plugin against the same model written plainly in PyTorch
// (tests/model/bert_reference.py, float64), with padding in the batch: the loss and its two terms
// within 1e-5 relative and every parameter's gradient within 1e-4 relative (‖ours − torch‖ /
// ‖torch‖), with and without the binary (sentence-order) head.
#include <cmath>
#include <filesystem>
#include <random>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/io/safetensors.hpp"
#include "tessera/model.hpp"
#include "tessera/plugin.hpp"
#include "tessera/train/trainer.hpp"
#include "tensor_compare.hpp"
#include "test_util.hpp"

using namespace tessera;
using test::rel_diff;

namespace {

void check_against_torch(bool binary_head) {
  const std::int64_t L = 2, C = 48, H = 4, B = 3, T = 13, vocab = 101;
  Config config = Config::from_string(fmt::format(R"(
[model]
plugin = "bert"
num_layers = {}
hidden_size = {}
num_attention_heads = {}
seq_length = {}
make_vocab_size_divisible_by = 16
init_method_std = 0.1
bert_binary_head = {}
)", L, C, H, T, binary_head));
  ConfigSection s = config.section("model");
  auto model = create_plugin<Model>("model", s.get_string("plugin"), s, ModelContext{vocab, 7, nullptr});
  config.check_no_unknown_keys();
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  // Non-trivial norms and biases (the LM head's bias too), so that their gradients are tested.
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  for (Parameter* p : params)
    if (p->value.dim() == 1)
      for (std::int64_t i = 0; i < p->value.numel(); ++i) p->value.data<float>()[i] += normal(rng);

  // Sequences of 13, 9 and 6 real tokens, then padding; every fourth real token is predicted.
  const std::int64_t lengths[B] = {13, 9, 6};
  Tensor tokens = Tensor::zeros({B, T}, DType::i32), types = Tensor::zeros({B, T}, DType::i32);
  Tensor labels = Tensor::full({B, T}, 0.0f), loss_mask = Tensor::zeros({B, T});
  Tensor labels_i = Tensor::zeros({B, T}, DType::i32), padding = Tensor::zeros({B, T}, DType::u8);
  Tensor is_random = Tensor::zeros({B, 1}, DType::i32);
  std::uniform_int_distribution<int> token(0, vocab - 1);
  for (std::int64_t b = 0; b < B; ++b) {
    is_random.data<std::int32_t>()[b] = static_cast<std::int32_t>(b % 2);
    for (std::int64_t t = 0; t < T; ++t) {
      const std::int64_t i = b * T + t;
      const bool real = t < lengths[b];
      tokens.data<std::int32_t>()[i] = real ? token(rng) : 0;
      types.data<std::int32_t>()[i] = real && t >= lengths[b] / 2 ? 1 : 0;
      padding.data<std::uint8_t>()[i] = real ? 1 : 0;
      const bool predicted = real && t % 4 == 1;
      labels_i.data<std::int32_t>()[i] = predicted ? token(rng) : -1;
      loss_mask.data<float>()[i] = predicted ? 1.0f : 0.0f;
    }
  }
  Batch batch;
  batch.set("tokens", tokens);
  batch.set("labels", labels_i);
  batch.set("loss_mask", loss_mask);
  batch.set("padding_mask", padding);
  if (binary_head) {
    batch.set("types", types);
    batch.set("is_random", is_random);
  }
  ActivationStore store;
  StepContext ctx{store};
  const StageOutput out = model->forward_stage(ctx, batch, {}, 0);
  model->backward(ctx);
  REQUIRE(store.empty());
  REQUIRE(out.loss_parts.size() == (binary_head ? 2u : 0u));

  const std::string dir = fmt::format("bert_reference_binary{}", binary_head);
  std::filesystem::create_directories(dir);
  NamedTensors saved;
  for (Parameter* p : params) saved.emplace_back(p->name, p->value);
  saved.emplace_back("shape", Tensor::from<std::int32_t>({4}, {int(L), int(C), int(H), int(binary_head)}));
  for (const char* f : {"tokens", "labels", "loss_mask", "padding_mask"}) saved.emplace_back(f, batch.get(f));
  saved.emplace_back("types", types);
  saved.emplace_back("is_random", is_random);
  save_safetensors(dir + "/tessera.safetensors", saved);
  tessera::test::run_command({"/usr/bin/python3", TESSERA_TESTS_DIR "/model/bert_reference.py", dir});

  SafetensorsFile ref = load_safetensors(dir + "/torch.safetensors");
  const double torch_loss = ref.tensors.at("loss").item(0);
  INFO("tessera loss " << out.loss << ", torch loss " << torch_loss);
  CHECK(std::abs(out.loss - torch_loss) / std::abs(torch_loss) < 1e-5);
  if (binary_head) {
    CHECK(std::abs(out.loss_parts[0] - ref.tensors.at("lm").item(0)) / ref.tensors.at("lm").item(0) < 1e-5);
    CHECK(std::abs(out.loss_parts[1] - ref.tensors.at("sop").item(0)) / ref.tensors.at("sop").item(0) < 1e-5);
  }
  for (Parameter* p : params) {
    const double d = rel_diff(p->grad, ref.tensors.at("grad:" + p->name));
    INFO(p->name << ": relative gradient difference " << d);
    CHECK(d < 1e-4);
  }
}

}  // namespace

TEST_CASE("BERT loss and gradients equal PyTorch, with padding: binary head", "[reference]") { check_against_torch(true); }
TEST_CASE("BERT loss and gradients equal PyTorch, with padding: no binary head", "[reference]") {
  check_against_torch(false);
}

TEST_CASE("a GPT-shaped data source given to bert is an error naming the missing fields", "[unit]") {
  const std::string text = R"(
[model]
plugin = "bert"
num_layers = 1
hidden_size = 16
num_attention_heads = 2
seq_length = 8
[tokenizer]
plugin = "byte"
[data]
plugin = "gpt_indexed"
data_path = "no_such_corpus"
[optimizer]
plugin = "adam"
)";
  // Checked before any file is opened: the corpus need not exist.
  CHECK_THROWS_WITH(Trainer(Config::from_string(text, "bert.toml")),
                    Catch::Contains("model plugin 'bert'") && Catch::Contains("padding_mask") &&
                        Catch::Contains("data plugin 'gpt_indexed'"));
}
