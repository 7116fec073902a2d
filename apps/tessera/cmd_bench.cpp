// tessera bench [CONFIG ...] [--precision fp32,bf16,fp16] [--set section.key=value ...]: times a
// training step (forward, backward, clipping, AdamW) of each config's model on random tokens, in
// each precision asked for, and the same model written plainly in PyTorch
// (benchmarks/pytorch_gpt.py, pytorch_bert.py, pytorch_t5.py; bf16: PyTorch's CPU bf16 autocast) in the same run, each in its own
// process so that peak memory is its own. Prints ms/step, tokens/s, achieved GFLOP/s, MFU against
// the machine's measured GEMM peak of the precision's arithmetic (f32 sgemm, bf16 GEMM), peak RSS,
// and the ratios to PyTorch and to the same implementation's fp32 step.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <span>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "plugin_defaults.hpp"
#include "tessera/backend.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/nn/parameter.hpp"
#include "tessera/nn/transformer_options.hpp"
#include "tessera/ops.hpp"
#include "tessera/subprocess.hpp"
#include "tessera/train/components.hpp"
#include "tessera/train/iteration.hpp"
#include "tessera/train/loss_scaler.hpp"
#include "tessera/train/precision.hpp"

namespace tessera::app {
namespace {

const std::vector<std::string> kPrecisions{"fp32", "tf32", "bf16", "fp16"};

struct BenchArgs {
  std::vector<std::string> configs{"configs/gpt/gpt2-124m.toml", "configs/gpt/tiny.toml"};
  // --precision: each is timed in turn (fp32 first); empty: the config's own [training] precision.
  std::vector<std::string> precisions;
  // --set section.key=value, applied to every config as `tessera train --set` applies them
  // (Config::load), before --precision.
  std::vector<std::string> overrides;
  std::int64_t iters = 5, warmup = 1, threads = 2, gemm_size = 2048;
  bool child = false, no_pytorch = false;
  std::string python = "/usr/bin/python3";
  std::string device = "cpu";  // --device: "cpu" or a backend plugin ("cuda")
};

// --device, resolved: the CPU, or a backend plugin that has a device here.
Device bench_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  const Device d = device_named(name);
  if (backend_of(d).device_count() == 0)
    throw Error(fmt::format("--device {}: the backend loads but has no device here ({})", name,
                            backend_of(d).unavailable_reason()));
  return d;
}

// The overrides the child loads its config with: the user's --set, then --precision as
// training.precision (Megatron's bf16/fp16 flags cleared so that a config setting one does not
// contradict it).
std::vector<std::string> child_overrides(const BenchArgs& a) {
  std::vector<std::string> o = a.overrides;
  if (!a.precisions.empty()) {
    if (a.precisions.size() != 1) throw Error("bench --child times one precision");
    o.insert(o.end(), {"training.bf16=false", "training.fp16=false", "training.precision=" + a.precisions[0]});
  }
  return o;
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

// Runs argv (no shell: config paths and --python are arguments, never command text) and returns
// its last stdout line, the JSON result.
std::string run_capture(const std::vector<std::string>& argv) {
  const ProcessResult r = run_process(argv);
  if (!r.ok())
    throw Error(fmt::format("benchmark command failed ({}): {}\n{}", r.describe(), fmt::join(argv, " "), r.output));
  auto pos = r.output.rfind("\n{");  // the JSON line is the last one
  return r.output.substr(pos == std::string::npos ? 0 : pos + 1);
}

// In-process measurement of one config; prints one JSON line.
int bench_child(const BenchArgs& a) {
  ops::set_num_threads(static_cast<int>(a.threads));
  log_state().level = LogLevel::warn;
  Config config = with_plugin_defaults(Config::load(a.configs.at(0), child_overrides(a)));
  const PrecisionOptions precision = read_precision(config);
  const Device device = bench_device(a.device);
  use_precision(precision, device);
  // As the trainer: fp16 scales the loss (dynamically by default), a skipped step is still timed.
  LossScaler scaler(read_loss_scaler(config, precision.compute));
  auto tokenizer = build_tokenizer(config);
  auto model = build_model(config, tokenizer->vocab_size(), 1234, nullptr, precision.compute);
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  move_parameters(params, device);  // built on the host, moved once, as the trainer does
  // Mixed precision as in training: f32 master weights, bf16/f16 copies that forward and backward
  // read, written by the optimizer's pass.
  make_compute_copies(params, precision.compute);
  const std::vector<Parameter*> trainable = trainable_parameters(params);
  auto optimizer = build_optimizer(config, trainable);
  const std::int64_t B = config.section("training").get_int("micro_batch_size", 4, 1, 1 << 20);
  const std::int64_t T = model->seq_length();
  // One batch of random samples the model accepts (Model::example_batch), moved once.
  Batch batch;
  const Batch host_batch = model->example_batch(B, tokenizer->vocab_size(), 0);
  for (const std::string& name : host_batch.names()) batch.set(name, host_batch.get(name).to(device));
  const auto single = Parallel::single();
  std::vector<double> ms;
  double loss = 0;
  std::int64_t skipped = 0;
  reset_peak_memory(device);
  // Each step ends by reading its loss and gradient norm on the host, so a device step is timed to
  // its end.
  for (std::int64_t i = 0; i < a.warmup + a.iters; ++i) {
    IterationSettings s;
    s.iteration = i + 1;
    s.micro_batch_size = B;
    s.loss_scale = scaler.scale();
    s.skip_nonfinite = scaler.skips_nonfinite();
    const auto t0 = std::chrono::steady_clock::now();
    const IterationResult r = run_iteration(*model, trainable, *optimizer, [&](std::int64_t) { return batch; }, s, *single);
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    scaler.update(r.skipped);
    loss = r.loss;
    if (i + 1 == a.warmup) ops::reset_op_profile();  // TESSERA_OP_PROFILE: the timed steps only
    if (i >= a.warmup) {
      ms.push_back(dt);
      skipped += r.skipped ? 1 : 0;
    }
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  ConfigSection m = config.section("model");
  const std::string plugin = m.get_string("plugin");
  // T5 may name its encoder's depth encoder_num_layers; its decoder has its own depth and length.
  const std::int64_t layers = m.has("num_layers") || !m.has("encoder_num_layers") ? m.get_int("num_layers")
                                                                                   : m.get_int("encoder_num_layers");
  nlohmann::json j = {{"model", plugin},
                      {"binary_head", plugin == "bert" && m.get_bool("bert_binary_head", true) ? 1 : 0},
                      {"precision", precision_name(precision)},
                      {"loss", loss},
                      {"skipped", skipped},
                      {"ms_per_step", med},
                      {"tokens_per_s", static_cast<double>(B * T) / (med / 1e3)},
                      {"gflops", model->flops_per_iteration(B) / (med / 1e3) / 1e9},
                      {"flops", model->flops_per_iteration(B)},
                      {"peak_rss_mib", peak_rss_mib()},
                      {"peak_tensor_mib", static_cast<double>(memory_stats(device).peak_bytes) / (1 << 20)},
                      {"layers", layers},
                      {"dec_layers", m.get_int("decoder_num_layers", layers)},
                      {"dec_seq", model->decoder_seq_length()},
                      {"hidden", m.get_int("hidden_size")},
                      {"heads", m.get_int("num_attention_heads")},
                      {"groups", m.get_int("num_query_groups", m.get_int("num_attention_heads"))},
                      {"vocab", [&] {  // padded as the model pads it
                         const std::int64_t d = m.get_int("make_vocab_size_divisible_by", 128);
                         return (tokenizer->vocab_size() + d - 1) / d * d;
                       }()},
                      {"seq", T},
                      {"batch", B},
                      {"params", count_elements(trainable)}};
  if (plugin == "gpt") {
    // GPT's MLP width, Llama-style (docs/llama.md) and mixture-of-experts (docs/moe.md) options, as
    // the model read them, for benchmarks/pytorch_gpt.py's --llama.
    const TransformerOptions o = read_gpt_style_options(m, tokenizer->vocab_size(), 0, ParallelSizes{}, plugin);
    j["llama"] = {{"ffn", o.ffn_hidden_size},
                  {"rope", o.rope},
                  {"learned_positions", o.learned_positions},
                  {"rotary_percent", o.rotary_percent},
                  {"rotary_base", o.rotary_base},
                  {"rotary_interleaved", o.rotary_interleaved},
                  {"rms_norm", o.rms_norm},
                  {"swiglu", o.swiglu},
                  {"untied", o.untie_embeddings_and_output_weights},
                  {"bias", o.add_bias_linear},
                  {"qkv_bias", o.add_bias_linear || o.add_qkv_bias},
                  {"qk_layernorm", o.qk_layernorm},
                  {"squared_relu", o.squared_relu},
                  {"softmax_type", softmax_type_name(o.softmax_type)}};
    if (o.swiglu && !(o.glu == GatedLinearUnit{}))  // quick GeGLU, clamps, offsets
      j["llama"]["glu"] = {{"alpha", o.glu.alpha},
                           {"clamp", std::isfinite(o.glu.clamp) ? nlohmann::json(o.glu.clamp) : nlohmann::json()},
                           {"offset", o.glu.linear_offset}};
    if (!o.nope_layer_pattern.empty()) {  // no_rope_freq: the layers without rotary positions
      std::vector<int> flags;
      for (std::int64_t i = 0; i < o.num_layers; ++i) flags.push_back(o.rope_in_layer(i) ? 0 : 1);
      j["llama"]["nope_layers"] = flags;
    }
    if (o.window_left >= 0) {  // the sliding window and the layers that have it
      std::vector<int> flags;
      for (std::int64_t i = 0; i < o.num_layers; ++i) flags.push_back(o.window_left_of(i) >= 0 ? 1 : 0);
      j["llama"]["window"] = o.window_left;
      j["llama"]["window_layers"] = flags;
    }
    if (o.rope_yarn.factor > 0.0)
      j["llama"]["yarn"] = {{"factor", o.rope_yarn.factor},
                            {"original", o.rope_yarn.original_context},
                            {"beta_fast", o.rope_yarn.beta_fast},
                            {"beta_slow", o.rope_yarn.beta_slow},
                            {"mscale", o.rope_yarn.mscale},
                            {"mscale_all_dim", o.rope_yarn.mscale_all_dim},
                            {"round_to_int", o.rope_yarn.round_to_int}};
    if (o.moe.router.experts > 0) {
      std::vector<int> flags;
      for (std::int64_t i = 0; i < o.num_layers; ++i) flags.push_back(o.moe_layer(i) ? 1 : 0);
      j["llama"]["moe"] = {{"experts", o.moe.router.experts},
                           {"topk", o.moe.router.topk},
                           {"ffn", o.moe.ffn_hidden},
                           {"shared", o.moe.shared_ffn_hidden},
                           {"pre_softmax", o.moe.router.pre_softmax},
                           {"scale", o.moe.router.topk_scaling_factor},
                           {"aux", o.moe.router.aux_loss_coeff},
                           {"z", o.moe.router.z_loss_coeff},
                           {"layers", flags}};
    }
    if (o.mtp_num_layers > 0)  // multi-token prediction depths (docs/mtp.md)
      j["llama"]["mtp"] = {{"layers", o.mtp_num_layers},
                           {"scale", o.mtp_loss_scaling_factor},
                           {"repeated", o.mtp_use_repeated_layer}};
  }
  fmt::print("{}\n", j.dump());
  return 0;
}

// The machine's GEMM rate through Tessera's own ops::matmul (median of 5 × n³ after one warm-up):
// f32 is OpenBLAS's sgemm; bf16 (bf16 operands and output, f32 accumulation, as torch.matmul in
// bf16) is oneDNN's matmul where the CPU has bf16 instructions (the "bf16 matmuls on the CPU" log
// line says which). The peaks that model-FLOPs utilisation (MFU) is quoted against on a CPU.
double gemm_peak_gflops(std::int64_t threads, std::int64_t n, DType dtype, Device device) {
  ops::set_num_threads(static_cast<int>(threads));
  // Random operands (a GPU multiplies zeros faster), made on the host and moved once.
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  Tensor a = Tensor::empty({n, n}, DType::f32), b = Tensor::empty({n, n}, DType::f32);
  for (Tensor* t : {&a, &b})
    for (float& v : std::span(t->data<float>(), static_cast<std::size_t>(n * n))) v = u(rng);
  a = a.to(device);
  b = b.to(device);
  Tensor c = Tensor::empty({n, n}, dtype, device);
  if (dtype != DType::f32) {
    Tensor a16 = Tensor::empty({n, n}, dtype, device), b16 = Tensor::empty({n, n}, dtype, device);
    ops::cast(a, a16);
    ops::cast(b, b16);
    a = a16;
    b = b16;
  }
  Backend& backend = backend_of(device);
  std::vector<double> rates;
  for (int i = 0; i < 6; ++i) {
    backend.synchronize(device.index);
    const auto t0 = std::chrono::steady_clock::now();
    ops::matmul(a, false, b, false, c);
    backend.synchronize(device.index);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i > 0) rates.push_back(2.0 * n * n * n / s / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

// benchmarks/<file> (pytorch_gpt.py: the GEMM peaks and GPT; pytorch_<model>.py: another model's
// step): installed beside the program (<prefix>/share/tessera), else in the source tree this binary
// was built from.
std::string pytorch_baseline_script(const std::filesystem::path& self, const std::string& file = "pytorch_gpt.py") {
  const std::filesystem::path installed = self.parent_path() / "../share/tessera/benchmarks" / file;
  std::error_code ec;
  if (std::filesystem::is_regular_file(installed, ec)) return installed.lexically_normal().string();
  const std::filesystem::path source = std::filesystem::path(TESSERA_SOURCE_DIR) / "benchmarks" / file;
  if (std::filesystem::is_regular_file(source, ec)) return source.string();
  throw Error(fmt::format("the PyTorch baseline script is neither at {} nor at {}; use --no-pytorch",
                          installed.lexically_normal().string(), source.string()));
}

// /proc/cpuinfo's first "model name", and whether its flags name bf16 instructions.
std::string cpu_description() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "unknown CPU", flags;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0) continue;
    const std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    if (key == "model name" && model == "unknown CPU") model = line.substr(std::min(line.size(), colon + 2));
    if (key == "flags" && flags.empty()) flags = " " + line.substr(colon + 1) + " ";
    if (model != "unknown CPU" && !flags.empty()) break;
  }
  std::vector<std::string> have;
  for (const char* f : {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
    if (flags.find(fmt::format(" {} ", f)) != std::string::npos) have.emplace_back(f);
  return fmt::format("{} (flags: {})", model, have.empty() ? "no avx512f/avx512_bf16/amx" : fmt::format("{}", fmt::join(have, " ")));
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  double one = 0, five = 0, fifteen = 0;
  if (!(in >> one >> five >> fifteen)) return "unknown";
  return fmt::format("{:.2f} {:.2f} {:.2f}", one, five, fifteen);
}

// What each row runs, printed once above the table.
void print_legend(const std::vector<std::string>& precisions, bool pytorch, std::int64_t iters, std::int64_t warmup,
                  std::int64_t threads, bool on_gpu) {
  const auto has = [&](const char* p) {
    return precisions.empty() || std::find(precisions.begin(), precisions.end(), p) != precisions.end();
  };
  fmt::print("What each row runs (random tokens; forward, backward, clipping at 1.0, AdamW; median of {} timed steps "
             "after {} warm-up; {} threads on both sides):\n",
             iters, warmup, threads);
  if (on_gpu) {  // the cuda backend: every op runs in the compute dtype on the GPU
    if (has("fp32")) fmt::print("  tessera fp32: f32 weights, activations and GEMMs (cuBLASLt, no TF32)\n");
    if (has("tf32")) fmt::print("  tessera tf32: as fp32, the GEMMs on TF32 tensor cores (f32 accumulation)\n");
    if (has("bf16"))
      fmt::print("  tessera bf16: [training] precision = \"bf16\": f32 master weights, gradients and Adam state; bf16 "
                 "weight copies, activations and GEMMs (f32 accumulation); f32 logits and loss\n");
    if (has("fp16")) fmt::print("  tessera fp16: as bf16 with f16 copies and loss scaling as configured\n");
    if (!pytorch) return;
    if (has("fp32")) fmt::print("  pytorch fp32: benchmarks/pytorch_<model>.py on the GPU, f32 (no TF32), F.scaled_dot_product_attention\n");
    if (has("tf32")) fmt::print("  pytorch tf32: the same with torch.backends.cuda.matmul.allow_tf32 (and cuDNN's)\n");
    if (has("bf16"))
      fmt::print("  pytorch bf16-autocast: the same with torch.autocast(\"cuda\", dtype=torch.bfloat16) around forward "
                 "and loss; f32 weights, gradients and AdamW\n");
    if (has("fp16")) fmt::print("  pytorch fp16: not run\n");
    return;
  }
  if (has("fp32")) fmt::print("  tessera fp32: f32 weights, activations and GEMMs (sgemm)\n");
  if (has("bf16"))
    fmt::print("  tessera bf16: [training] precision = \"bf16\": f32 master weights, gradients and Adam state; bf16 weight "
               "copies and activations; bf16 GEMMs as timed for the bf16 peak, every other op on f32 copies; f32 logits "
               "and loss\n");
  if (has("fp16"))
    fmt::print("  tessera fp16: [training] precision = \"fp16\": as bf16 with f16 copies, GEMMs by f32 conversion, loss "
               "scaling as configured (dynamic by default)\n");
  if (!pytorch) return;
  if (has("fp32")) fmt::print("  pytorch fp32: benchmarks/pytorch_<model>.py (gpt, bert, t5), f32 throughout, torch.optim.AdamW\n");
  if (has("bf16"))
    fmt::print("  pytorch bf16-autocast: the same script with torch.autocast(\"cpu\", dtype=torch.bfloat16) around "
               "forward and loss, backward outside it; f32 weights, gradients and AdamW\n");
  if (has("fp16")) fmt::print("  pytorch fp16: not run (PyTorch 1.13 has no CPU fp16 autocast)\n");
}

int bench_parent(const BenchArgs& a) {
  // --precision replaces what --set would say about precision: both at once would contradict.
  if (!a.precisions.empty())
    for (const std::string& o : a.overrides) {
      std::string key = o.substr(0, o.find('='));
      key.erase(0, key.find_first_not_of(" \t"));
      key.erase(key.find_last_not_of(" \t") + 1);
      if (key == "training.precision" || key == "training.bf16" || key == "training.fp16")
        throw Error(fmt::format("--set {} and --precision both choose the precision: use --precision only", o));
    }
  // Each precision once, fp32 first: the other rows are compared with it.
  std::vector<std::string> precisions;
  for (const std::string& p : kPrecisions)
    if (std::find(a.precisions.begin(), a.precisions.end(), p) != a.precisions.end()) precisions.push_back(p);

  // Every config is read (with the overrides) before minutes of timing: a missing file, a TOML
  // error or a bad --set is the one thing printed, not a line buried above the peaks and the table.
  for (const std::string& c : a.configs) (void)Config::load(c, a.overrides);

  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const bool pytorch = !a.no_pytorch;
  // The PyTorch baseline runs where Tessera runs: the CPU, or its CUDA device for any GPU backend.
  const std::string torch_device = a.device == "cpu" ? "cpu" : "cuda";
  const std::string script = pytorch ? pytorch_baseline_script(self) : std::string();
  fmt::print("CPU: {}; {} threads; load average (1/5/15 min) at start: {}\n", cpu_description(), a.threads,
             load_average());
  if (!a.overrides.empty()) fmt::print("--set {}\n", fmt::join(a.overrides, " --set "));

  // GEMM peaks: Tessera's ops::matmul and, with the baseline, torch.matmul, in f32 and bf16. The peak
  // of a dtype is the faster of the two: the best GEMM rate this machine showed in that arithmetic.
  const std::string n = std::to_string(a.gemm_size);
  const Device device = bench_device(a.device);
  if (!device.is_cpu()) fmt::print("device: {} (the {} backend)\n", device.str(), backend_of(device).name());
  const double ours_f32 = gemm_peak_gflops(a.threads, a.gemm_size, DType::f32, device);
  const double ours_bf16 = gemm_peak_gflops(a.threads, a.gemm_size, DType::bf16, device);
  // TF32: f32 operands on the TF32 tensor cores, where the device has them and a tf32 row is asked for.
  const bool tf32 = backend_of(device).supports_tf32() &&
                    std::find(precisions.begin(), precisions.end(), "tf32") != precisions.end();
  double ours_tf32 = 0;
  if (tf32) {
    backend_of(device).set_tf32(true);
    ours_tf32 = gemm_peak_gflops(a.threads, a.gemm_size, DType::f32, device);
    backend_of(device).set_tf32(false);
  }
  double torch_f32 = 0, torch_bf16 = 0, torch_tf32 = 0;
  std::string torch_version;
  if (pytorch) {
    const auto torch_gemm = [&](const char* dtype) {
      auto j = nlohmann::json::parse(
          run_capture({a.python, script, "--gemm", n, "--dtype", dtype, "--threads", std::to_string(a.threads),
                       "--device", torch_device}));
      torch_version = j["torch"].get<std::string>();
      return j["gflops"].get<double>();
    };
    torch_f32 = torch_gemm("fp32");
    torch_bf16 = torch_gemm("bf16");
    if (tf32) torch_tf32 = torch_gemm("tf32");
  }
  const double peak_f32 = std::max(ours_f32, torch_f32), peak_bf16 = std::max(ours_bf16, torch_bf16),
               peak_tf32 = std::max(ours_tf32, torch_tf32);
  const auto peak_line = [&](const char* what, double ours, double torch, double peak) {
    fmt::print("{} GEMM {}³, {} threads (median of 5): tessera ops::matmul {:.1f} GFLOP/s", what, n, a.threads, ours);
    if (pytorch) fmt::print(", pytorch {} torch.matmul {:.1f} GFLOP/s", torch_version, torch);
    fmt::print(" → peak {:.1f}\n", peak);
  };
  peak_line("f32 ", ours_f32, torch_f32, peak_f32);
  peak_line("bf16", ours_bf16, torch_bf16, peak_bf16);
  if (tf32) peak_line("tf32", ours_tf32, torch_tf32, peak_tf32);
  if (device.is_cpu())
    fmt::print("MFU: fp32 and fp16 rows against the f32 peak (fp16 GEMMs run in f32 here), bf16 rows against the bf16 peak\n");
  else
    fmt::print("MFU: fp32 and fp16 rows against the measured f32 GEMM rate, bf16 rows against the measured bf16 GEMM rate "
               "(the card's datasheet peak is higher: docs/benchmarks.md quotes both)\n");
  print_legend(precisions, pytorch, a.iters, a.warmup, a.threads, !device.is_cpu());

  fmt::print("{:<38} {:>9} {:>9} {:>8} {:>5} {:>7} {:>9} {:>9} {:>8} {:>8}\n", "config / implementation precision",
             "ms/step", "tokens/s", "GFLOP/s", "MFU", "loss", "peak RSS", "tensors", "vs torch", "vs fp32");
  const auto peak_for = [&](const std::string& p) {
    return p == "bf16" ? peak_bf16 : p == "tf32" && peak_tf32 > 0 ? peak_tf32 : peak_f32;
  };
  const auto ratio = [](const std::optional<double>& x) { return x ? fmt::format("{:.2f}x", *x) : std::string("-"); };
  const auto print_row = [&](const std::string& label, const nlohmann::json& r, const std::string& prec, bool tensors,
                             std::optional<double> vs_torch, std::optional<double> vs_fp32) {
    fmt::print("{:<38} {:>9.1f} {:>9.0f} {:>8.1f} {:>4.0f}% {:>7.3f} {:>7.0f}Mi {:>9} {:>8} {:>8}\n", label,
               r["ms_per_step"].get<double>(), r["tokens_per_s"].get<double>(), r["gflops"].get<double>(),
               100.0 * r["gflops"].get<double>() / peak_for(prec), r["loss"].get<double>(), r["peak_rss_mib"].get<double>(),
               tensors                                  ? fmt::format("{:.0f}Mi", r["peak_tensor_mib"].get<double>())
               : r.value("peak_device_mib", 0.0) > 0 ? fmt::format("{:.0f}Mi", r["peak_device_mib"].get<double>())
                                                     : std::string("-"),
               ratio(vs_torch),
               ratio(vs_fp32));
    std::fflush(stdout);
  };

  std::vector<std::string> runs = precisions;
  if (runs.empty()) runs.emplace_back();  // the config's own precision
  for (const std::string& cfg : a.configs) {
    const std::string stem = std::filesystem::path(cfg).stem().string();
    std::optional<double> ours_fp32_ms, torch_fp32_ms;  // this config's fp32 steps: what "vs fp32" divides
    for (const std::string& prec : runs) {
      std::vector<std::string> argv{self, "bench", "--child", "--iters", std::to_string(a.iters), "--warmup",
                                    std::to_string(a.warmup), "--threads", std::to_string(a.threads), "--device",
                                    a.device};
      if (!prec.empty()) argv.insert(argv.end(), {"--precision", prec});
      for (const std::string& o : a.overrides) argv.insert(argv.end(), {"--set", o});
      argv.insert(argv.end(), {"--", cfg});
      const auto ours = nlohmann::json::parse(run_capture(argv));
      const std::string p = ours["precision"].get<std::string>();
      const double ours_ms = ours["ms_per_step"].get<double>();
      if (p == "fp32") ours_fp32_ms = ours_ms;
      std::optional<nlohmann::json> torch;
      if (pytorch && p != "fp16") {
        const auto arg = [&](const char* key) { return std::to_string(ours[key].get<std::int64_t>()); };
        // The same model in PyTorch: pytorch_<model plugin>.py beside the GPT one.
        const std::string model = ours["model"].get<std::string>();
        std::vector<std::string> torch_argv{
            a.python, model == "gpt" ? script : pytorch_baseline_script(self, "pytorch_" + model + ".py"), "--layers",
            arg("layers"), "--hidden", arg("hidden"), "--heads", arg("heads"), "--groups", arg("groups"), "--vocab",
            arg("vocab"), "--seq", arg("seq"), "--batch", arg("batch"), "--iters", std::to_string(a.iters), "--warmup",
            std::to_string(a.warmup), "--threads", std::to_string(a.threads), "--flops",
            fmt::format("{:.17g}", ours["flops"].get<double>()), "--precision", p, "--device", torch_device};
        if (model == "bert") torch_argv.insert(torch_argv.end(), {"--binary-head", arg("binary_head")});
        if (model == "gpt" && ours.contains("llama")) torch_argv.insert(torch_argv.end(), {"--llama", ours["llama"].dump()});
        if (model == "t5") torch_argv.insert(torch_argv.end(), {"--dec-layers", arg("dec_layers"), "--dec-seq", arg("dec_seq")});
        torch = nlohmann::json::parse(run_capture(torch_argv));
        if (p == "fp32") torch_fp32_ms = (*torch)["ms_per_step"].get<double>();
      }
      const auto vs_fp32 = [&](const std::optional<double>& fp32_ms, double ms) -> std::optional<double> {
        if (p == "fp32" || !fp32_ms) return std::nullopt;
        return *fp32_ms / ms;
      };
      print_row(fmt::format("{} / tessera {}", stem, p), ours, p, true,
                torch ? std::optional<double>((*torch)["ms_per_step"].get<double>() / ours_ms) : std::nullopt,
                vs_fp32(ours_fp32_ms, ours_ms));
      if (ours["skipped"].get<std::int64_t>() > 0)
        fmt::print("  ({} of the timed steps were skipped by the loss scaler: no optimizer step; a constant scale, e.g. "
                   "--set training.loss_scale=1024, avoids that)\n",
                   ours["skipped"].get<std::int64_t>());
      if (torch)
        print_row(fmt::format("{} / pytorch {}", stem, (*torch)["precision"].get<std::string>()), *torch, p, false,
                  std::nullopt, vs_fp32(torch_fp32_ms, (*torch)["ms_per_step"].get<double>()));
      else if (pytorch)
        fmt::print("{} / pytorch: no CPU fp16 autocast in PyTorch 1.13, not run\n", stem);
    }
    fmt::print("  load average after {}: {}\n", stem, load_average());
  }
  return 0;
}

RegisterCommand reg{{"bench",
                     [](CLI::App& sub) -> std::function<int()> {
                       auto a = std::make_shared<BenchArgs>();
                       sub.add_option("configs", a->configs, "model configs to time")->capture_default_str();
                       sub.add_option("--precision", a->precisions,
                                      "fp32, tf32 (GPUs), bf16 and/or fp16 (repeatable or comma-separated): each is timed, fp32 "
                                      "first; default: each config's own [training] precision (fp32 unless set)")
                           ->delimiter(',')
                           ->check(CLI::IsMember(kPrecisions));
                       sub.add_option("--set", a->overrides,
                                      "override a key of every timed config: section.key=value (repeatable), as "
                                      "`tessera train --set`; bench reads [model], [tokenizer], [optimizer] and "
                                      "[training] micro_batch_size, precision and loss scaling; --iters sets the steps");
                       sub.add_option("--iters", a->iters, "timed steps (the median is reported)")
                           ->capture_default_str()
                           ->check(in_range(1));
                       sub.add_option("--warmup", a->warmup, "untimed steps first")->capture_default_str()->check(in_range(0));
                       sub.add_option("--threads", a->threads, "threads for both Tessera and PyTorch")
                           ->capture_default_str()
                           ->check(in_range(1));
                       sub.add_option("--gemm-size", a->gemm_size, "n of the n³ GEMMs timed for the f32 and bf16 peaks")
                           ->capture_default_str()
                           ->check(in_range(16, 16384));
                       sub.add_option("--python", a->python, "python with torch")->capture_default_str();
                       sub.add_flag("--no-pytorch", a->no_pytorch, "skip the PyTorch baseline");
                       sub.add_option("--device", a->device,
                                      "cpu, or a backend plugin with a device here (cuda): where both Tessera and "
                                      "the PyTorch baseline run")
                           ->capture_default_str();
                       sub.add_flag("--child", a->child, "internal: measure one config in this process");
                       return [a] { return a->child ? bench_child(*a) : bench_parent(*a); };
                     },
                     "time training steps against PyTorch on this machine"}};

}  // namespace
}  // namespace tessera::app
