// A T5 built by the t5 plugin (2 encoder and 3 decoder layers) against the same model written
// plainly in PyTorch (tests/model/t5_reference.py, float64), with padding in both sequences: the
// loss within 1e-5 relative and every parameter's gradient within 1e-4 relative (‖ours − torch‖ /
// ‖torch‖). The reference masks padded decoder keys as Megatron-LM does; the plugin masks causally
// only, which must give the same numbers. Then the configurations the plugin refuses.
#include <cmath>
#include <filesystem>
#include <random>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/io/safetensors.hpp"
#include "tessera/model.hpp"
#include "tessera/plugin.hpp"
#include "t5_batch.hpp"
#include "tensor_compare.hpp"
#include "test_util.hpp"

using namespace tessera;
using test::rel_diff;

namespace {

auto make_model(Config& config, std::int64_t vocab, std::shared_ptr<const Parallel> parallel = nullptr) {
  ConfigSection s = config.section("model");
  ModelContext context{vocab, 7, std::move(parallel)};
  auto model = create_plugin<Model>("model", s.get_string("plugin"), s, context);
  config.check_no_unknown_keys({"parallel"});
  return model;
}

}  // namespace

namespace {

// kv_channels 0: hidden / heads. post_ln_residual: apply_residual_connection_post_layernorm;
// exact_gelu: bias_gelu_fusion = false.
void check_t5_against_torch(std::int64_t kv_channels, bool post_ln_residual = false, bool exact_gelu = false) {
  const std::int64_t Le = 2, Ld = 3, C = 48, H = 4, Te = 13, Td = 9, vocab = 101;
  const std::int64_t D = kv_channels > 0 ? kv_channels : C / H;
  // encoder_seq_length (the alias of seq_length) and encoder_num_layers (of num_layers).
  Config config = Config::from_string(fmt::format(R"(
[model]
plugin = "t5"
encoder_num_layers = {}
decoder_num_layers = {}
hidden_size = {}
num_attention_heads = {}
encoder_seq_length = {}
decoder_seq_length = {}
make_vocab_size_divisible_by = 16
init_method_std = 0.1
apply_residual_connection_post_layernorm = {}
bias_gelu_fusion = {}
{}
)", Le, Ld, C, H, Te, Td, post_ln_residual, !exact_gelu,
                                                  kv_channels > 0 ? fmt::format("kv_channels = {}", kv_channels) : ""));
  auto model = make_model(config, vocab);
  REQUIRE(model->seq_length() == Te);
  REQUIRE(model->decoder_seq_length() == Td);
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  // Non-trivial norms and biases (the LM head's bias too), so that their gradients are tested.
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  for (Parameter* p : params)
    if (p->value.dim() == 1)
      for (std::int64_t i = 0; i < p->value.numel(); ++i) p->value.data<float>()[i] += normal(rng);

  // Encoder rows of 13, 9 and 6 real tokens, decoder rows of 9, 5 and 3, then padding (id 0);
  // every real decoder position is predicted, padding has label −1 and mask 0.
  std::uniform_int_distribution<int> token(1, vocab - 1);
  const Batch batch = t5_padded_batch({13, 9, 6}, {9, 5, 3}, Te, Td, token, rng);
  ActivationStore store;
  StepContext ctx{store};
  const StageOutput out = model->forward_stage(ctx, batch, {}, 0);
  model->backward(ctx);
  REQUIRE(store.empty());
  REQUIRE(out.loss_parts.empty());

  const std::string dir = fmt::format("t5_reference_kv{}_post{}_erf{}", D, post_ln_residual, exact_gelu);
  std::filesystem::create_directories(dir);
  NamedTensors saved;
  for (Parameter* p : params) saved.emplace_back(p->name, p->value);
  saved.emplace_back("shape", Tensor::from<std::int32_t>({7}, {int(Le), int(Ld), int(C), int(H), int(D),
                                                               int(post_ln_residual), int(exact_gelu)}));
  for (const char* f : {"enc_tokens", "dec_tokens", "labels", "loss_mask", "enc_padding_mask", "dec_padding_mask"})
    saved.emplace_back(f, batch.get(f));
  save_safetensors(dir + "/tessera.safetensors", saved);
  tessera::test::run_command({"/usr/bin/python3", TESSERA_TESTS_DIR "/model/t5_reference.py", dir});

  SafetensorsFile ref = load_safetensors(dir + "/torch.safetensors");
  const double torch_loss = ref.tensors.at("loss").item(0);
  INFO("tessera loss " << out.loss << ", torch loss " << torch_loss);
  CHECK(std::abs(out.loss - torch_loss) / std::abs(torch_loss) < 1e-5);
  REQUIRE(params.size() == ref.tensors.size() - 1);  // every parameter has its reference gradient
  for (Parameter* p : params) {
    const double d = rel_diff(p->grad, ref.tensors.at("grad:" + p->name));
    INFO(p->name << ": relative gradient difference " << d);
    CHECK(d < 1e-4);
  }
}

}  // namespace

TEST_CASE("T5 loss and gradients equal PyTorch, with padding", "[reference]") { check_t5_against_torch(0); }
TEST_CASE("T5 with residuals from the norms' outputs (cross-attention too) and the exact GELU equals PyTorch",
          "[reference]") {
  check_t5_against_torch(0, true, false);
  check_t5_against_torch(0, false, true);
}

TEST_CASE("T5 with kv_channels (heads of 20 channels, not 48 / 4) equals PyTorch", "[reference]") {
  check_t5_against_torch(20);
}

namespace {

const char* const kSmallT5 = R"(
[model]
plugin = "t5"
num_layers = 2
hidden_size = 32
num_attention_heads = 4
seq_length = 16
decoder_seq_length = 8
)";

// A rank of a 2-process layout (no communication happens: the plugin refuses it while reading [model]).
std::shared_ptr<const Parallel> two_ranks(const ParallelSizes& sizes) {
  return std::make_shared<const Parallel>(Parallel{ParallelLayout::make(0, 2, sizes), Parallel::single()->groups});
}

void require_config_error(const std::string& toml, const std::vector<std::string>& words,
                          std::shared_ptr<const Parallel> parallel = nullptr) {
  Config config = Config::from_string(toml);
  try {
    make_model(config, 101, std::move(parallel));
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    INFO(what);
    for (const std::string& w : words) CHECK(what.find(w) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("T5 refuses sequence parallelism, naming the key", "[t5]") {
  require_config_error(kSmallT5, {"parallel.sequence_parallel", "cross-attention"},
                       two_ranks({.tp = 2, .pp = 1, .vpp = 1, .sequence_parallel = true}));
}

TEST_CASE("T5 under pipeline parallelism: a split rank is required, and must divide both stacks", "[t5]") {
  // Megatron-LM requires pipeline_model_parallel_split_rank for an encoder-decoder too.
  require_config_error(kSmallT5, {"parallel.pipeline_model_parallel_split_rank", "stages [0, split) hold the encoder"},
                       two_ranks({.tp = 1, .pp = 2, .vpp = 1, .sequence_parallel = false}));
  // 3 encoder layers over 2 encoder stages.
  std::string three_encoder_layers = kSmallT5;
  three_encoder_layers.replace(three_encoder_layers.find("num_layers = 2"), 14, "num_layers = 3\ndecoder_num_layers = 2");
  require_config_error(three_encoder_layers,
                       {"model.num_layers (3, the encoder's)", "pipeline_model_parallel_split_rank (2)"},
                       std::make_shared<const Parallel>(Parallel{
                           ParallelLayout::make(0, 4, {.tp = 1, .pp = 4, .pipeline_split_rank = 2}),
                           Parallel::single()->groups}));
  // 2 decoder layers over 3 decoder stages.
  require_config_error(kSmallT5, {"model.decoder_num_layers (2)", "3 decoder stages"},
                       std::make_shared<const Parallel>(Parallel{
                           ParallelLayout::make(0, 4, {.tp = 1, .pp = 4, .pipeline_split_rank = 1}),
                           Parallel::single()->groups}));
  // The interleaved schedule is refused (Megatron-LM refuses it for encoder-decoders).
  require_config_error(kSmallT5, {"parallel.virtual_pipeline_model_parallel_size", "interleaved"},
                       two_ranks({.tp = 1, .pp = 2, .vpp = 2, .sequence_parallel = false}));
}

TEST_CASE("T5: encoder_seq_length and seq_length must agree", "[t5]") {
  require_config_error(std::string(kSmallT5) + "encoder_seq_length = 12\n",
                       {"model.encoder_seq_length (12)", "model.seq_length (16)"});
  // Equal is fine.
  Config config = Config::from_string(std::string(kSmallT5) + "encoder_seq_length = 16\n");
  CHECK(make_model(config, 101)->seq_length() == 16);
}

TEST_CASE("T5: encoder_num_layers and num_layers must agree; decoder_num_layers defaults to num_layers", "[t5]") {
  require_config_error(std::string(kSmallT5) + "encoder_num_layers = 3\n",
                       {"model.encoder_num_layers (3)", "model.num_layers (2)"});
  Config config = Config::from_string(kSmallT5);
  auto model = make_model(config, 101);
  CHECK(model->describe().find("encoder 2 layers (seq 16), decoder 2 layers (seq 8)") != std::string::npos);
}

TEST_CASE("T5: decoder_seq_length is required; one position table must hold both lengths", "[t5]") {
  require_config_error(R"(
[model]
plugin = "t5"
seq_length = 16
)", {"model.decoder_seq_length is missing"});
  require_config_error(std::string(kSmallT5) + "max_position_embeddings = 12\n",
                       {"model.max_position_embeddings (12)", "decoder_seq_length (8)"});
  // Unset, it covers the longer of the two.
  Config config = Config::from_string(R"(
[model]
plugin = "t5"
seq_length = 8
decoder_seq_length = 20
)");
  auto model = make_model(config, 101);
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  for (Parameter* p : params)
    if (p->name == "embedding.position_embeddings.weight") CHECK(p->value.size(0) == 20);
}

TEST_CASE("T5: GPT's keys that do not apply are unknown keys", "[t5]") {
  Config config = Config::from_string(std::string(kSmallT5) + "num_query_groups = 1\n");
  CHECK_THROWS_AS(make_model(config, 101), ConfigError);
}
