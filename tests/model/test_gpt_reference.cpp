// A 2-layer GPT built by the gpt plugin against the same model written plainly in PyTorch
// (tests/model/gpt_reference.py, float64): the loss within 1e-5 relative and every parameter's
// gradient within 1e-4 relative (‖ours − torch‖ / ‖torch‖), for MHA, GQA and MQA; and Llama-style
// blocks (rope, RMSNorm, SwiGLU, untied output layer, no linear biases, GQA; docs/llama.md) with
// rotary_percent 1 and 0.5, interleaved or not; and the other Megatron-Core options below, multi-token
// prediction among them (each depth's loss too).
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/io/safetensors.hpp"
#include "tessera/model.hpp"
#include "tessera/plugin.hpp"
#include "tensor_compare.hpp"
#include "test_util.hpp"
#include "gpt_batch.hpp"

using namespace tessera;
using test::bitwise_equal;
using test::rel_diff;

namespace {

// Llama-style [model] keys and the options.json gpt_reference.py reads for them.
struct Llama {
  std::string toml, json, name;
  std::int64_t moe_layers = 2;  // layers with mixture-of-experts MLPs (multi-token prediction's included)
};

void check_against_torch(std::int64_t heads, std::int64_t groups, const Llama& llama = {}) {
  const std::int64_t L = 2, C = 48, B = 3, T = 13, vocab = 101;
  Config config = Config::from_string(fmt::format(R"(
[model]
plugin = "gpt"
num_layers = {}
hidden_size = {}
num_attention_heads = {}
num_query_groups = {}
seq_length = {}
make_vocab_size_divisible_by = 16
init_method_std = 0.1
{}
)", L, C, heads, groups, T, llama.toml));
  ConfigSection s = config.section("model");
  auto model = create_plugin<Model>("model", s.get_string("plugin"), s, ModelContext{vocab, 7, nullptr});
  config.check_no_unknown_keys();
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  // Non-trivial norms and biases, so that their gradients are tested too.
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  for (Parameter* p : params)
    if (p->value.dim() == 1)
      for (std::int64_t i = 0; i < p->value.numel(); ++i) p->value.data<float>()[i] += normal(rng);

  Batch batch =
      gpt_batch(Tensor::empty({B, T}, DType::i32), Tensor::empty({B, T}, DType::i32), Tensor::empty({B, T}));
  std::uniform_int_distribution<int> token(0, vocab - 1);
  for (std::int64_t i = 0; i < B * T; ++i) {
    batch.get("tokens").data<std::int32_t>()[i] = token(rng);
    batch.get("labels").data<std::int32_t>()[i] = token(rng);
    batch.get("loss_mask").data<float>()[i] = (i % 5 == 3) ? 0.0f : 1.0f;
  }
  ActivationStore store;
  StepContext ctx{store};
  StepMetrics metrics;
  ctx.metrics = &metrics;
  const double loss = model->forward_loss(ctx, batch);
  model->backward(ctx);
  REQUIRE(store.empty());

  const std::string dir = fmt::format("gpt_reference_h{}_g{}{}", heads, groups, llama.name);
  std::filesystem::create_directories(dir);
  std::filesystem::remove(dir + "/options.json");
  if (!llama.json.empty()) std::ofstream(dir + "/options.json") << llama.json;
  NamedTensors out;
  for (Parameter* p : params) out.emplace_back(p->name, p->value);
  out.emplace_back("shape", Tensor::from<std::int32_t>({4}, {int(L), int(C), int(heads), int(groups)}));
  out.emplace_back("tokens", batch.get("tokens"));
  out.emplace_back("labels", batch.get("labels"));
  out.emplace_back("loss_mask", batch.get("loss_mask"));
  save_safetensors(dir + "/tessera.safetensors", out);
  tessera::test::run_command({"/usr/bin/python3", TESSERA_TESTS_DIR "/model/gpt_reference.py", dir});

  SafetensorsFile ref = load_safetensors(dir + "/torch.safetensors");
  const double torch_loss = ref.tensors.at("loss").item(0);
  INFO("tessera loss " << loss << ", torch loss " << torch_loss);
  CHECK(std::abs(loss - torch_loss) / std::abs(torch_loss) < 1e-5);
  // Mixture-of-experts layers report their router losses (without coefficients) once per layer,
  // multi-token prediction depths their losses once.
  for (const std::string& name : model->metric_names()) {
    INFO(name);
    REQUIRE(metrics.sums.count(name) == 1);
    CHECK(metrics.sums.at(name).second == (name.rfind("mtp_", 0) == 0 ? 1 : llama.moe_layers));
    const double want = ref.tensors.at(name).item(0);
    CHECK(std::abs(metrics.sums.at(name).first - want) < 1e-5 * std::abs(want));
  }
  CHECK(metrics.sums.size() == model->metric_names().size());
  for (Parameter* p : params) {
    const Tensor& want = ref.tensors.at("grad:" + p->name);
    // A gradient that is zero in exact arithmetic (k_layernorm's bias: adding one vector to every
    // key moves no softmax) is float64 rounding there and float32 rounding here: compared absolutely.
    if (rel_diff(want, Tensor::zeros(want.shape())) < 1e-12) {
      const double noise = rel_diff(p->grad, Tensor::zeros(p->grad.shape()));
      INFO(p->name << ": zero gradient, " << noise << " here");
      CHECK(noise < 1e-6);
      continue;
    }
    const double d = rel_diff(p->grad, want);
    INFO(p->name << ": relative gradient difference " << d);
    CHECK(d < 1e-4);
  }
}

}  // namespace

TEST_CASE("GPT loss and gradients equal PyTorch: multi-head attention", "[reference]") { check_against_torch(4, 4); }
TEST_CASE("GPT loss and gradients equal PyTorch: grouped-query attention", "[reference]") { check_against_torch(4, 2); }
TEST_CASE("GPT loss and gradients equal PyTorch: multi-query attention", "[reference]") { check_against_torch(4, 1); }

namespace {
const char* kLlamaToml = R"(position_embedding_type = "rope"
normalization = "RMSNorm"
norm_epsilon = 1e-6
swiglu = true
ffn_hidden_size = 40
untie_embeddings_and_output_weights = true
add_bias_linear = false)";
const char* kLlamaJson = R"("rope": true, "rms_norm": true, "eps": 1e-6, "swiglu": true, "untied": true, "bias": false)";
}  // namespace

TEST_CASE("Llama-style GPT (rope, RMSNorm, SwiGLU, untied, no bias, GQA) equals PyTorch", "[reference]") {
  check_against_torch(4, 2, {kLlamaToml, fmt::format("{{{}}}", kLlamaJson), "_llama"});
}

TEST_CASE("Llama-style GPT equals PyTorch: rotary_percent 0.5, interleaved, base 500000", "[reference]") {
  check_against_torch(4, 2,
                      {fmt::format("{}\nrotary_percent = 0.5\nrotary_interleaved = true\nrotary_base = 500000.0", kLlamaToml),
                       fmt::format(R"({{{}, "rotary_percent": 0.5, "rotary_interleaved": true, "rotary_base": 500000.0}})",
                                   kLlamaJson),
                       "_llama_half_interleaved"});
}

TEST_CASE("Llama-style GPT with Llama 3.1's rope scaling (use_rope_scaling, factor 32, base 500000) equals PyTorch",
          "[reference]") {
  check_against_torch(4, 2,
                      {fmt::format("{}\nuse_rope_scaling = true\nrope_scaling_factor = 32.0\nrotary_base = 500000.0",
                                   kLlamaToml),
                       fmt::format(R"({{{}, "rope_scaling_factor": 32.0, "rotary_base": 500000.0}})", kLlamaJson),
                       "_llama_rope_scaling"});
}

TEST_CASE("Llama-style GPT with linear position interpolation (rotary_seq_len_interpolation_factor 4) equals PyTorch",
          "[reference]") {
  check_against_torch(4, 2,
                      {fmt::format("{}\nrotary_seq_len_interpolation_factor = 4.0", kLlamaToml),
                       fmt::format(R"({{{}, "rotary_interpolation": 4.0}})", kLlamaJson), "_llama_interpolation"});
}

TEST_CASE("Llama-style GPT with NoPE layers among rope ones (no_rope_freq, SmolLM3's and Llama 4's) equals PyTorch",
          "[reference]") {
  // Megatron-Core's integer form: every 2nd layer counting from 1 (here layer 1 of 0–1) without rope;
  // the list form the other way round.
  check_against_torch(4, 2, {fmt::format("{}\nno_rope_freq = 2", kLlamaToml),
                             fmt::format(R"({{{}, "nope_layers": [0, 1]}})", kLlamaJson), "_llama_nope_freq"});
  check_against_torch(4, 2, {fmt::format("{}\nno_rope_freq = [1, 0]", kLlamaToml),
                             fmt::format(R"({{{}, "nope_layers": [1, 0]}})", kLlamaJson), "_llama_nope_list"});
}

TEST_CASE("Llama-style GPT with YaRN positions (position_embedding_type yarn) equals PyTorch", "[reference]") {
  // gpt-oss's settings (factor 32 of 4096 positions, base 150000, correction range rounded): on heads
  // of 12 channels the ramp runs from pair 1 to pair 4 (weights 0, 1/3, 2/3, 1); and DeepSeek-style
  // magnitudes (mscale, mscale_all_dim) with an unrounded range (pairs 2.74 to 5 of base 10000).
  std::string yarn_toml = kLlamaToml;  // position_embedding_type = "yarn"
  yarn_toml.replace(yarn_toml.find("\"rope\""), 6, "\"yarn\"");
  check_against_torch(4, 2, {fmt::format("{}\nyarn_rotary_scaling_factor = 32.0\n"
                                         "yarn_original_max_position_embeddings = 4096\nrotary_base = 150000.0",
                                         yarn_toml),
                             fmt::format(R"({{{}, "rotary_base": 150000.0, "yarn": {{"factor": 32.0, "original": 4096}}}})",
                                         kLlamaJson),
                             "_llama_yarn"});
  check_against_torch(4, 4, {fmt::format("{}\nyarn_rotary_scaling_factor = 40.0\n"
                                         "yarn_original_max_position_embeddings = 13535\n"
                                         "yarn_mscale = 0.707\nyarn_mscale_all_dim = 0.3\n"
                                         "yarn_correction_range_round_to_int = false",
                                         yarn_toml),
                             fmt::format(R"({{{}, "yarn": {{"factor": 40.0, "original": 13535, )"
                                         R"("mscale": 0.707, "mscale_all_dim": 0.3, )"
                                         R"("round_to_int": false}}}})",
                                         kLlamaJson),
                             "_llama_yarn_mscale"});
}

TEST_CASE("GPT with rope only (LayerNorm, GELU, tied, biases) and rotary_percent 0.5 equals PyTorch", "[reference]") {
  check_against_torch(4, 4, {"position_embedding_type = \"rope\"\nrotary_percent = 0.5",
                             R"({"rope": true, "rotary_percent": 0.5})", "_rope_half"});
}

TEST_CASE("Llama-style GPT with biases on q, k and v only (add_qkv_bias, as Qwen2) equals PyTorch", "[reference]") {
  check_against_torch(4, 2, {fmt::format("{}\nadd_qkv_bias = true", kLlamaToml),
                             fmt::format(R"({{{}, "qkv_bias": true}})", kLlamaJson), "_llama_qkv_bias"});
}

TEST_CASE("GPT with q/k norms (qk_layernorm): LayerNorm with MHA, RMSNorm with rope and GQA, equals PyTorch",
          "[reference]") {
  check_against_torch(4, 4, {"qk_layernorm = true", R"({"qk_layernorm": true})", "_qk_layernorm"});
  check_against_torch(4, 2, {fmt::format("{}\nqk_layernorm = true", kLlamaToml),
                             fmt::format(R"({{{}, "qk_layernorm": true}})", kLlamaJson), "_llama_qk_layernorm"});
}

TEST_CASE("GPT with attention sinks (softmax_type learnable, off-by-one) and per-layer sliding windows equals PyTorch",
          "[reference]") {
  // Learned sinks (their gradient compared like any parameter's) with a window of 4 keys in the second
  // layer only; the off-by-one softmax with a window of 6 in both, under Llama-style blocks.
  check_against_torch(4, 2, {"softmax_type = \"learnable\"\nwindow_size = [3, 0]\nwindow_attn_skip_freq = [0, 1]",
                             R"({"softmax_type": "learnable", "window": 3, "window_layers": [0, 1]})", "_sink_window"});
  check_against_torch(4, 1, {fmt::format("{}\nsoftmax_type = \"off-by-one\"\nwindow_size = [5, 0]", kLlamaToml),
                             fmt::format(R"({{{}, "softmax_type": "off-by-one", "window": 5}})", kLlamaJson),
                             "_llama_off_by_one_window"});
}

TEST_CASE("GPT with apply_layernorm_1p (every LayerNorm scaling by 1 + γ, q/k norms too) equals PyTorch",
          "[reference]") {
  // γ starts at 0 (the identity scale); check_against_torch perturbs 1-D parameters, so γ ≠ 0 there
  // and the + 1 is what is compared.
  {
    Config config = Config::from_string("[model]\nplugin = \"gpt\"\nnum_layers = 1\nhidden_size = 8\n"
                                        "num_attention_heads = 2\nseq_length = 4\napply_layernorm_1p = true\n");
    auto model = create_plugin<Model>("model", "gpt", config.section("model"), ModelContext{16, 1, nullptr});
    std::vector<Parameter*> params;
    model->collect_parameters(params);
    int norms = 0;
    for (const Parameter* p : params)
      if (p->name.ends_with("ln1.weight") || p->name.ends_with("ln2.weight") || p->name == "final_layernorm.weight") {
        ++norms;
        CHECK(rel_diff(p->value, Tensor::zeros(p->value.shape())) == 0.0);
      }
    CHECK(norms == 3);
  }
  check_against_torch(4, 4, {"apply_layernorm_1p = true\nqk_layernorm = true",
                             R"({"layernorm_1p": true, "qk_layernorm": true})", "_layernorm_1p"});
}

TEST_CASE("GPT with residuals from the norms' outputs (apply_residual_connection_post_layernorm) equals PyTorch",
          "[reference]") {
  check_against_torch(4, 2, {"apply_residual_connection_post_layernorm = true", R"({"post_ln_residual": true})",
                             "_post_ln_residual"});
  check_against_torch(4, 2, {fmt::format("{}\napply_residual_connection_post_layernorm = true", kLlamaToml),
                             fmt::format(R"({{{}, "post_ln_residual": true}})", kLlamaJson), "_llama_post_ln_residual"});
}

TEST_CASE("GPT with the exact GELU (bias_gelu_fusion = false, Megatron's F.gelu) equals PyTorch", "[reference]") {
  check_against_torch(4, 2, {"bias_gelu_fusion = false", R"({"exact_gelu": true})", "_exact_gelu"});
  // openai_gelu is the tanh form, fused or not.
  check_against_torch(4, 2, {"bias_gelu_fusion = false\nopenai_gelu = true", "{}", "_openai_gelu"});
}

TEST_CASE("GPT with Megatron-Core's other gated linear units (quick GeGLU, clamps, linear offset) equals PyTorch",
          "[reference]") {
  // Clamps small enough that fc1's outputs (init std 0.1) cross them on both sides.
  check_against_torch(4, 2, {"quick_geglu = true\nactivation_func_clamp_value = 0.3\nglu_linear_offset = -0.5",
                             R"({"swiglu": true, "glu": {"alpha": 1.702, "clamp": 0.3, "offset": -0.5}})", "_quick_geglu"});
  check_against_torch(4, 2, {fmt::format("{}\nactivation_func_clamp_value = 0.4", kLlamaToml),
                             fmt::format(R"({{{}, "glu": {{"clamp": 0.4}}}})", kLlamaJson), "_llama_swiglu_clamp"});
  // DeepSeek-V4's: the routed experts clamped, the shared expert not
  // (activation_func_clamp_shared_expert = false).
  check_against_torch(4, 2,
                      {fmt::format("{}\nactivation_func_clamp_value = 0.3\nnum_experts = 4\nmoe_router_topk = 2\n"
                                   "moe_ffn_hidden_size = 16\nmoe_shared_expert_intermediate_size = 24\n"
                                   "activation_func_clamp_shared_expert = false",
                                   kLlamaToml),
                       fmt::format(R"({{{}, "glu": {{"clamp": 0.3}}, "moe": {{"experts": 4, "topk": 2, "shared": 24,
                                   "shared_clamp": false}}}})",
                                   kLlamaJson),
                       "_llama_moe_shared_unclamped"});
}

TEST_CASE("GPT with gpt-oss's blocks (quick GeGLU experts clamped with offset 1, router and expert biases, learned "
          "sinks, windows in alternate layers, YaRN) equals PyTorch",
          "[reference]") {
  check_against_torch(4, 2, {"position_embedding_type = \"yarn\"\nyarn_rotary_scaling_factor = 4.0\n"
                             "yarn_original_max_position_embeddings = 64\nyarn_correction_range_round_to_int = false\n"
                             "normalization = \"RMSNorm\"\nquick_geglu = true\nactivation_func_clamp_value = 0.5\n"
                             "glu_linear_offset = 1.0\nuntie_embeddings_and_output_weights = true\nnum_experts = 4\n"
                             "moe_router_topk = 2\nmoe_ffn_hidden_size = 24\nsoftmax_type = \"learnable\"\n"
                             "window_size = [4, 0]\nwindow_attn_skip_freq = 2",
                             R"({"rope": true, "yarn": {"factor": 4.0, "original": 64, "round_to_int": false}, "rms_norm": true, "swiglu": true,
                                 "glu": {"alpha": 1.702, "clamp": 0.5, "offset": 1.0}, "untied": true,
                                 "moe": {"experts": 4, "topk": 2}, "softmax_type": "learnable", "window": 4,
                                 "window_layers": [1, 0]})",
                             "_gpt_oss"});
}

TEST_CASE("GPT with a squared-ReLU MLP (squared_relu, Nemotron-4's) equals PyTorch", "[reference]") {
  check_against_torch(4, 2, {"squared_relu = true", R"({"squared_relu": true})", "_squared_relu"});
}

TEST_CASE("GPT without position embeddings (NoPE: position_embedding_type none) equals PyTorch", "[reference]") {
  check_against_torch(4, 2, {"position_embedding_type = \"none\"", R"({"positions": "none"})", "_nope"});
}

TEST_CASE("GPT with kv_channels other than hidden / heads equals PyTorch (MHA, and Llama-style GQA)", "[reference]") {
  // Megatron-LM's --kv-channels: heads of 8 and of 20 channels in a 48-wide model of 4 heads (12 by
  // default), so the query and output projections are 32 and 80 wide.
  check_against_torch(4, 4, {"kv_channels = 8", R"({"kv_channels": 8})", "_kv8"});
  check_against_torch(4, 2, {fmt::format("{}\nkv_channels = 20", kLlamaToml),
                             fmt::format(R"({{{}, "kv_channels": 20}})", kLlamaJson), "_llama_kv20"});
}

TEST_CASE("Llama-style GPT with multi-query attention and biases equals PyTorch", "[reference]") {
  check_against_torch(4, 1, {"position_embedding_type = \"rope\"\nnormalization = \"RMSNorm\"\nswiglu = true\n"
                             "untie_embeddings_and_output_weights = true",
                             R"({"rope": true, "rms_norm": true, "swiglu": true, "untied": true})", "_llama_mqa_bias"});
}

TEST_CASE("GPT with mixture-of-experts MLPs (top-2 of 4, load-balancing and z-losses) equals PyTorch", "[reference]") {
  check_against_torch(4, 4,
                      {"num_experts = 4\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 24\nmoe_aux_loss_coeff = 0.5\n"
                       "moe_z_loss_coeff = 0.01",
                       R"({"moe": {"experts": 4, "topk": 2, "aux": 0.5, "z": 0.01}})", "_moe"});
}

TEST_CASE("Llama-style GPT with mixture-of-experts SwiGLU experts (pre-softmax top-3 of 5) equals PyTorch",
          "[reference]") {
  check_against_torch(4, 2,
                      {fmt::format("{}\nnum_experts = 5\nmoe_router_topk = 3\nmoe_router_pre_softmax = true\n"
                                   "moe_aux_loss_coeff = 0.1",
                                   kLlamaToml),
                       fmt::format(R"({{{}, "moe": {{"experts": 5, "topk": 3, "aux": 0.1, "pre_softmax": true}}}})",
                                   kLlamaJson),
                       "_llama_moe"});
}

TEST_CASE("GPT with a mixture of experts in layer 0 only (moe_layer_freq), pre-softmax top-2 scaled by 2.5, a shared "
          "expert, equals PyTorch",
          "[reference]") {
  check_against_torch(4, 2,
                      {"num_experts = 3\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 32\nmoe_layer_freq = 2\n"
                       "moe_router_pre_softmax = true\nmoe_router_topk_scaling_factor = 2.5\nmoe_aux_loss_coeff = 0.2\n"
                       "moe_z_loss_coeff = 0.05\nmoe_shared_expert_intermediate_size = 40",
                       R"({"moe": {"experts": 3, "topk": 2, "aux": 0.2, "z": 0.05, "pre_softmax": true, "scale": 2.5,
                                   "layers": [1, 0], "shared": 40}})",
                       "_moe_freq", 1});
}

// Qwen-MoE's gated shared expert (moe_shared_expert_gate: the shared expert's output times sigmoid(x · w)
// per token), SwiGLU experts, the gate weight's gradient included.
TEST_CASE("GPT with mixture-of-experts MLPs and a gated shared expert equals PyTorch", "[reference]") {
  check_against_torch(4, 2,
                      {fmt::format("{}\nnum_experts = 4\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 16\n"
                                   "moe_aux_loss_coeff = 0.1\nmoe_shared_expert_intermediate_size = 24\n"
                                   "moe_shared_expert_gate = true",
                                   kLlamaToml),
                       fmt::format(R"({{{}, "moe": {{"experts": 4, "topk": 2, "aux": 0.1, "shared": 24,
                                   "shared_gate": true}}}})",
                                   kLlamaJson),
                       "_moe_shared_gate"});
}

TEST_CASE("GPT with mixture-of-experts MLPs and DeepSeek's per-sequence load-balancing loss (seq_aux_loss) equals "
          "PyTorch",
          "[reference]") {
  check_against_torch(4, 4,
                      {"num_experts = 4\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 24\nmoe_aux_loss_coeff = 0.5\n"
                       "moe_router_load_balancing_type = \"seq_aux_loss\"",
                       R"({"moe": {"experts": 4, "topk": 2, "aux": 0.5, "seq": true}})", "_moe_seq"});
}

// DeepSeek-V3's router: sigmoid scores, top-4 of 8 experts from the best 2 of 4 groups (each
// scored by its top 2), scaled by 2.5, a shared expert; the softmax router limited to 1 of 3
// groups; top-1 sigmoid.
TEST_CASE("GPT with mixture-of-experts routers by sigmoid scores and by expert groups equals PyTorch", "[reference]") {
  check_against_torch(4, 2,
                      {fmt::format("{}\nnum_experts = 8\nmoe_router_topk = 4\nmoe_ffn_hidden_size = 16\n"
                                   "moe_router_score_function = \"sigmoid\"\nmoe_router_num_groups = 4\n"
                                   "moe_router_group_topk = 2\nmoe_router_topk_scaling_factor = 2.5\n"
                                   "moe_aux_loss_coeff = 0.3\nmoe_z_loss_coeff = 0.01\n"
                                   "moe_shared_expert_intermediate_size = 24",
                                   kLlamaToml),
                       fmt::format(R"({{{}, "moe": {{"experts": 8, "topk": 4, "sigmoid": true, "groups": 4,
                                   "group_topk": 2, "scale": 2.5, "aux": 0.3, "z": 0.01, "shared": 24}}}})",
                                   kLlamaJson),
                       "_moe_sigmoid_groups"});
  check_against_torch(4, 4,
                      {"num_experts = 6\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 24\nmoe_router_num_groups = 3\n"
                       "moe_router_group_topk = 1\nmoe_aux_loss_coeff = 0.5\nmoe_z_loss_coeff = 0.01",
                       R"({"moe": {"experts": 6, "topk": 2, "groups": 3, "group_topk": 1, "aux": 0.5, "z": 0.01}})",
                       "_moe_groups"});
  check_against_torch(4, 4,
                      {"num_experts = 4\nmoe_router_topk = 1\nmoe_ffn_hidden_size = 24\n"
                       "moe_router_score_function = \"sigmoid\"\nmoe_aux_loss_coeff = 0.5",
                       R"({"moe": {"experts": 4, "topk": 1, "sigmoid": true, "aux": 0.5}})", "_moe_sigmoid_top1"});
  // With the expert bias (aux-loss-free balancing): the test gives every 1-D tensor random values,
  // the bias included, so it changes which experts are chosen; it has no gradient.
  check_against_torch(4, 4,
                      {"num_experts = 6\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 24\n"
                       "moe_router_score_function = \"sigmoid\"\nmoe_router_enable_expert_bias = true\n"
                       "moe_router_load_balancing_type = \"seq_aux_loss\"\nmoe_aux_loss_coeff = 0.5",
                       R"({"moe": {"experts": 6, "topk": 2, "sigmoid": true, "bias": true, "seq": true, "aux": 0.5}})",
                       "_moe_expert_bias"});
}

// Sinkhorn routing (Megatron-Core's sinkhorn_load_balancing), top-1 by sigmoid and top-2 by softmax,
// with the z-loss.
TEST_CASE("GPT with Sinkhorn-routed mixture-of-experts MLPs equals PyTorch", "[reference]") {
  check_against_torch(4, 4,
                      {"num_experts = 4\nmoe_router_topk = 1\nmoe_ffn_hidden_size = 24\n"
                       "moe_router_load_balancing_type = \"sinkhorn\"\nmoe_z_loss_coeff = 0.01",
                       R"({"moe": {"experts": 4, "topk": 1, "sinkhorn": true, "z": 0.01}})", "_moe_sinkhorn_top1"});
  check_against_torch(4, 2,
                      {fmt::format("{}\nnum_experts = 6\nmoe_router_topk = 2\nmoe_router_load_balancing_type = "
                                   "\"sinkhorn\"",
                                   kLlamaToml),
                       fmt::format(R"({{{}, "moe": {{"experts": 6, "topk": 2, "sinkhorn": true}}}})", kLlamaJson),
                       "_llama_moe_sinkhorn"});
}

// 39 tokens routed to 2 of 4 experts: capacity factor 0.5 leaves each expert 10 of its ~20 tokens,
// 0.75 leaves 15 (tests/model/test_moe_routing.cpp checks the cut itself).
TEST_CASE("GPT with mixture-of-experts MLPs dropping tokens over capacity (by probs, by position) equals PyTorch",
          "[reference]") {
  check_against_torch(4, 4,
                      {"num_experts = 4\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 24\nmoe_aux_loss_coeff = 0.5\n"
                       "moe_expert_capacity_factor = 0.5",
                       R"({"moe": {"experts": 4, "topk": 2, "aux": 0.5, "capacity": 0.5}})", "_moe_drop_probs"});
  check_against_torch(4, 2,
                      {fmt::format("{}\nnum_experts = 4\nmoe_router_topk = 2\nmoe_router_pre_softmax = true\n"
                                   "moe_expert_capacity_factor = 0.75\nmoe_token_drop_policy = \"position\"\n"
                                   "moe_z_loss_coeff = 0.01",
                                   kLlamaToml),
                       fmt::format(R"({{{}, "moe": {{"experts": 4, "topk": 2, "pre_softmax": true, "capacity": 0.75,
                                   "drop": "position", "z": 0.01}}}})",
                                   kLlamaJson),
                       "_llama_moe_drop_position"});
}

// Megatron-Core's multi-token prediction (DeepSeek-V3): depths after the last layer, each predicting
// one token further with the model's embedding (learned positions rolled too) and tied head; their
// losses weighted in the objective, reported apart.
TEST_CASE("GPT with multi-token prediction (2 depths, learned positions, tied head) equals PyTorch", "[reference]") {
  check_against_torch(4, 2,
                      {"mtp_num_layers = 2\nmtp_loss_scaling_factor = 0.3", R"({"mtp": {"layers": 2, "scale": 0.3}})",
                       "_mtp"});
}

// mtp_use_repeated_layer: depth 0's weights at every depth, their gradients summed over the depths.
TEST_CASE("GPT with multi-token prediction repeating one layer (3 depths, mtp_use_repeated_layer) equals PyTorch",
          "[reference]") {
  check_against_torch(4, 2,
                      {"mtp_num_layers = 3\nmtp_use_repeated_layer = true",
                       R"({"mtp": {"layers": 3, "repeated": true}})", "_mtp_repeated"});
}

TEST_CASE("Llama-style GPT with multi-token prediction built like a mixture-of-experts last layer equals PyTorch",
          "[reference]") {
  // Layer 1 of 0–1 is a mixture of experts, so the depth's layer is one too: its router losses join
  // the totals (2 layers report).
  check_against_torch(4, 2,
                      {fmt::format("{}\nnum_experts = 4\nmoe_router_topk = 2\nmoe_layer_freq = [0, 1]\n"
                                   "moe_aux_loss_coeff = 0.1\nmtp_num_layers = 1",
                                   kLlamaToml),
                       fmt::format(R"({{{}, "moe": {{"experts": 4, "topk": 2, "aux": 0.1, "layers": [0, 1]}}, "mtp": {{"layers": 1}}}})",
                                   kLlamaJson),
                       "_llama_moe_mtp", 2});
  // The one shared layer of two depths is a mixture of experts: it reports at each depth (3 reports).
  check_against_torch(4, 2,
                      {fmt::format("{}\nnum_experts = 4\nmoe_router_topk = 2\nmoe_layer_freq = [0, 1]\n"
                                   "moe_aux_loss_coeff = 0.1\nmtp_num_layers = 2\nmtp_use_repeated_layer = true",
                                   kLlamaToml),
                       fmt::format(R"({{{}, "moe": {{"experts": 4, "topk": 2, "aux": 0.1, "layers": [0, 1]}}, "mtp": {{"layers": 2, "repeated": true}}}})",
                                   kLlamaJson),
                       "_llama_moe_mtp_repeated", 3});
}
