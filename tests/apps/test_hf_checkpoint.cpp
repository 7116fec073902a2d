// tessera checkpoint export --to hf / import --from hf (docs/checkpoints.md "Hugging Face export and
// import"): trained tiny GPTs exported as gpt2, gpt_bigcode (multi-query and multi-head) and llama
// folders give the logits Tessera gives, computed by plain PyTorch models written from transformers'
// modelling code (hf_gpt_reference.py), within 1e-5 relative; import → export reproduces every
// tensor's bytes; tokenizer files travel; bad input fails naming the file or key with OUT/ untouched.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <tuple>

#include <nlohmann/json.hpp>

#include "tessera/generation.hpp"
#include "tessera/io/safetensors.hpp"
#include "tessera/ops.hpp"
#include "tessera/train/components.hpp"
#include "tessera/train/saved_model.hpp"
#include "tessera_cli.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using tessera::test::CliRun;
using tessera::test::CliWorkspace;
using tessera::test::run_tessera;
using tessera::test::tessera_cli;

namespace {

const std::vector<std::int32_t> kTokens = {35, 105, 110, 99, 108, 117, 100, 101, 32, 256, 60, 116, 101, 115, 115, 101,
                                           114, 97, 47, 110, 110, 47, 109, 108, 112, 46, 104, 112, 112, 62, 10, 10};

// Trains the workspace's config with `overrides` into `save` (3 iterations).
void train(const CliWorkspace& w, const std::string& save, const std::string& overrides) {
  const CliRun r = run_tessera("train " + w.config + " --set training.train_iters=3 --set checkpoint.save=" + save + " " +
                               overrides);
  INFO(r.output);
  REQUIRE(r.ok());
}

// Tessera's logits after every prefix of kTokens (the generation interface), as raw f32 [T, V].
void write_tessera_logits(const std::string& load, const std::string& path) {
  SavedModel saved = open_saved_model(load);
  auto tokenizer = build_tokenizer(saved.config);
  auto model = build_model(saved.config, tokenizer->vocab_size(), 0);
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  load_saved_weights(saved, params);
  Generator& g = require_generator(*model, "gpt");
  std::ofstream out(path, std::ios::binary);
  for (std::size_t t = 1; t <= kTokens.size(); ++t) {
    const std::vector<std::int32_t> prefix(kTokens.begin(), kTokens.begin() + static_cast<std::ptrdiff_t>(t));
    const std::vector<float> logits =
        g.next_token_logits(Tensor::from<std::int32_t>({1, static_cast<std::int64_t>(t)}, prefix)).to_vector<float>();
    out.write(reinterpret_cast<const char*>(logits.data()), static_cast<std::streamsize>(logits.size() * sizeof(float)));
  }
}

// The HF folder's logits by the PyTorch reference equal Tessera's from `load` within 1e-5 relative.
void check_logits(const std::string& load, const std::string& hf, const std::string& scratch) {
  write_tessera_logits(load, scratch);
  std::string tokens;
  for (std::int32_t t : kTokens) {
    if (!tokens.empty()) tokens += ',';
    tokens += std::to_string(t);
  }
  int status = 0;
  const std::string out = tessera::test::run_command(
      {"/usr/bin/python3", TESSERA_SOURCE_DIR "/tests/apps/hf_gpt_reference.py", hf, tokens, scratch}, &status, true);
  INFO(out);
  CHECK(status == 0);
  std::printf("%s", out.c_str());  // the measured difference, in the test's log
}

// Every tensor of two safetensors files: the same names, dtypes, shapes and bytes.
void require_same_tensors(const std::string& a, const std::string& b) {
  const SafetensorsFile x = load_safetensors(a), y = load_safetensors(b);
  REQUIRE(x.tensors.size() == y.tensors.size());
  for (const auto& [name, t] : x.tensors) {
    INFO(name);
    REQUIRE(y.tensors.count(name) == 1);
    const Tensor& u = y.tensors.at(name);
    REQUIRE(t.dtype() == u.dtype());
    REQUIRE(t.shape() == u.shape());
    CHECK(std::memcmp(t.raw(), u.raw(), t.nbytes()) == 0);
  }
}

std::string json_text(const std::string& path) { return tessera::test::read_text(path); }

// "lm loss: …" of the log line of iteration 1.
std::string first_loss(const std::string& log) {
  const std::size_t line = log.find(" iteration        1/");
  const std::size_t at = line == std::string::npos ? line : log.find("lm loss: ", line);
  return at == std::string::npos ? "" : log.substr(at, log.find(' ', at + 9) - at);
}

// Export, logits against PyTorch, import, export again: the same tensors. Returns config.json.
std::string export_round_trip(const CliWorkspace& w, const std::string& save, const std::string& name,
                              const std::string& export_args = "") {
  const std::string hf = w.dir / (name + "_hf"), imported = w.dir / (name + "_imported"), again = w.dir / (name + "_again");
  CliRun r = run_tessera("checkpoint export --to hf " + export_args + " " + save + " " + hf);
  INFO(r.output);
  REQUIRE(r.ok());
  check_logits(save, hf, w.dir / (name + "_logits.f32"));
  r = run_tessera("checkpoint import --from hf " + hf + " " + imported);
  INFO(r.output);
  REQUIRE(r.ok());
  CHECK(fs::is_regular_file(imported + "/config.toml"));
  r = run_tessera("checkpoint export --to hf " + export_args + " " + imported + " " + again);
  INFO(r.output);
  REQUIRE(r.ok());
  require_same_tensors(hf + "/model.safetensors", again + "/model.safetensors");
  check_logits(imported, hf, w.dir / (name + "_logits2.f32"));  // the imported model is the same model
  r = run_tessera("generate --load " + imported + " --prompt x --max-new-tokens 4");
  INFO(r.output);
  CHECK(r.ok());
  return json_text(hf + "/config.json");
}

// A Llama-style model on the workspace's config (GQA, untied head).
const std::string kLlama =
    "--set model.num_attention_heads=4 --set model.num_query_groups=2 --set model.position_embedding_type=rope "
    "--set model.normalization=RMSNorm --set model.swiglu=true --set model.ffn_hidden_size=48 "
    "--set model.add_bias_linear=false --set model.untie_embeddings_and_output_weights=true";

// Rewrites `hf`/config.json through `change`.
void edit_config_json(const std::string& hf, const std::function<void(nlohmann::json&)>& change) {
  nlohmann::json j = nlohmann::json::parse(json_text(hf + "/config.json"));
  change(j);
  tessera::test::write_text(hf + "/config.json", j.dump(2));
}

// Imports the HF folder `hf` (config.json edited) to `out`: its config.toml holds `toml_line`
// (empty: not checked), and its logits are PyTorch's reading of `hf`.
void import_edited(const std::string& hf, const std::string& out, const std::string& toml_line) {
  const CliRun r = run_tessera("checkpoint import --from hf " + hf + " " + out);
  INFO(r.output);
  REQUIRE(r.ok());
  if (!toml_line.empty()) CHECK(tessera::test::read_text(out + "/config.toml").find(toml_line) != std::string::npos);
  check_logits(out, hf, out + ".f32");
}

// Copies the HF folder `hf` to `packed` with each layer's experts as transformers 5 saves them when
// it does not restore the original format: mlp.experts.gate_up_proj [E, 2F, C] (each expert's gate
// rows, then its up rows) and mlp.experts.down_proj [E, C, F], Mixtral's block_sparse_moe renamed mlp.
void pack_experts(const std::string& hf, const std::string& packed, std::int64_t layers, std::int64_t experts) {
  fs::copy(hf, packed);
  SafetensorsFile f = load_safetensors(packed + "/model.safetensors");
  auto& t = f.tensors;
  for (std::int64_t l = 0; l < layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    const bool mixtral = t.count(p + "block_sparse_moe.gate.weight") > 0;
    const std::string from = p + (mixtral ? "block_sparse_moe." : "mlp.");
    if (!t.count(from + "gate.weight")) continue;  // a dense layer
    const auto name = [&](std::int64_t e, const char* mixtral_name, const char* qwen_name) {
      return fmt::format("{}experts.{}.{}.weight", from, e, mixtral ? mixtral_name : qwen_name);
    };
    const Tensor& g0 = t.at(name(0, "w1", "gate_proj"));
    const std::int64_t F = g0.size(0), C = g0.size(1);
    Tensor gate_up = Tensor::empty({experts, 2 * F, C}), down = Tensor::empty({experts, C, F});
    for (std::int64_t e = 0; e < experts; ++e) {
      const Tensor &gate = t.at(name(e, "w1", "gate_proj")), &up = t.at(name(e, "w3", "up_proj")),
                   &d = t.at(name(e, "w2", "down_proj"));
      char* dst = static_cast<char*>(gate_up.raw()) + e * 2 * gate.nbytes();
      std::memcpy(dst, gate.raw(), gate.nbytes());
      std::memcpy(dst + gate.nbytes(), up.raw(), up.nbytes());
      std::memcpy(static_cast<char*>(down.raw()) + e * d.nbytes(), d.raw(), d.nbytes());
      for (const char* part : {"w1", "w2", "w3", "gate_proj", "up_proj", "down_proj"})
        t.erase(fmt::format("{}experts.{}.{}.weight", from, e, part));
    }
    Tensor router = t.at(from + "gate.weight");
    t.erase(from + "gate.weight");
    t[p + "mlp.gate.weight"] = router;
    t[p + "mlp.experts.gate_up_proj"] = gate_up;
    t[p + "mlp.experts.down_proj"] = down;
  }
  save_safetensors(packed + "/model.safetensors", NamedTensors(t.begin(), t.end()), {{"format", "pt"}});
}

// <name>_hf (2 layers, 4 experts) with its experts packed imports to <name>_imported's tensors, and
// gives PyTorch's logits on the per-expert folder.
void check_packed_import(const CliWorkspace& w, const std::string& name) {
  const std::string packed = w.dir / (name + "_packed");
  pack_experts(w.dir / (name + "_hf"), packed, 2, 4);
  const CliRun r = run_tessera("checkpoint import --from hf " + packed + " " + packed + "_imported");
  INFO(r.output);
  REQUIRE(r.ok());
  require_same_tensors(w.dir / (name + "_imported/model.safetensors"), packed + "_imported/model.safetensors");
  check_logits(packed + "_imported", w.dir / (name + "_hf"), packed + ".f32");
}

// `tessera <command> <out>` fails cleanly, naming `what`, and writes nothing at `out`.
void check_refused(const std::string& command, const std::string& out, const std::string& what) {
  const CliRun e = run_tessera(command + " " + out);
  INFO(e.output);
  CHECK(e.clean_error());
  CHECK(e.has(what));
  CHECK(!fs::exists(out));
}

bool no_temporary_folders(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) return false;
  return true;
}

}  // namespace

TEST_CASE("gpt2 export: a PyTorch GPT-2 on HF's names gives Tessera's logits; import → export is byte-identical") {
  CliWorkspace w;
  train(w, w.dir / "save", "--set model.num_query_groups=2");
  const std::string config = export_round_trip(w, w.dir / "save", "gpt2");
  CHECK(config.find("\"model_type\": \"gpt2\"") != std::string::npos);
  CHECK(config.find("\"vocab_size\": 257") != std::string::npos);  // the byte tokenizer's, not the padded 384
  CHECK(config.find("\"plugin\": \"byte\"") != std::string::npos);
  // The padded vocabulary is gone from the file: wte holds the 257 real rows.
  CHECK(load_safetensors(w.dir / "gpt2_hf/model.safetensors").tensors.at("transformer.wte.weight").shape() ==
        Shape{257, 32});
  // Training starts from the imported folder (final weights only: iteration 1, a fresh optimizer) as
  // from the weights it came from.
  const CliRun from_import = run_tessera("train " + w.config + " --set model.num_query_groups=2 --set training.train_iters=1 "
                                         "--set checkpoint.save=" + w.dir / "ft1" + " --set checkpoint.load=" + w.dir / "gpt2_imported");
  const CliRun from_save = run_tessera("train " + w.config + " --set model.num_query_groups=2 --set training.train_iters=1 "
                                       "--set checkpoint.save=" + w.dir / "ft2" + " --set checkpoint.load=" + w.dir / "save");
  INFO(from_import.output << from_save.output);
  REQUIRE(from_import.ok());
  REQUIRE(from_save.ok());
  CHECK(from_import.has("holds final weights only"));
  CHECK(!first_loss(from_import.output).empty());
  CHECK(first_loss(from_import.output) == first_loss(from_save.output));
  // A tensor-parallel-free resumable checkpoint folder exports too (the same weights as the final ones).
  train(w, w.dir / "save_ckpt", "--set model.num_query_groups=2 --set checkpoint.save_interval=3");
  const CliRun r = run_tessera("checkpoint export --to hf " + w.dir / "save_ckpt/iter_0000003" + " " + w.dir / "ckpt_hf");
  INFO(r.output);
  REQUIRE(r.ok());
  require_same_tensors(w.dir / "gpt2_hf/model.safetensors", w.dir / "ckpt_hf/model.safetensors");
}

TEST_CASE("gpt_bigcode export: multi-query (and multi-head with --architecture) against PyTorch, round trip") {
  CliWorkspace w;  // num_query_groups = 1
  train(w, w.dir / "mqa", "");
  std::string config = export_round_trip(w, w.dir / "mqa", "mqa");
  CHECK(config.find("\"model_type\": \"gpt_bigcode\"") != std::string::npos);
  CHECK(config.find("\"multi_query\": true") != std::string::npos);
  train(w, w.dir / "mha", "--set model.num_query_groups=2 --set model.attention_dropout=0.125");
  config = export_round_trip(w, w.dir / "mha", "bigcode_mha", "--architecture gpt_bigcode");
  CHECK(config.find("\"multi_query\": false") != std::string::npos);
  // The probabilities' dropout travels both ways (HF's attn_pdrop).
  CHECK(config.find("\"attn_pdrop\": 0.125") != std::string::npos);
  CHECK(tessera::test::read_text(w.dir / "bigcode_mha_imported/config.toml").find("attention_dropout = 0.125") !=
        std::string::npos);
}

TEST_CASE("llama export: rope, RMSNorm, SwiGLU, GQA, untied head against PyTorch; interleaved rope permuted") {
  CliWorkspace w;
  const std::string llama = kLlama;
  train(w, w.dir / "llama", llama + " --set model.attention_dropout=0.25");
  const std::string config = export_round_trip(w, w.dir / "llama", "llama");
  CHECK(config.find("\"attention_dropout\": 0.25") != std::string::npos);
  CHECK(config.find("\"model_type\": \"llama\"") != std::string::npos);
  CHECK(config.find("\"num_key_value_heads\": 2") != std::string::npos);
  CHECK(config.find("\"tie_word_embeddings\": false") != std::string::npos);
  // Megatron's interleaved rotary pairs: export permutes q/k rows into HF's rotate_half layout.
  train(w, w.dir / "interleaved", llama + " --set model.rotary_interleaved=true --set model.untie_embeddings_and_output_weights=false");
  CliRun r = run_tessera("checkpoint export --to hf " + w.dir / "interleaved" + " " + w.dir / "interleaved_hf");
  INFO(r.output);
  REQUIRE(r.ok());
  check_logits(w.dir / "interleaved", w.dir / "interleaved_hf", w.dir / "interleaved.f32");
  // Heads of another width than hidden / heads (Tessera's kv_channels, HF's head_dim): exported,
  // checked against PyTorch, imported back with kv_channels.
  train(w, w.dir / "wide_heads", llama + " --set model.kv_channels=12");
  const std::string wide = export_round_trip(w, w.dir / "wide_heads", "wide_heads");
  CHECK(wide.find("\"head_dim\": 12") != std::string::npos);
  CHECK(tessera::test::read_text(w.dir / "wide_heads_imported/config.toml").find("kv_channels = 12") != std::string::npos);
  // Llama 3.1's rope scaling (Megatron's use_rope_scaling): exported as rope_scaling "llama3", checked
  // against PyTorch with Hugging Face's formula, imported back.
  train(w, w.dir / "scaled", llama + " --set model.use_rope_scaling=true --set model.rope_scaling_factor=32 "
                                     "--set model.rotary_base=500000");
  const std::string scaled = export_round_trip(w, w.dir / "scaled", "scaled");
  CHECK(scaled.find("\"rope_type\": \"llama3\"") != std::string::npos);
  CHECK(scaled.find("\"factor\": 32") != std::string::npos);
  CHECK(tessera::test::read_text(w.dir / "scaled_imported/config.toml").find("use_rope_scaling = true") !=
        std::string::npos);
  // Linear position interpolation (Megatron's --rotary-seq-len-interpolation-factor): rope_scaling
  // "linear", checked against PyTorch with Hugging Face's formula, imported back; not with Llama 3.1's.
  train(w, w.dir / "interpolated", llama + " --set model.rotary_seq_len_interpolation_factor=4");
  const std::string interpolated = export_round_trip(w, w.dir / "interpolated", "interpolated");
  CHECK(interpolated.find("\"rope_type\": \"linear\"") != std::string::npos);
  CHECK(interpolated.find("\"factor\": 4") != std::string::npos);
  CHECK(tessera::test::read_text(w.dir / "interpolated_imported/config.toml")
            .find("rotary_seq_len_interpolation_factor = 4") != std::string::npos);
  // YaRN (position_embedding_type = "yarn", gpt-oss's and Qwen's long-context rope): rope_scaling
  // "yarn" with max_position_embeddings = factor × original (32 = 4 × 8), checked against PyTorch with
  // Hugging Face's formula, imported back; DeepSeek's mscale / mscale_all_dim and an explicit
  // attention_factor import as the same magnitudes; a config whose max_position_embeddings is not
  // factor × original, which transformers versions read differently, is refused naming both.
  train(w, w.dir / "yarn", llama + " --set model.position_embedding_type=yarn --set model.yarn_rotary_scaling_factor=4 "
                                   "--set model.yarn_original_max_position_embeddings=8");
  const std::string yarn = export_round_trip(w, w.dir / "yarn", "yarn");
  const nlohmann::json yj = nlohmann::json::parse(yarn);
  CHECK(yj["rope_scaling"]["rope_type"] == "yarn");
  CHECK(yj["rope_scaling"]["factor"] == 4.0);
  CHECK(yj["rope_scaling"]["original_max_position_embeddings"] == 8);
  CHECK(yj["max_position_embeddings"] == 32);
  CHECK(tessera::test::read_text(w.dir / "yarn_imported/config.toml").find("position_embedding_type = \"yarn\"") !=
        std::string::npos);
  for (const auto& [name, change] : std::vector<std::pair<std::string, std::function<void(nlohmann::json&)>>>{
           {"mscale", [](nlohmann::json& j) { j["rope_scaling"]["mscale"] = 0.707; j["rope_scaling"]["mscale_all_dim"] = 0.3; }},
           {"attention_factor", [](nlohmann::json& j) { j["rope_scaling"]["attention_factor"] = 1.25; }}}) {
    INFO(name);
    edit_config_json(w.dir / "yarn_hf", [&](nlohmann::json& j) {
      j["rope_scaling"].erase("mscale");
      j["rope_scaling"].erase("mscale_all_dim");
      change(j);
    });
    import_edited(w.dir / "yarn_hf", w.dir / ("yarn_" + name), "position_embedding_type = \"yarn\"");
  }
  edit_config_json(w.dir / "yarn_hf", [](nlohmann::json& j) { j["max_position_embeddings"] = 8; });
  r = run_tessera("checkpoint import --from hf " + w.dir / "yarn_hf" + " " + w.dir / "yarn_ambiguous");
  CHECK(r.clean_error());
  CHECK(r.has("rope_scaling"));
  CHECK(r.has("max_position_embeddings"));
  // Qwen2: a Llama-style model with biases on q, k and v (add_qkv_bias) exports as qwen2, with its
  // biases (rotated with their rows when the rotary pairs are interleaved), and imports back.
  train(w, w.dir / "qwen2", llama + " --set model.add_qkv_bias=true --set model.rotary_interleaved=true");
  const std::string qwen2 = export_round_trip(w, w.dir / "qwen2", "qwen2");
  CHECK(qwen2.find("\"model_type\": \"qwen2\"") != std::string::npos);
  CHECK(qwen2.find("\"use_sliding_window\": false") != std::string::npos);
  CHECK(tessera::test::read_text(w.dir / "qwen2_imported/config.toml").find("add_qkv_bias = true") != std::string::npos);
  // Qwen's per-layer sliding window (Megatron-Core's window_attn_skip_freq): a window of 6 keys in
  // layer 1 only exports as use_sliding_window with layer_types and max_window_layers 1, gives
  // PyTorch's logits with transformers' per-layer masks, and imports back.
  train(w, w.dir / "qwen2_window", llama + " --set model.add_qkv_bias=true --set model.window_size=[5,0] "
                                           "--set model.window_attn_skip_freq=[0,1]");
  const std::string qwen2_window = export_round_trip(w, w.dir / "qwen2_window", "qwen2_window");
  const nlohmann::json qw = nlohmann::json::parse(qwen2_window);
  CHECK(qw["use_sliding_window"] == true);
  CHECK(qw["sliding_window"] == 6);
  CHECK(qw["max_window_layers"] == 1);
  CHECK(qw["layer_types"] == nlohmann::json::array({"full_attention", "sliding_attention"}));
  CHECK(tessera::test::read_text(w.dir / "qwen2_window_imported/config.toml").find("window_attn_skip_freq = [0, 1]") !=
        std::string::npos);
  // Without layer_types (transformers before 2025) max_window_layers picks the same layers; with
  // layer_types, any layers: the window in layer 0 only is PyTorch's model too.
  edit_config_json(w.dir / "qwen2_window_hf", [](nlohmann::json& j) { j.erase("layer_types"); });
  r = run_tessera("checkpoint import --from hf " + w.dir / "qwen2_window_hf" + " " + w.dir / "qwen2_window_mwl");
  REQUIRE(r.ok());
  CHECK(tessera::test::read_text(w.dir / "qwen2_window_mwl/config.toml").find("window_attn_skip_freq = [0, 1]") !=
        std::string::npos);
  edit_config_json(w.dir / "qwen2_window_hf", [](nlohmann::json& j) {
    j["layer_types"] = {"sliding_attention", "full_attention"};
  });
  import_edited(w.dir / "qwen2_window_hf", w.dir / "qwen2_window_first", "window_attn_skip_freq = [1, 0]");
  // use_sliding_window false: no window, whatever layer_types says (transformers drops sliding_window).
  edit_config_json(w.dir / "qwen2_window_hf", [](nlohmann::json& j) { j["use_sliding_window"] = false; });
  import_edited(w.dir / "qwen2_window_hf", w.dir / "qwen2_window_off", "");
  CHECK(tessera::test::read_text(w.dir / "qwen2_window_off/config.toml").find("window_size") == std::string::npos);
  // Bad layer types are refused, naming the key; mistral (a Llama-style model's with a window) has
  // one window for every layer.
  edit_config_json(w.dir / "qwen2_window_hf", [](nlohmann::json& j) {
    j["use_sliding_window"] = true;
    j["layer_types"] = {"sliding_attention", "chunked_attention"};
  });
  r = run_tessera("checkpoint import --from hf " + w.dir / "qwen2_window_hf" + " " + w.dir / "qwen2_window_bad");
  CHECK(r.clean_error());
  CHECK(r.has("layer_types"));
  CHECK(r.has("chunked_attention"));
  train(w, w.dir / "llama_window_layers", llama + " --set model.window_size=[5,0] --set model.window_attn_skip_freq=2");
  r = run_tessera("checkpoint export --to hf " + w.dir / "llama_window_layers" + " " + w.dir / "llama_window_layers_hf");
  CHECK(r.clean_error());
  CHECK(r.has("model.window_attn_skip_freq"));
  CHECK(r.has("mistral"));
  // Attention sinks without gpt-oss's experts: no Hugging Face architecture has them, refused naming the key.
  train(w, w.dir / "llama_sinks", llama + " --set model.softmax_type=learnable");
  r = run_tessera("checkpoint export --to hf " + w.dir / "llama_sinks" + " " + w.dir / "llama_sinks_hf");
  CHECK(r.clean_error());
  CHECK(r.has("model.softmax_type"));
  // Mixtral: a Llama-style model with mixture-of-experts MLPs (num_experts) exports as mixtral, its
  // router and SwiGLU experts as block_sparse_moe's gate and w1/w3/w2, checked against PyTorch with
  // Mixtral's routing (softmax, top-k, renormalised), and imports back.
  train(w, w.dir / "mixtral",
        llama + " --set model.num_experts=4 --set model.moe_router_topk=2 --set model.moe_ffn_hidden_size=24 "
                "--set model.moe_aux_loss_coeff=0.01");
  const std::string mixtral = export_round_trip(w, w.dir / "mixtral", "mixtral");
  CHECK(mixtral.find("\"model_type\": \"mixtral\"") != std::string::npos);
  CHECK(mixtral.find("\"num_local_experts\": 4") != std::string::npos);
  CHECK(mixtral.find("\"num_experts_per_tok\": 2") != std::string::npos);
  CHECK(mixtral.find("\"intermediate_size\": 24") != std::string::npos);
  const std::string mixtral_toml = tessera::test::read_text(w.dir / "mixtral_imported/config.toml");
  CHECK(mixtral_toml.find("num_experts = 4") != std::string::npos);
  CHECK(mixtral_toml.find("moe_ffn_hidden_size = 24") != std::string::npos);
  check_packed_import(w, "mixtral");  // transformers 5's packed experts: the same model
  // A dense model is not a mixtral, nor pre-softmax routing (Mixtral renormalises the chosen weights).
  r = run_tessera("checkpoint export --to hf --architecture mixtral " + w.dir / "llama" + " " + w.dir / "not_mixtral");
  CHECK(r.clean_error());
  CHECK(r.has("model.num_experts"));
  // Mistral: llama's layers; exported on request, imported back as the same model.
  const std::string mistral = export_round_trip(w, w.dir / "llama", "mistral", "--architecture mistral");
  CHECK(mistral.find("\"model_type\": \"mistral\"") != std::string::npos);
  CHECK(mistral.find("\"sliding_window\": null") != std::string::npos);
  // gpt2 has no sliding window: refused, naming the key.
  train(w, w.dir / "gpt2_window", "--set model.num_query_groups=4 --set model.num_attention_heads=4 "
                                  "--set model.window_size=[7,0]");
  const CliRun gpt2_window = run_tessera("checkpoint export --to hf " + w.dir / "gpt2_window" + " " + w.dir / "gw_hf");
  CHECK(gpt2_window.clean_error());
  CHECK(gpt2_window.has("model.window_size"));
  // A window shorter than the context (Mistral 7B v0.1's 4096 of 32768) imports as window_size: the
  // same logits as PyTorch's sliding-window mask; one that covers the context changes nothing.
  std::string windowed = mistral;
  windowed.replace(windowed.find("\"sliding_window\": null"), 22, "\"sliding_window\": 6");
  tessera::test::write_text(w.dir / "mistral_hf/config.json", windowed);
  import_edited(w.dir / "mistral_hf", w.dir / "windowed", "window_size = [5, 0]");
  // … and exports back with its sliding_window (mistral without asking: a Llama-style model with a window).
  r = run_tessera("checkpoint export --to hf " + w.dir / "windowed" + " " + w.dir / "windowed_hf");
  INFO(r.output);
  REQUIRE(r.ok());
  CHECK(json_text(w.dir / "windowed_hf/config.json").find("\"sliding_window\": 6") != std::string::npos);
  require_same_tensors(w.dir / "mistral_hf/model.safetensors", w.dir / "windowed_hf/model.safetensors");
  // llama has no window: refused, naming the key.
  const CliRun llama_window =
      run_tessera("checkpoint export --to hf --architecture llama " + w.dir / "windowed" + " " + w.dir / "windowed_llama");
  CHECK(llama_window.clean_error());
  CHECK(llama_window.has("model.window_size"));
  windowed.replace(windowed.find("\"sliding_window\": 6"), 19, "\"sliding_window\": 32");
  tessera::test::write_text(w.dir / "mistral_hf/config.json", windowed);
  r = run_tessera("checkpoint import --from hf " + w.dir / "mistral_hf" + " " + w.dir / "whole_window");
  CHECK(r.ok());
  CHECK(tessera::test::read_text(w.dir / "whole_window/config.toml").find("window_size") == std::string::npos);
  // Biases qwen2 has and llama lacks, and the reverse: refused, naming the key.
  const CliRun llama_bias = run_tessera("checkpoint export --to hf --architecture llama " + w.dir / "qwen2" + " " +
                                        w.dir / "qwen2_as_llama");
  CHECK(llama_bias.clean_error());
  CHECK(llama_bias.has("model.add_qkv_bias"));
  const CliRun qwen2_no_bias = run_tessera("checkpoint export --to hf --architecture qwen2 " + w.dir / "llama" + " " +
                                           w.dir / "llama_as_qwen2");
  CHECK(qwen2_no_bias.clean_error());
  CHECK(qwen2_no_bias.has("qwen2's q, k and v projections have biases"));
  train(w, w.dir / "both", llama + " --set model.rotary_seq_len_interpolation_factor=4 --set model.use_rope_scaling=true");
  const CliRun both = run_tessera("checkpoint export --to hf " + w.dir / "both" + " " + w.dir / "both_hf");
  CHECK(both.clean_error());
  CHECK(both.has("model.rotary_seq_len_interpolation_factor"));
}

TEST_CASE("Qwen export: qwen3's q/k norms, qwen2_moe's gated shared expert and dense layers, qwen3_moe, against PyTorch") {
  CliWorkspace w;
  // Qwen3: RMSNorms over each head of q and k (Tessera's qk_layernorm), here with interleaved rotary
  // pairs (the norms' weights permuted with the rows) and heads wider than hidden / heads.
  train(w, w.dir / "qwen3", kLlama + " --set model.qk_layernorm=true --set model.rotary_interleaved=true "
                                     "--set model.kv_channels=12");
  const std::string qwen3 = export_round_trip(w, w.dir / "qwen3", "qwen3");
  CHECK(qwen3.find("\"model_type\": \"qwen3\"") != std::string::npos);
  CHECK(qwen3.find("\"head_dim\": 12") != std::string::npos);
  CHECK(qwen3.find("\"attention_bias\": false") != std::string::npos);
  CHECK(tessera::test::read_text(w.dir / "qwen3_imported/config.toml").find("qk_layernorm = true") != std::string::npos);
  // transformers 5 writes rope_theta inside "rope_parameters": read as the same model.
  edit_config_json(w.dir / "qwen3_hf", [](nlohmann::json& j) {
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", j["rope_theta"]}};
    j.erase("rope_theta");
    j.erase("rope_scaling");
  });
  import_edited(w.dir / "qwen3_hf", w.dir / "qwen3_v5", "");

  // Qwen2-MoE: q/k/v biases, a dense first layer (mlp_only_layers), the chosen experts' softmax
  // weights unnormalised (norm_topk_prob false: Tessera's pre-softmax routing) and a shared expert
  // gated by sigmoid(x · w).
  const std::string moe = " --set model.num_experts=4 --set model.moe_router_topk=2 --set model.moe_ffn_hidden_size=24 "
                          "--set model.moe_aux_loss_coeff=0.01";
  train(w, w.dir / "qwen2_moe",
        kLlama + moe + " --set model.add_qkv_bias=true --set model.moe_router_pre_softmax=true "
                       "--set model.moe_shared_expert_intermediate_size=40 --set model.moe_shared_expert_gate=true "
                       "--set model.moe_layer_freq=[0,1]");
  const std::string qwen2_moe = export_round_trip(w, w.dir / "qwen2_moe", "qwen2_moe");
  const nlohmann::json q2 = nlohmann::json::parse(qwen2_moe);
  CHECK(q2["model_type"] == "qwen2_moe");
  CHECK(q2["norm_topk_prob"] == false);
  CHECK(q2["shared_expert_intermediate_size"] == 40);
  CHECK(q2["moe_intermediate_size"] == 24);
  CHECK(q2["intermediate_size"] == 48);  // the dense layer's
  CHECK(q2["mlp_only_layers"] == nlohmann::json::array({0}));
  const std::string q2_toml = tessera::test::read_text(w.dir / "qwen2_moe_imported/config.toml");
  CHECK(q2_toml.find("moe_router_pre_softmax = true") != std::string::npos);
  CHECK(q2_toml.find("moe_shared_expert_gate = true") != std::string::npos);
  CHECK(q2_toml.find("moe_layer_freq = [0, 1]") != std::string::npos);
  check_packed_import(w, "qwen2_moe");  // packed experts; the shared expert stays per-projection
  // transformers' other way of making layer 0 dense: decoder_sparse_step 2 (layers 1, 3, … sparse).
  edit_config_json(w.dir / "qwen2_moe_hf", [](nlohmann::json& j) {
    j["decoder_sparse_step"] = 2;
    j["mlp_only_layers"] = nlohmann::json::array();
  });
  import_edited(w.dir / "qwen2_moe_hf", w.dir / "qwen2_moe_step", "moe_layer_freq = [0, 1]");
  // transformers' newer "qkv_bias": false (no biases on q, k and v): imported without add_qkv_bias,
  // exported back with the key and the same tensors.
  const std::string nobias = w.dir / "qwen2_moe_nobias";
  fs::copy(w.dir / "qwen2_moe_hf", nobias);
  edit_config_json(nobias, [](nlohmann::json& j) { j["qkv_bias"] = false; });
  NamedTensors unbiased;
  for (auto& [name, t] : load_safetensors(nobias + "/model.safetensors").tensors)
    if (name.find("_proj.bias") == std::string::npos) unbiased.emplace_back(name, t);
  save_safetensors(nobias + "/model.safetensors", unbiased, {{"format", "pt"}});
  CliRun r = run_tessera("checkpoint import --from hf " + nobias + " " + nobias + "_imported");
  INFO(r.output);
  REQUIRE(r.ok());
  CHECK(tessera::test::read_text(nobias + "_imported/config.toml").find("add_qkv_bias") == std::string::npos);
  check_logits(nobias + "_imported", nobias, nobias + ".f32");
  r = run_tessera("checkpoint export --to hf " + nobias + "_imported " + nobias + "_again");
  INFO(r.output);
  REQUIRE(r.ok());
  CHECK(nlohmann::json::parse(json_text(nobias + "_again/config.json"))["qkv_bias"] == false);
  require_same_tensors(nobias + "/model.safetensors", nobias + "_again/model.safetensors");

  // Qwen3-MoE: q/k norms, every layer sparse, top-k renormalised (norm_topk_prob), no shared expert.
  train(w, w.dir / "qwen3_moe", kLlama + moe + " --set model.qk_layernorm=true");
  const std::string qwen3_moe = export_round_trip(w, w.dir / "qwen3_moe", "qwen3_moe");
  const nlohmann::json q3 = nlohmann::json::parse(qwen3_moe);
  CHECK(q3["model_type"] == "qwen3_moe");
  CHECK(q3["norm_topk_prob"] == true);
  CHECK(q3["num_experts"] == 4);
  CHECK(q3["mlp_only_layers"] == nlohmann::json::array());
  CHECK(!q3.contains("shared_expert_intermediate_size"));

  // Phi-3 / Phi-4: fused qkv_proj and gate_up_proj, rope on a part of each head (partial_rotary_factor,
  // Tessera's rotary_percent; Phi-4-mini's 0.75), hidden dropout as resid_pdrop.
  train(w, w.dir / "phi3", kLlama + " --set model.rotary_percent=0.75 --set model.hidden_dropout=0.125");
  const nlohmann::json phi3 = nlohmann::json::parse(export_round_trip(w, w.dir / "phi3", "phi3"));
  CHECK(phi3["model_type"] == "phi3");
  CHECK(phi3["partial_rotary_factor"] == 0.75);
  CHECK(phi3["resid_pdrop"] == 0.125);
  CHECK(tessera::test::read_text(w.dir / "phi3_imported/config.toml").find("rotary_percent = 0.75") != std::string::npos);
  // A full-rotary Llama-style model exports as phi3 on request (Phi-4's shape), with GQA.
  train(w, w.dir / "phi4", kLlama);
  CHECK(nlohmann::json::parse(export_round_trip(w, w.dir / "phi4", "phi4", "--architecture phi3"))
            ["partial_rotary_factor"] == 1.0);

  // What an architecture cannot express: refused, naming the key.
  const auto refused = [&](const std::string& args, const std::string& key) {
    check_refused("checkpoint export --to hf " + args, w.dir / "refused", key);
  };
  refused("--architecture qwen2_moe " + w.dir / "qwen3_moe", "model.qk_layernorm");       // qwen2 has no q/k norms
  train(w, w.dir / "qk_bias", kLlama + " --set model.qk_layernorm=true --set model.add_qkv_bias=true");
  refused(w.dir / "qk_bias", "model.add_qkv_bias");  // qwen3's attention_bias would bias o_proj too
  refused("--architecture qwen3_moe " + w.dir / "qwen3", "model.num_experts");            // dense
  refused("--architecture mixtral " + w.dir / "qwen2_moe", "model.moe_router_pre_softmax");  // mixtral renormalises
  train(w, w.dir / "no_shared", kLlama + moe + " --set model.add_qkv_bias=true");
  refused("--architecture qwen2_moe " + w.dir / "no_shared", "model.moe_shared_expert_intermediate_size");
  refused("--architecture qwen3_moe " + w.dir / "qwen2_moe", "model.qk_layernorm");
  refused("--architecture phi3 " + w.dir / "qwen3", "model.qk_layernorm");
  refused("--architecture llama " + w.dir / "phi3", "model.rotary_percent");
}

TEST_CASE("gpt_oss export: learned sinks, biases, windows in alternate layers, YaRN and the clamped quick-GeGLU "
          "experts against PyTorch; import refusals") {
  CliWorkspace w;
  // gpt-oss's blocks (heads wider than hidden / heads, as gpt-oss's 64 of 2880 / 64): exported as
  // gpt_oss by default, the PyTorch reference reading its packed, interleaved experts.
  const std::string oss =
      "--set model.num_attention_heads=4 --set model.num_query_groups=2 --set model.kv_channels=12 "
      "--set model.position_embedding_type=yarn --set model.yarn_rotary_scaling_factor=4 "
      "--set model.yarn_original_max_position_embeddings=8 --set model.yarn_correction_range_round_to_int=false "
      "--set model.normalization=RMSNorm --set model.quick_geglu=true --set model.activation_func_clamp_value=7.0 "
      "--set model.glu_linear_offset=1.0 --set model.softmax_type=learnable --set model.window_size=[3,0] "
      "--set model.window_attn_skip_freq=2 --set model.num_experts=4 --set model.moe_router_topk=2 "
      "--set model.moe_ffn_hidden_size=32 --set model.untie_embeddings_and_output_weights=true";
  train(w, w.dir / "gpt_oss", oss);
  const nlohmann::json j = nlohmann::json::parse(export_round_trip(w, w.dir / "gpt_oss", "gpt_oss"));
  CHECK(j["model_type"] == "gpt_oss");
  CHECK(j["architectures"][0] == "GptOssForCausalLM");
  CHECK(j["attention_bias"] == true);
  CHECK(j["num_local_experts"] == 4);
  CHECK(j["num_experts_per_tok"] == 2);
  CHECK(j["intermediate_size"] == 32);
  CHECK(j["head_dim"] == 12);
  CHECK(j["sliding_window"] == 4);
  CHECK(j["layer_types"] == nlohmann::json::array({"sliding_attention", "full_attention"}));
  CHECK(j["rope_scaling"]["truncate"] == false);
  CHECK(j["swiglu_limit"] == 7.0);
  const std::string hf = w.dir / "gpt_oss_hf";
  const std::string toml = tessera::test::read_text(w.dir / "gpt_oss_imported/config.toml");
  for (const char* line : {"quick_geglu = true", "activation_func_clamp_value = 7.0", "glu_linear_offset = 1.0",
                           "softmax_type = \"learnable\"", "window_size = [3, 0]", "window_attn_skip_freq = [1, 0]",
                           "position_embedding_type = \"yarn\"", "num_experts = 4"}) {
    INFO(line);
    CHECK(toml.find(line) != std::string::npos);
  }
  CHECK(toml.find("add_bias_linear") == std::string::npos);  // the default: biases everywhere
  // Without layer_types, GptOssConfig's alternation from a windowed first layer: the same model.
  edit_config_json(hf, [](nlohmann::json& c) { c.erase("layer_types"); });
  import_edited(hf, w.dir / "gpt_oss_default_layers", "window_attn_skip_freq = [1, 0]");

  // What import cannot take: refused naming the key or tensor, nothing written.
  const auto import_refused = [&](const std::string& folder, const std::string& what) {
    check_refused("checkpoint import --from hf " + folder, w.dir / "not_imported", what);
  };
  const std::string limit = w.dir / "gpt_oss_limit";
  fs::copy(hf, limit);
  edit_config_json(limit, [](nlohmann::json& c) { c["swiglu_limit"] = 6.0; });
  import_refused(limit, "swiglu_limit");
  const std::string unbiased = w.dir / "gpt_oss_unbiased";
  fs::copy(hf, unbiased);
  edit_config_json(unbiased, [](nlohmann::json& c) { c["attention_bias"] = false; });
  import_refused(unbiased, "attention_bias");
  // OpenAI's released files: the experts in MXFP4 (…_blocks: two E2M1 values a byte, …_scales: a
  // power of two per 32), here random bytes for layer 0's gate_up_proj and layer 1's down_proj,
  // dequantized on import as transformers does; the reference dequantizes them its own way.
  const std::string mxfp4 = w.dir / "gpt_oss_mxfp4";
  fs::copy(hf, mxfp4);
  SafetensorsFile f = load_safetensors(mxfp4 + "/model.safetensors");
  std::mt19937 rng(11);
  const auto quantized = [&](const std::string& name, std::int64_t rows, std::int64_t cols) {
    Tensor blocks = Tensor::empty({4, rows, cols / 32, 16}, DType::u8), scales = Tensor::empty({4, rows, cols / 32}, DType::u8);
    for (std::int64_t i = 0; i < blocks.numel(); ++i) blocks.data<std::uint8_t>()[i] = static_cast<std::uint8_t>(rng());
    for (std::int64_t i = 0; i < scales.numel(); ++i) scales.data<std::uint8_t>()[i] = static_cast<std::uint8_t>(119 + rng() % 5);
    f.tensors.erase(name);
    f.tensors[name + "_blocks"] = blocks;
    f.tensors[name + "_scales"] = scales;
  };
  quantized("model.layers.0.mlp.experts.gate_up_proj", 64, 32);  // [E, 2F, C/32, 16]: HF's [E, C, 2F] transposed
  quantized("model.layers.1.mlp.experts.down_proj", 32, 32);     // [E, C, F/32, 16]: HF's [E, F, C] transposed
  save_safetensors(mxfp4 + "/model.safetensors", NamedTensors(f.tensors.begin(), f.tensors.end()), {{"format", "pt"}});
  import_edited(mxfp4, w.dir / "gpt_oss_mxfp4_imported", "quick_geglu = true");
  // Blocks that are not bytes: refused naming the tensor.
  const std::string not_bytes = w.dir / "gpt_oss_not_bytes";
  fs::copy(hf, not_bytes);
  SafetensorsFile g = load_safetensors(not_bytes + "/model.safetensors");
  g.tensors["model.layers.0.mlp.experts.down_proj_blocks"] = Tensor::zeros({4, 32, 1, 16});
  g.tensors["model.layers.0.mlp.experts.down_proj_scales"] = Tensor::zeros({4, 32, 1}, DType::u8);
  g.tensors.erase("model.layers.0.mlp.experts.down_proj");
  save_safetensors(not_bytes + "/model.safetensors", NamedTensors(g.tensors.begin(), g.tensors.end()), {{"format", "pt"}});
  import_refused(not_bytes, "down_proj_blocks");

  // What gpt_oss cannot express: refused naming the key.
  const auto refused = [&](const std::string& save, const std::string& key) {
    check_refused("checkpoint export --to hf --architecture gpt_oss " + save, w.dir / "refused", key);
  };
  train(w, w.dir / "oss_clamp6", oss + " --set model.activation_func_clamp_value=6.0");
  refused(w.dir / "oss_clamp6", "model.activation_func_clamp_value");
  train(w, w.dir / "oss_no_sinks", oss + " --set model.softmax_type=vanilla");
  refused(w.dir / "oss_no_sinks", "model.softmax_type");
  train(w, w.dir / "oss_no_bias", oss + " --set model.add_bias_linear=false");
  refused(w.dir / "oss_no_bias", "model.add_bias_linear");
  // Nor do the other architectures take gpt-oss's blocks.
  check_refused("checkpoint export --to hf --architecture mixtral " + w.dir / "gpt_oss", w.dir / "refused",
                "model.quick_geglu");
}

TEST_CASE("glm4_moe export: sigmoid routing with the expert bias in groups, scaled, a shared expert, a dense first "
          "layer, q/k/v biases, q/k norms and half-rotary heads, against PyTorch; refusals") {
  CliWorkspace w;
  const std::string glm_base =
      kLlama + " --set model.add_qkv_bias=true --set model.qk_layernorm=true --set model.rotary_percent=0.5 "
               "--set model.num_experts=4 --set model.moe_ffn_hidden_size=24 "
               "--set model.moe_router_score_function=sigmoid --set model.moe_router_enable_expert_bias=true "
               "--set model.moe_router_bias_update_rate=0.05 --set model.moe_router_topk_scaling_factor=2.5 "
               "--set model.moe_shared_expert_intermediate_size=24 --set model.moe_layer_freq=[0,1]";
  const std::string glm = glm_base + " --set model.moe_router_topk=2 --set model.moe_router_num_groups=2 "
                                     "--set model.moe_router_group_topk=1";
  train(w, w.dir / "glm4_moe", glm);
  const nlohmann::json j = nlohmann::json::parse(export_round_trip(w, w.dir / "glm4_moe", "glm4_moe"));
  CHECK(j["model_type"] == "glm4_moe");
  CHECK(j["architectures"][0] == "Glm4MoeForCausalLM");
  CHECK(j["first_k_dense_replace"] == 1);
  CHECK(j["n_group"] == 2);
  CHECK(j["topk_group"] == 1);
  CHECK(j["routed_scaling_factor"] == 2.5);
  CHECK(j["n_shared_experts"] == 1);
  CHECK(j["partial_rotary_factor"] == 0.5);
  CHECK(j["attention_bias"] == true);
  CHECK(j["use_qk_norm"] == true);
  // The trained expert bias moved (its update rate 0.05), so PyTorch's choice used it.
  const Tensor bias =
      load_safetensors(w.dir / "glm4_moe_hf/model.safetensors").tensors.at("model.layers.1.mlp.gate.e_score_correction_bias");
  bool moved = false;
  for (std::int64_t e = 0; e < bias.numel(); ++e) moved = moved || bias.data<float>()[e] != 0.0f;
  CHECK(moved);
  const std::string toml = tessera::test::read_text(w.dir / "glm4_moe_imported/config.toml");
  for (const char* line : {"moe_router_score_function = \"sigmoid\"", "moe_router_enable_expert_bias = true",
                           "moe_router_num_groups = 2", "moe_shared_expert_gate = false", "moe_layer_freq = [0, 1]",
                           "rotary_percent = 0.5", "qk_layernorm = true", "add_qkv_bias = true"}) {
    INFO(line);
    CHECK(toml.find(line) != std::string::npos);
  }
  check_packed_import(w, "glm4_moe");  // transformers 5's packed experts: the same model

  const std::string hf = w.dir / "glm4_moe_hf", bad = w.dir / "glm4_moe_bad";
  const auto import_refused = [&](const std::function<void(nlohmann::json&)>& change, const std::string& what) {
    fs::remove_all(bad);
    fs::copy(hf, bad);
    edit_config_json(bad, change);
    check_refused("checkpoint import --from hf " + bad, w.dir / "not_imported", what);
  };
  import_refused([](nlohmann::json& c) { c["norm_topk_prob"] = false; }, "norm_topk_prob");
  import_refused([](nlohmann::json& c) { c["topk_group"] = 2; }, "topk_group");  // groups scored by k / 2 = 1 expert
  import_refused([](nlohmann::json& c) { c["num_experts_per_tok"] = 1; }, "num_experts_per_tok");
  import_refused([](nlohmann::json& c) { c["first_k_dense_replace"] = 2; }, "first_k_dense_replace");
  // What glm4_moe cannot express: refused naming the key.
  train(w, w.dir / "glm_top1", glm_base + " --set model.moe_router_topk=1");
  check_refused("checkpoint export --to hf " + w.dir / "glm_top1", w.dir / "refused", "model.moe_router_topk");
  train(w, w.dir / "glm_softmax", kLlama + " --set model.num_experts=4 --set model.moe_router_topk=2 "
                                           "--set model.moe_ffn_hidden_size=24 --set model.moe_shared_expert_intermediate_size=24");
  check_refused("checkpoint export --to hf --architecture glm4_moe " + w.dir / "glm_softmax", w.dir / "refused",
                "model.moe_router_score_function");
}

TEST_CASE("smollm3 export: NoPE layers among rope ones (no_rope_freq) against PyTorch; import from the interval") {
  CliWorkspace w;
  train(w, w.dir / "smollm3", kLlama + " --set model.no_rope_freq=[0,1]");
  const nlohmann::json j = nlohmann::json::parse(export_round_trip(w, w.dir / "smollm3", "smollm3"));
  CHECK(j["model_type"] == "smollm3");
  CHECK(j["architectures"][0] == "SmolLM3ForCausalLM");
  CHECK(j["no_rope_layers"] == nlohmann::json::array({1, 0}));
  CHECK(j["use_sliding_window"] == false);
  CHECK(tessera::test::read_text(w.dir / "smollm3_imported/config.toml").find("no_rope_freq = [0, 1]") !=
        std::string::npos);
  // SmolLM3Config without the list: a NoPE layer every no_rope_layer_interval-th, counting from 1.
  const std::string hf = w.dir / "smollm3_hf";
  edit_config_json(hf, [](nlohmann::json& c) {
    c.erase("no_rope_layers");
    c["no_rope_layer_interval"] = 2;
  });
  import_edited(hf, w.dir / "smollm3_interval", "no_rope_freq = [0, 1]");
  // The window and bad flags are refused on import; llama cannot say which layers skip rope.
  const std::string bad = w.dir / "smollm3_bad";
  fs::copy(hf, bad);
  edit_config_json(bad, [](nlohmann::json& c) { c["no_rope_layers"] = {1, 2}; });
  check_refused("checkpoint import --from hf " + bad, w.dir / "not_imported", "no_rope_layers");
  edit_config_json(bad, [](nlohmann::json& c) {
    c["no_rope_layers"] = {1, 0};
    c["use_sliding_window"] = true;
  });
  check_refused("checkpoint import --from hf " + bad, w.dir / "not_imported", "use_sliding_window");
  check_refused("checkpoint export --to hf --architecture llama " + w.dir / "smollm3", w.dir / "refused",
                "model.no_rope_freq");
}

TEST_CASE("export --dtype bf16 / f16: the f32 export's tensors rounded to nearest even; read back by PyTorch and import") {
  CliWorkspace w;
  train(w, w.dir / "llama", kLlama);
  for (const auto& [flag, dtype, torch_dtype] : {std::tuple{"f32", DType::f32, "float32"},
                                                  std::tuple{"bf16", DType::bf16, "bfloat16"},
                                                  std::tuple{"f16", DType::f16, "float16"}}) {
    INFO(flag);
    const std::string hf = w.dir / (std::string("hf_") + flag);
    CliRun r = run_tessera("checkpoint export --to hf --dtype " + std::string(flag) + " " + w.dir / "llama" + " " + hf);
    INFO(r.output);
    REQUIRE(r.ok());
    CHECK(json_text(hf + "/config.json").find(fmt::format("\"torch_dtype\": \"{}\"", torch_dtype)) != std::string::npos);
    if (dtype == DType::f32) continue;
    const SafetensorsFile wide = load_safetensors(w.dir / "hf_f32/model.safetensors"), narrow = load_safetensors(hf + "/model.safetensors");
    REQUIRE(wide.tensors.size() == narrow.tensors.size());
    for (const auto& [name, t] : wide.tensors) {
      INFO(name);
      REQUIRE(narrow.tensors.count(name) == 1);
      const Tensor& u = narrow.tensors.at(name);
      REQUIRE(u.dtype() == dtype);
      Tensor expected = Tensor::empty(t.shape(), dtype);
      ops::cast(t, expected);
      CHECK(std::memcmp(u.raw(), expected.raw(), expected.nbytes()) == 0);
    }
    // Imported (widened exactly), Tessera's logits equal the PyTorch model's on the narrow file.
    r = run_tessera("checkpoint import --from hf " + hf + " " + hf + "_imported");
    INFO(r.output);
    REQUIRE(r.ok());
    check_logits(hf + "_imported", hf, hf + ".f32");
  }
  const CliRun bad = run_tessera("checkpoint export --to hf --dtype fp8 " + w.dir / "llama" + " " + w.dir / "fp8");
  CHECK(!bad.ok());
  CHECK(bad.has("--dtype"));
  CHECK(!fs::exists(w.dir / "fp8"));
}

namespace {

// Tessera's BERT losses (masked LM, sentence order) from the saved model `load` on a padded batch,
// against the PyTorch MegatronBert model on the HF folder `hf` (hf_gpt_reference.py bert): within
// 1e-5 relative.
void check_bert_losses(const std::string& load, const std::string& hf, const std::string& scratch) {
  SavedModel saved = open_saved_model(load);
  auto tokenizer = build_tokenizer(saved.config);
  const std::int64_t vocab = tokenizer->vocab_size();
  auto model = build_model(saved.config, vocab, 0);
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  load_saved_weights(saved, params);
  // Three sequences of 32, 20 and 9 real tokens, then padding; token types 0 then 1; the real
  // tokens all predicted, each as another random token.
  constexpr std::int64_t B = 3, T = 32;
  const std::int64_t lengths[B] = {32, 20, 9};
  Tensor tokens = Tensor::zeros({B, T}, DType::i32), types = Tensor::zeros({B, T}, DType::i32);
  Tensor labels = Tensor::zeros({B, T}, DType::i32), loss_mask = Tensor::zeros({B, T});
  Tensor padding = Tensor::zeros({B, T}, DType::u8), is_random = Tensor::zeros({B, 1}, DType::i32);
  std::mt19937 rng(3);
  std::uniform_int_distribution<std::int32_t> token(0, static_cast<std::int32_t>(vocab - 1));
  for (std::int64_t b = 0; b < B; ++b) {
    is_random.data<std::int32_t>()[b] = static_cast<std::int32_t>(b % 2);
    for (std::int64_t t = 0; t < lengths[b]; ++t) {
      tokens.data<std::int32_t>()[b * T + t] = token(rng);
      types.data<std::int32_t>()[b * T + t] = t >= lengths[b] / 2 ? 1 : 0;
      labels.data<std::int32_t>()[b * T + t] = token(rng);
      loss_mask.data<float>()[b * T + t] = 1.0f;
      padding.data<std::uint8_t>()[b * T + t] = 1;
    }
  }
  Batch batch;
  NamedTensors fields{{"tokens", tokens}, {"types", types},       {"labels", labels},
                      {"loss_mask", loss_mask}, {"padding_mask", padding}, {"is_random", is_random}};
  for (const auto& [name, t] : fields) batch.set(name, t);
  ActivationStore store;
  StepContext ctx{store};
  ctx.training = false;
  const StageOutput out = model->forward_stage(ctx, batch, {}, 0);
  const double lm = out.loss_parts.empty() ? out.loss : out.loss_parts[0];
  const double sop = out.loss_parts.size() > 1 ? out.loss_parts[1] : 0.0;
  // The losses alone hardly see small changes of large logits. Each position's whole distribution:
  // with that position the only one predicted, the LM head's bias gradient is softmax − one-hot.
  Parameter* bias = nullptr;
  for (Parameter* p : params)
    if (p->name == "lm_head.bias") bias = p;
  REQUIRE(bias != nullptr);
  for (const auto& [b, t] : {std::pair<std::int64_t, std::int64_t>{0, 5}, {1, 17}, {2, 8}}) {
    Batch one = batch;
    Tensor mask = Tensor::zeros({B, T});
    mask.data<float>()[b * T + t] = 1.0f;
    one.set("loss_mask", mask);
    for (Parameter* p : params) p->grad.fill_(0.0f);
    ActivationStore s;
    StepContext train{s};
    model->forward_stage(train, one, {}, 0);
    model->backward(train);
    Tensor probs = bias->grad.to(Device::cpu()).clone();
    probs.data<float>()[labels.data<std::int32_t>()[b * T + t]] += 1.0f;
    fields.emplace_back(fmt::format("probs:{}", b * T + t), probs);
  }
  save_safetensors(scratch, fields, {{"format", "tessera"}});
  int status = 0;
  const std::string report = tessera::test::run_command(
      {"/usr/bin/python3", TESSERA_SOURCE_DIR "/tests/apps/hf_gpt_reference.py", "bert", hf, scratch,
       fmt::format("{:.17g}", lm), fmt::format("{:.17g}", sop)},
      &status, true);
  INFO(report);
  CHECK(status == 0);
  std::printf("%s", report.c_str());
}

}  // namespace

TEST_CASE("BERT exports as megatron-bert: PyTorch's MegatronBert gives Tessera's losses; import → export byte-identical") {
  CliWorkspace w;
  // A small BERT on the sentences of Debian's licence texts (tests/parallel/bert_run.toml's corpus),
  // its vocabulary unpadded: the losses' softmax then spans the same tokens as the exported model's
  // (export cuts the padding rows, whose logits Tessera's loss also normalises over). Large initial
  // weights make the GELU's two forms tell apart: with the wrong one in PyTorch the token
  // probabilities were 4.3·10⁻⁵ or more apart (at most 5.9·10⁻⁷ with the right one); at
  // init_method_std 0.02 neither they nor the losses (2.0·10⁻⁸) saw it.
  for (const char* ext : {".bin", ".idx"})
    fs::copy_file(std::string(TESSERA_SOURCE_DIR "/tests/parallel/corpus/licenses_sentences") + ext,
                  w.dir / (std::string("sentences") + ext));
  const std::string config = w.dir / "bert.toml";
  tessera::test::write_text(config, fmt::format(R"([model]
plugin = "bert"
num_layers = 2
hidden_size = 32
num_attention_heads = 4
seq_length = 32
make_vocab_size_divisible_by = 1
init_method_std = 0.5
[tokenizer]
plugin = "bert_wordpiece"
vocab_file = "{}"
[data]
plugin = "bert_indexed"
data_path = "{}"
split = "90,10,0"
[training]
micro_batch_size = 2
global_batch_size = 4
train_iters = 3
eval_interval = 3
eval_iters = 1
[optimizer]
plugin = "adam"
lr = 3e-3
)", TESSERA_BERT_VOCAB, w.dir / "sentences"));
  const auto train_bert = [&](const std::string& save, const std::string& overrides) {
    const CliRun r = run_tessera("train " + config + " --set checkpoint.save=" + save + " " + overrides);
    INFO(r.output);
    REQUIRE(r.ok());
  };
  // An imported folder pads the vocabulary as any Tessera model (docs/checkpoints.md): without the
  // padding its losses are HF's.
  const auto unpadded = [](const std::string& imported) {
    std::string toml = tessera::test::read_text(imported + "/config.toml");
    toml.replace(toml.find("[model]\n"), 8, "[model]\nmake_vocab_size_divisible_by = 1\n");
    tessera::test::write_text(imported + "/config.toml", toml);
    return imported;
  };
  // Export, losses against PyTorch, import, export again (the same bytes), the imported model's losses.
  const auto round_trip = [&](const std::string& name) {
    const std::string save = w.dir / name, hf = w.dir / (name + "_hf"), imported = w.dir / (name + "_imported");
    CliRun r = run_tessera("checkpoint export --to hf " + save + " " + hf);
    INFO(r.output);
    REQUIRE(r.ok());
    check_bert_losses(save, hf, w.dir / (name + "_batch.safetensors"));
    r = run_tessera("checkpoint import --from hf " + hf + " " + imported);
    INFO(r.output);
    REQUIRE(r.ok());
    r = run_tessera("checkpoint export --to hf " + imported + " " + w.dir / (name + "_again"));
    INFO(r.output);
    REQUIRE(r.ok());
    require_same_tensors(hf + "/model.safetensors", w.dir / (name + "_again/model.safetensors"));
    check_bert_losses(unpadded(imported), hf, w.dir / (name + "_batch2.safetensors"));
    return nlohmann::json::parse(json_text(hf + "/config.json"));
  };

  // The exact GELU in the MLP and the LM head: hidden_act "gelu"; the sentence-order head: pretraining.
  train_bert(w.dir / "erf", "--set model.bias_gelu_fusion=false");
  const nlohmann::json erf = round_trip("erf");
  CHECK(erf["model_type"] == "megatron-bert");
  CHECK(erf["architectures"] == nlohmann::json::array({"MegatronBertForPreTraining"}));
  CHECK(erf["hidden_act"] == "gelu");
  CHECK(erf["layer_norm_eps"] == 1e-5);
  // BertTokenizer's files: vocab.txt and tokenizer_config.json.
  CHECK(tessera::test::read_text(w.dir / "erf_hf/vocab.txt") == tessera::test::read_text(TESSERA_BERT_VOCAB));
  CHECK(json_text(w.dir / "erf_hf/tokenizer_config.json").find("\"BertTokenizer\"") != std::string::npos);

  // openai_gelu: the tanh form in both (hidden_act "gelu_new"); without the binary head: masked LM only.
  train_bert(w.dir / "tanh", "--set model.openai_gelu=true --set model.bert_binary_head=false");
  const nlohmann::json tanh = round_trip("tanh");
  CHECK(tanh["hidden_act"] == "gelu_new");
  CHECK(tanh["architectures"] == nlohmann::json::array({"MegatronBertForMaskedLM"}));
  CHECK(tessera::test::read_text(w.dir / "tanh_imported/config.toml").find("bert_binary_head = false") !=
        std::string::npos);
  // A masked-LM file's token type 0 (HF adds it to every token) joins the position embeddings.
  const std::string typed = w.dir / "typed_hf";
  fs::copy(w.dir / "tanh_hf", typed);
  SafetensorsFile f = load_safetensors(typed + "/model.safetensors");
  NamedTensors changed;
  for (auto& [name, t] : f.tensors) {
    if (name == "bert.embeddings.token_type_embeddings.weight")
      for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = 0.01f * static_cast<float>(i % 7) - 0.03f;
    changed.emplace_back(name, t);
  }
  save_safetensors(typed + "/model.safetensors", changed, {{"format", "pt"}});
  CliRun r = run_tessera("checkpoint import --from hf " + typed + " " + w.dir / "typed_imported");
  INFO(r.output);
  REQUIRE(r.ok());
  check_bert_losses(unpadded(w.dir / "typed_imported"), typed, w.dir / "typed_batch.safetensors");

  // A folder from the Hub (no "tessera_tokenizer" key): vocab.txt read by bert_wordpiece, lowercased
  // as tokenizer_config.json says.
  const std::string hub = w.dir / "hub_hf";
  fs::copy(w.dir / "erf_hf", hub);
  edit_config_json(hub, [](nlohmann::json& j) { j.erase("tessera_tokenizer"); });
  r = run_tessera("checkpoint import --from hf " + hub + " " + w.dir / "hub_imported");
  INFO(r.output);
  REQUIRE(r.ok());
  const std::string hub_toml = tessera::test::read_text(w.dir / "hub_imported/config.toml");
  CHECK(hub_toml.find("plugin = \"bert_wordpiece\"") != std::string::npos);
  CHECK(hub_toml.find("lower_case = true") != std::string::npos);
  check_bert_losses(unpadded(w.dir / "hub_imported"), hub, w.dir / "hub_batch.safetensors");

  // Megatron-LM's default BERT (the tanh GELU in the MLP, the exact one in the head) has no HF
  // hidden_act: refused, naming the key, and no folder is left.
  train_bert(w.dir / "default", "");
  r = run_tessera("checkpoint export --to hf " + w.dir / "default" + " " + w.dir / "default_hf");
  CHECK(r.clean_error());
  CHECK(r.has("model.bias_gelu_fusion"));
  CHECK(!fs::exists(w.dir / "default_hf"));
  r = run_tessera("checkpoint export --to hf --architecture llama " + w.dir / "erf" + " " + w.dir / "bert_as_llama");
  CHECK(r.clean_error());
  CHECK(r.has("megatron-bert"));
}

TEST_CASE("a SentencePiece tokenizer travels as tokenizer.model, and a Hub folder with one imports with it") {
  CliWorkspace w;
  // A small BPE SentencePiece model (as Llama 2's, with BOS first) trained on a licence text.
  int status = 0;
  const std::string made = tessera::test::run_command(
      {"/usr/bin/python3", "-c",
       "import sentencepiece as s, sys; s.SentencePieceTrainer.train(input='/usr/share/common-licenses/Apache-2.0', "
       "model_prefix=sys.argv[1], model_type='bpe', vocab_size=300, character_coverage=1.0, num_threads=1, "
       "minloglevel=2)",
       w.dir / "sp"},
      &status, true);
  INFO(made);
  REQUIRE(status == 0);
  train(w, w.dir / "llama_sp",
        kLlama + " --set tokenizer.plugin=sentencepiece --set tokenizer.tokenizer_model=" + w.dir / "sp.model" +
            " --set tokenizer.add_bos=true");
  CliRun r = run_tessera("checkpoint export --to hf " + w.dir / "llama_sp" + " " + w.dir / "sp_hf");
  INFO(r.output);
  REQUIRE(r.ok());
  CHECK(tessera::test::read_text(w.dir / "sp_hf/tokenizer.model") == tessera::test::read_text(w.dir / "sp.model"));
  const nlohmann::json tc = nlohmann::json::parse(json_text(w.dir / "sp_hf/tokenizer_config.json"));
  CHECK(tc["tokenizer_class"] == "LlamaTokenizer");
  CHECK(tc["add_bos_token"] == true);
  // The Hub's form: no "tessera_tokenizer" key, tokenizer.model beside a tokenizer.json hf_tokenizer
  // cannot read (Llama 2's byte-fallback conversion): the sentencepiece plugin, BOS as
  // tokenizer_config.json says.
  edit_config_json(w.dir / "sp_hf", [](nlohmann::json& j) { j.erase("tessera_tokenizer"); });
  tessera::test::write_text(w.dir / "sp_hf/tokenizer.json",
                            R"({"model": {"type": "BPE", "byte_fallback": true, "vocab": {}, "merges": []}})");
  r = run_tessera("checkpoint import --from hf " + w.dir / "sp_hf" + " " + w.dir / "sp_imported");
  INFO(r.output);
  REQUIRE(r.ok());
  const SavedModel original = open_saved_model(w.dir / "llama_sp"), imported = open_saved_model(w.dir / "sp_imported");
  const std::string toml = tessera::test::read_text(w.dir / "sp_imported/config.toml");
  CHECK(toml.find("plugin = \"sentencepiece\"") != std::string::npos);
  CHECK(toml.find("add_bos = true") != std::string::npos);
  const std::string text = "Licensed under the Apache License, Version 2.0";
  const std::vector<std::int32_t> ids = build_tokenizer(original.config)->encode(text);
  CHECK(ids.size() > 3);
  CHECK(build_tokenizer(imported.config)->encode(text) == ids);
  check_logits(w.dir / "sp_imported", w.dir / "sp_hf", w.dir / "sp_logits.f32");
  // Without add_bos_token, a LlamaTokenizer adds BOS (its default); another class does not.
  nlohmann::json no_key = tc;
  no_key.erase("add_bos_token");
  tessera::test::write_text(w.dir / "sp_hf/tokenizer_config.json", no_key.dump());
  r = run_tessera("checkpoint import --from hf " + w.dir / "sp_hf" + " " + w.dir / "sp_default");
  INFO(r.output);
  REQUIRE(r.ok());
  CHECK(tessera::test::read_text(w.dir / "sp_default/config.toml").find("add_bos = true") != std::string::npos);
  // A setting of the wrong type is an error naming the file and the key.
  tessera::test::write_text(w.dir / "sp_hf/tokenizer_config.json", R"({"add_bos_token": "yes"})");
  r = run_tessera("checkpoint import --from hf " + w.dir / "sp_hf" + " " + w.dir / "sp_bad");
  CHECK(r.clean_error());
  CHECK(r.has("tokenizer_config.json"));
  CHECK(r.has("'add_bos_token'"));
  CHECK(!fs::exists(w.dir / "sp_bad"));
}

TEST_CASE("starcoder2 export: rope with LayerNorm, a GELU MLP, biases and a sliding window, against PyTorch") {
  CliWorkspace w;
  // StarCoder2's shape: grouped queries, rotary positions, LayerNorms, the tanh GELU MLP, biases on
  // every linear layer (use_bias), a sliding window, a tied head.
  const std::string sc2 = "--set model.num_attention_heads=4 --set model.num_query_groups=2 "
                          "--set model.position_embedding_type=rope --set model.window_size=[11,0]";
  train(w, w.dir / "sc2", sc2);
  const nlohmann::json j = nlohmann::json::parse(export_round_trip(w, w.dir / "sc2", "sc2"));
  CHECK(j["model_type"] == "starcoder2");
  CHECK(j["use_bias"] == true);
  CHECK(j["sliding_window"] == 12);
  CHECK(j["hidden_act"] == "gelu_pytorch_tanh");
  CHECK(j["norm_epsilon"] == 1e-5);
  CHECK(tessera::test::read_text(w.dir / "sc2_imported/config.toml").find("window_size = [11, 0]") != std::string::npos);
  // Without biases (use_bias false) and with the exact GELU ("gelu").
  train(w, w.dir / "sc2_plain", sc2 + " --set model.add_bias_linear=false --set model.bias_gelu_fusion=false");
  const nlohmann::json plain = nlohmann::json::parse(export_round_trip(w, w.dir / "sc2_plain", "sc2_plain"));
  CHECK(plain["use_bias"] == false);
  CHECK(plain["hidden_act"] == "gelu");
  const std::string plain_toml = tessera::test::read_text(w.dir / "sc2_plain_imported/config.toml");
  CHECK(plain_toml.find("add_bias_linear = false") != std::string::npos);
  CHECK(plain_toml.find("bias_gelu_fusion = false") != std::string::npos);
  // RMSNorm is llama's, not starcoder2's.
  train(w, w.dir / "sc2_rms", sc2 + " --set model.normalization=RMSNorm");
  const CliRun r = run_tessera("checkpoint export --to hf --architecture starcoder2 " + w.dir / "sc2_rms" + " " +
                               w.dir / "sc2_rms_hf");
  CHECK(r.clean_error());
  CHECK(r.has("model.normalization"));
}

TEST_CASE("apply_layernorm_1p exports its LayerNorms as 1 + γ: the same logits in PyTorch, imported as plain LayerNorm") {
  CliWorkspace w;
  train(w, w.dir / "ln1p", "--set model.apply_layernorm_1p=true");
  const std::string config = export_round_trip(w, w.dir / "ln1p", "ln1p");
  CHECK(config.find("\"model_type\"") != std::string::npos);
  CHECK(tessera::test::read_text(w.dir / "ln1p_imported/config.toml").find("apply_layernorm_1p") == std::string::npos);
}

TEST_CASE("multi-token prediction depths are left out of an export, saying so; PyTorch gives Tessera's logits") {
  CliWorkspace w;
  train(w, w.dir / "mtp", kLlama + " --set model.mtp_num_layers=2");
  const CliRun r = run_tessera("checkpoint export --to hf " + w.dir / "mtp" + " " + w.dir / "mtp_hf");
  INFO(r.output);
  REQUIRE(r.ok());
  // Each depth: enorm, hnorm, eh_proj, the layer's ln1, query, key_value, output, ln2, fc1, fc2, and
  // its final norm (RMSNorm, no biases): 11 tensors.
  CHECK(r.output.find("left out the 22 tensors of the multi-token prediction depths") != std::string::npos);
  for (const auto& [name, t] : load_safetensors(w.dir / "mtp_hf/model.safetensors").tensors) {
    INFO(name);
    CHECK(name.find("layers.2.") == std::string::npos);  // the workspace model's 2 layers only
  }
  check_logits(w.dir / "mtp", w.dir / "mtp_hf", w.dir / "mtp_logits.f32");
}

TEST_CASE("the exact GELU (bias_gelu_fusion = false) exports as HF's \"gelu\" and imports back to it") {
  // Megatron-LM's --no-bias-gelu-fusion computes F.gelu, the erf form: HF's "gelu", and the imported
  // model keeps the form. (The logits' tolerance here does not tell the two forms apart on this
  // model; test_gpt_reference checks the form's numbers against PyTorch.)
  CliWorkspace w;
  train(w, w.dir / "erf", "--set model.bias_gelu_fusion=false");
  const std::string config = export_round_trip(w, w.dir / "erf", "erf");
  CHECK(config.find("\"activation_function\": \"gelu\"") != std::string::npos);
  CHECK(tessera::test::read_text(w.dir / "erf_imported/config.toml").find("bias_gelu_fusion = false") !=
        std::string::npos);
  // openai_gelu keeps the tanh form whatever the fusion (Megatron's openai_gelu).
  train(w, w.dir / "openai", "--set model.bias_gelu_fusion=false --set model.openai_gelu=true");
  CHECK(export_round_trip(w, w.dir / "openai", "openai").find("\"gelu_pytorch_tanh\"") != std::string::npos);
}

TEST_CASE("gpt2_bpe tokenizer files travel: vocab.json and merges.txt exported and imported") {
  CliWorkspace w;
  train(w, w.dir / "bpe",
        fmt::format("--set model.num_query_groups=2 --set tokenizer.plugin=gpt2_bpe --set tokenizer.vocab_file={}/encoder.json "
                    "--set tokenizer.merges_file={}/vocab.bpe",
                    TESSERA_GPT2_VOCAB_DIR, TESSERA_GPT2_VOCAB_DIR));
  CliRun r = run_tessera("checkpoint export --to hf " + w.dir / "bpe" + " " + w.dir / "bpe_hf");
  INFO(r.output);
  REQUIRE(r.ok());
  CHECK(tessera::test::read_text(w.dir / "bpe_hf/vocab.json") ==
        tessera::test::read_text(TESSERA_GPT2_VOCAB_DIR "/encoder.json"));
  CHECK(tessera::test::read_text(w.dir / "bpe_hf/merges.txt") ==
        tessera::test::read_text(TESSERA_GPT2_VOCAB_DIR "/vocab.bpe"));
  CHECK(json_text(w.dir / "bpe_hf/tokenizer_config.json").find("GPT2Tokenizer") != std::string::npos);
  CHECK(json_text(w.dir / "bpe_hf/config.json").find("\"vocab_size\": 50257") != std::string::npos);
  // Without Tessera's own note in config.json, import finds the files by HF's names.
  std::string config = json_text(w.dir / "bpe_hf/config.json");
  config.replace(config.find("\"tessera_tokenizer\""), std::string("\"tessera_tokenizer\"").size(), "\"other_note\"");
  tessera::test::write_text(w.dir / "bpe_hf/config.json", config);
  r = run_tessera("checkpoint import --from hf " + w.dir / "bpe_hf" + " " + w.dir / "bpe_imported");
  INFO(r.output);
  REQUIRE(r.ok());
  CHECK(tessera::test::read_text(w.dir / "bpe_imported/config.toml").find("plugin = \"gpt2_bpe\"") != std::string::npos);
  CHECK(fs::is_regular_file(w.dir / "bpe_imported/tokenizer/merges.txt"));
  r = run_tessera("generate --load " + w.dir / "bpe_imported" + " --prompt hello --max-new-tokens 3");
  INFO(r.output);
  CHECK(r.ok());
}

TEST_CASE("hf_tokenizer's tokenizer.json travels with a multi-query code model") {
  CliWorkspace w;
  train(w, w.dir / "code",
        "--set tokenizer.plugin=hf_tokenizer --set tokenizer.tokenizer_file=" TESSERA_HF_TOKENIZER_DIR "/starcoder.json");
  CliRun r = run_tessera("checkpoint export --to hf " + w.dir / "code" + " " + w.dir / "code_hf");
  INFO(r.output);
  REQUIRE(r.ok());
  CHECK(tessera::test::read_text(w.dir / "code_hf/tokenizer.json") ==
        tessera::test::read_text(TESSERA_HF_TOKENIZER_DIR "/starcoder.json"));
  CHECK(json_text(w.dir / "code_hf/tokenizer_config.json").find("PreTrainedTokenizerFast") != std::string::npos);
  CHECK(json_text(w.dir / "code_hf/config.json").find("\"multi_query\": true") != std::string::npos);
  r = run_tessera("checkpoint import --from hf " + w.dir / "code_hf" + " " + w.dir / "code_imported");
  INFO(r.output);
  REQUIRE(r.ok());
  CHECK(tessera::test::read_text(w.dir / "code_imported/config.toml").find("plugin = \"hf_tokenizer\"") !=
        std::string::npos);
  r = run_tessera("checkpoint export --to hf " + w.dir / "code_imported" + " " + w.dir / "code_again");
  INFO(r.output);
  REQUIRE(r.ok());
  require_same_tensors(w.dir / "code_hf/model.safetensors", w.dir / "code_again/model.safetensors");
  CHECK(tessera::test::read_text(w.dir / "code_again/tokenizer.json") ==
        tessera::test::read_text(TESSERA_HF_TOKENIZER_DIR "/starcoder.json"));
  r = run_tessera("generate --load " + w.dir / "code_imported" + " --prompt def --max-new-tokens 3");
  INFO(r.output);
  CHECK(r.ok());
}

TEST_CASE("checkpoint export/import: bad input is an error naming the file or key, and OUT/ is never half-written") {
  CliWorkspace w;
  train(w, w.dir / "save", "--set model.num_query_groups=2 --set checkpoint.save_interval=3");
  const fs::path dir = w.dir.path;
  const auto fails = [&](const std::string& args, const std::vector<std::string>& texts, const std::string& out) {
    const CliRun r = run_tessera(args);
    INFO(args << "\n" << r.output);
    CHECK(r.clean_error());
    for (const std::string& t : texts) CHECK(r.has(t));
    CHECK(!fs::exists(out));
    CHECK(no_temporary_folders(dir));
  };
  // OUT/ exists and is not empty: nothing there is touched.
  fs::create_directories(dir / "full");
  tessera::test::write_text(w.dir / "full/keep.txt", "mine");
  const CliRun busy = run_tessera("checkpoint export --to hf " + w.dir / "save" + " " + w.dir / "full");
  CHECK(busy.clean_error());
  CHECK(busy.has("is not empty"));
  CHECK(tessera::test::read_text(w.dir / "full/keep.txt") == "mine");
  // An empty OUT/ is fine.
  fs::create_directories(dir / "empty");
  CHECK(run_tessera("checkpoint export --to hf " + w.dir / "save" + " " + w.dir / "empty").ok());

  // Another model kind.
  fs::create_directories(dir / "t5");
  tessera::test::write_text(w.dir / "t5/config.toml", "[model]\nplugin = \"t5\"\n[tokenizer]\nplugin = \"byte\"\n");
  fs::copy_file(dir / "save/model.safetensors", dir / "t5/model.safetensors");
  fails("checkpoint export --to hf " + w.dir / "t5" + " " + w.dir / "o1",
        {"export supports gpt and bert models only", "t5"}, w.dir / "o1");
  // A checkpoint shard missing.
  fs::remove(dir / "save/iter_0000003/model_tp0_pp0.safetensors");
  fails("checkpoint export --to hf " + w.dir / "save/iter_0000003" + " " + w.dir / "o2", {"model_tp0_pp0.safetensors"},
        w.dir / "o2");
  // An architecture the model does not fit.
  fails("checkpoint export --to hf --architecture llama " + w.dir / "save" + " " + w.dir / "o3",
        {"model.position_embedding_type", "llama"}, w.dir / "o3");
  // No position embedding (NoPE) fits none of them.
  fs::create_directories(dir / "nope");
  std::string nope_config = tessera::test::read_text(w.dir / "save/config.toml");
  REQUIRE(nope_config.find("[model]\n") != std::string::npos);
  nope_config.replace(nope_config.find("[model]\n"), 8, "[model]\nposition_embedding_type = \"none\"\n");
  tessera::test::write_text(w.dir / "nope/config.toml", nope_config);
  fs::copy_file(dir / "save/model.safetensors", dir / "nope/model.safetensors");
  fails("checkpoint export --to hf " + w.dir / "nope" + " " + w.dir / "o4",
        {"model.position_embedding_type", "it has learned positions, this model none"}, w.dir / "o4");
  // Mixture-of-experts MLPs fit none of them either.
  fs::create_directories(dir / "moe");
  std::string moe_config = tessera::test::read_text(w.dir / "save/config.toml");
  moe_config.replace(moe_config.find("[model]\n"), 8, "[model]\nnum_experts = 4\n");
  tessera::test::write_text(w.dir / "moe/config.toml", moe_config);
  fs::copy_file(dir / "save/model.safetensors", dir / "moe/model.safetensors");
  fails("checkpoint export --to hf " + w.dir / "moe" + " " + w.dir / "o5",
        {"model.num_experts", "its MLPs are dense (no mixture of experts; mixtral, qwen2_moe, qwen3_moe and gpt_oss have them)"}, w.dir / "o5");

  REQUIRE(run_tessera("checkpoint export --to hf " + w.dir / "save" + " " + w.dir / "hf").ok());
  const auto hf_copy = [&](const std::string& name) {
    fs::copy(dir / "hf", dir / name);
    return w.dir / name;
  };
  // An unknown architecture.
  const std::string bert = hf_copy("hf_bert");
  std::string config = json_text(bert + "/config.json");
  config.replace(config.find("\"gpt2\""), 6, "\"bert\"");
  tessera::test::write_text(bert + "/config.json", config);
  fails("checkpoint import --from hf " + bert + " " + w.dir / "i1", {bert + "/config.json", "'model_type'", "bert"},
        w.dir / "i1");
  // Pickles are refused, never opened.
  const std::string pickle = hf_copy("hf_pickle");
  fs::rename(pickle + "/model.safetensors", pickle + "/pytorch_model.bin");
  fails("checkpoint import --from hf " + pickle + " " + w.dir / "i2", {"pytorch_model.bin", "safetensors only"},
        w.dir / "i2");
  // A tensor missing.
  const std::string missing = hf_copy("hf_missing");
  SafetensorsFile f = load_safetensors(missing + "/model.safetensors");
  NamedTensors kept;
  for (auto& [name, t] : f.tensors)
    if (name != "transformer.ln_f.bias") kept.emplace_back(name, t);
  save_safetensors(missing + "/model.safetensors", kept, {{"format", "pt"}});
  fails("checkpoint import --from hf " + missing + " " + w.dir / "i3", {"transformer.ln_f.bias", missing + "/model.safetensors"},
        w.dir / "i3");
  // A sharded folder with a shard missing.
  const std::string sharded = hf_copy("hf_sharded");
  fs::rename(sharded + "/model.safetensors", sharded + "/model-00001-of-00002.safetensors");
  std::string index = "{\"metadata\": {}, \"weight_map\": {";
  bool first = true;
  for (const auto& [name, t] : f.tensors) {
    index += fmt::format("{}\"{}\": \"model-0000{}-of-00002.safetensors\"", first ? "" : ", ", name,
                         name == "transformer.ln_f.bias" ? 2 : 1);
    first = false;
  }
  tessera::test::write_text(sharded + "/model.safetensors.index.json", index + "}}");
  fs::remove(sharded + "/model-00001-of-00002.safetensors");
  fs::copy_file(dir / "hf/model.safetensors", dir / "hf_sharded/model-00001-of-00002.safetensors");
  fails("checkpoint import --from hf " + sharded + " " + w.dir / "i4", {"model-00002-of-00002.safetensors", "missing"},
        w.dir / "i4");
  // bf16 weights are widened to f32 exactly.
  const std::string bf16 = hf_copy("hf_bf16");
  NamedTensors narrowed;
  for (auto& [name, t] : f.tensors) {
    Tensor b = Tensor::empty(t.shape(), DType::bf16);
    ops::cast(t, b);
    narrowed.emplace_back(name, b);
  }
  save_safetensors(bf16 + "/model.safetensors", narrowed, {{"format", "pt"}});
  CliRun r = run_tessera("checkpoint import --from hf " + bf16 + " " + w.dir / "i6");
  INFO(r.output);
  REQUIRE(r.ok());
  r = run_tessera("checkpoint export --to hf " + w.dir / "i6" + " " + w.dir / "i6_hf");
  INFO(r.output);
  REQUIRE(r.ok());
  const SafetensorsFile widened = load_safetensors(w.dir / "i6_hf/model.safetensors");
  for (const auto& [name, b] : narrowed) {
    INFO(name);
    Tensor expected = Tensor::empty(b.shape());
    ops::cast(b, expected);
    REQUIRE(widened.tensors.count(name) == 1);
    CHECK(std::memcmp(widened.tensors.at(name).raw(), expected.raw(), expected.nbytes()) == 0);
  }
  // ... and complete, it imports (both shards the whole file: each tensor read from the one its map names).
  fs::copy_file(dir / "hf/model.safetensors", dir / "hf_sharded/model-00002-of-00002.safetensors");
  const CliRun ok = run_tessera("checkpoint import --from hf " + sharded + " " + w.dir / "i5");
  INFO(ok.output);
  CHECK(ok.ok());
  CHECK(no_temporary_folders(dir));
}

#ifdef TESSERA_MPIEXEC_PATH
TEST_CASE("export of a tp2·pp2 checkpoint: shards joined, stages collected, equal to the gathered final weights") {
  CliWorkspace w;
  const std::string llama =
      " --set model.num_attention_heads=4 --set model.num_query_groups=2 --set model.position_embedding_type=rope "
      "--set model.normalization=RMSNorm --set model.swiglu=true --set model.ffn_hidden_size=48 "
      "--set model.add_bias_linear=false --set model.untie_embeddings_and_output_weights=true";
  for (const std::string& model : {std::string(""), llama}) {  // gpt_bigcode multi-query (K/V replicated), llama
    const std::string save = w.dir / (model.empty() ? "mqa" : "llama");
    std::vector<std::string> argv = {"/usr/bin/env", "OMP_NUM_THREADS=1", "OMP_WAIT_POLICY=PASSIVE",
                                     TESSERA_MPIEXEC_PATH, "--allow-run-as-root", "--oversubscribe", "-np", "4",
                                     tessera::test::kTesseraBinary};
    std::istringstream words("train " + w.config + " --set training.train_iters=3 --set checkpoint.save_interval=3 " +
                             "--set parallel.tensor_model_parallel_size=2 --set parallel.pipeline_model_parallel_size=2 " +
                             "--set checkpoint.save=" + save + model);
    for (std::string s; words >> s;) argv.push_back(s);
    int status = 0;
    const std::string out = tessera::test::run_command(argv, &status, true);
    INFO(out);
    REQUIRE(status == 0);
    REQUIRE(fs::is_regular_file(save + "/iter_0000003/model_tp1_pp1.safetensors"));
    CliRun r = run_tessera("checkpoint export --to hf " + save + "/iter_0000003 " + save + "_ckpt_hf");
    INFO(r.output);
    REQUIRE(r.ok());
    r = run_tessera("checkpoint export --to hf " + save + " " + save + "_hf");
    INFO(r.output);
    REQUIRE(r.ok());
    require_same_tensors(save + "_ckpt_hf/model.safetensors", save + "_hf/model.safetensors");
    check_logits(save + "/iter_0000003", save + "_ckpt_hf", save + "_logits.f32");
    // Imported, it trains under tp2 (each rank its shard of the whole tensors).
    r = run_tessera("checkpoint import --from hf " + save + "_hf " + save + "_imported");
    INFO(r.output);
    REQUIRE(r.ok());
    argv.resize(7);
    argv.insert(argv.end(), {"2", tessera::test::kTesseraBinary});
    std::istringstream again("train " + w.config + " --set training.train_iters=1 --set parallel.tensor_model_parallel_size=2 " +
                             "--set checkpoint.save=" + save + "_ft --set checkpoint.load=" + save + "_imported" + model);
    for (std::string s; again >> s;) argv.push_back(s);
    const std::string ft = tessera::test::run_command(argv, &status, true);
    INFO(ft);
    CHECK(status == 0);
    CHECK(ft.find("holds final weights only") != std::string::npos);
  }
}

TEST_CASE("export of a tp2·ep2 qwen2_moe checkpoint: experts gathered, shards joined, equal to the final weights") {
  CliWorkspace w;
  const std::string save = w.dir / "moe";
  std::vector<std::string> argv = {"/usr/bin/env", "OMP_NUM_THREADS=1", "OMP_WAIT_POLICY=PASSIVE", TESSERA_MPIEXEC_PATH,
                                   "--allow-run-as-root", "--oversubscribe", "-np", "4", tessera::test::kTesseraBinary};
  std::istringstream words(
      "train " + w.config + " --set training.train_iters=3 --set checkpoint.save_interval=3 " + kLlama +
      " --set model.num_experts=4 --set model.moe_ffn_hidden_size=24 --set model.add_qkv_bias=true" +
      " --set model.moe_shared_expert_intermediate_size=40 --set model.moe_shared_expert_gate=true" +
      " --set model.moe_layer_freq=[0,1] --set parallel.tensor_model_parallel_size=2" +
      " --set parallel.expert_model_parallel_size=2 --set checkpoint.save=" + save);
  for (std::string s; words >> s;) argv.push_back(s);
  int status = 0;
  const std::string out = tessera::test::run_command(argv, &status, true);
  INFO(out);
  REQUIRE(status == 0);
  CliRun r = run_tessera("checkpoint export --to hf " + save + "/iter_0000003 " + save + "_ckpt_hf");
  INFO(r.output);
  REQUIRE(r.ok());
  CHECK(r.has("qwen2_moe"));
  r = run_tessera("checkpoint export --to hf " + save + " " + save + "_hf");
  INFO(r.output);
  REQUIRE(r.ok());
  require_same_tensors(save + "_ckpt_hf/model.safetensors", save + "_hf/model.safetensors");
  check_logits(save + "/iter_0000003", save + "_ckpt_hf", save + "_logits.f32");
}
#endif
