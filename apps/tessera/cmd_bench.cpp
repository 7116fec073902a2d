// tessera bench [CONFIG ...]: times a training step (forward, backward, clipping, AdamW) of each
// config's model on random tokens, and the same model written plainly in PyTorch
// (benchmarks/pytorch_gpt.py) in the same run, each in its own process so that peak memory is
// its own. Prints ms/step, tokens/s, achieved GFLOP/s, peak RSS and the ratio to PyTorch.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <span>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "plugin_defaults.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/ops.hpp"
#include "tessera/subprocess.hpp"
#include "tessera/train/components.hpp"
#include "tessera/train/iteration.hpp"

namespace tessera::app {
namespace {

struct BenchArgs {
  std::vector<std::string> configs{"configs/gpt/gpt2-124m.toml", "configs/gpt/tiny.toml"};
  std::int64_t iters = 5, warmup = 1, threads = 2;
  bool child = false, no_pytorch = false;
  std::string python = "/usr/bin/python3";
};

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
  Config config = with_plugin_defaults(Config::load(a.configs.at(0)));
  auto tokenizer = build_tokenizer(config);
  auto model = build_model(config, tokenizer->vocab_size(), 1234);
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  auto optimizer = build_optimizer(config, params);
  const std::int64_t B = config.section("training").get_int("micro_batch_size", 4, 1, 1 << 20);
  const std::int64_t T = model->seq_length();
  std::mt19937 rng(0);
  std::uniform_int_distribution<std::int32_t> tok(0, static_cast<std::int32_t>(tokenizer->vocab_size() - 1));
  // One batch of the fields the model reads: integer fields hold random token ids, float fields
  // (masks) ones.
  Batch batch;
  for (const FieldSpec& f : model->batch_fields()) {
    Shape shape{B};
    shape.insert(shape.end(), f.sample_shape.begin(), f.sample_shape.end());
    Tensor t = f.dtype == DType::i32 ? Tensor::empty(shape, DType::i32) : Tensor::full(shape, 1.0f);
    if (f.dtype == DType::i32)
      for (std::int32_t& v : std::span(t.data<std::int32_t>(), static_cast<std::size_t>(t.numel()))) v = tok(rng);
    batch.set(f.name, t);
  }
  const auto single = Parallel::single();
  std::vector<double> ms;
  reset_peak_memory();
  for (std::int64_t i = 0; i < a.warmup + a.iters; ++i) {
    IterationSettings s;
    s.iteration = i + 1;
    const auto t0 = std::chrono::steady_clock::now();
    run_iteration(*model, params, *optimizer, [&](std::int64_t) { return batch; }, s, *single);
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= a.warmup) ms.push_back(dt);
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  ConfigSection m = config.section("model");
  nlohmann::json j = {{"ms_per_step", med},
                      {"tokens_per_s", static_cast<double>(B * T) / (med / 1e3)},
                      {"gflops", model->flops_per_iteration(B) / (med / 1e3) / 1e9},
                      {"flops", model->flops_per_iteration(B)},
                      {"peak_rss_mib", peak_rss_mib()},
                      {"peak_tensor_mib", static_cast<double>(memory_stats().peak_bytes) / (1 << 20)},
                      {"layers", m.get_int("num_layers")},
                      {"hidden", m.get_int("hidden_size")},
                      {"heads", m.get_int("num_attention_heads")},
                      {"groups", m.get_int("num_query_groups", m.get_int("num_attention_heads"))},
                      {"vocab", [&] {  // padded as the model pads it
                         const std::int64_t d = m.get_int("make_vocab_size_divisible_by", 128);
                         return (tokenizer->vocab_size() + d - 1) / d * d;
                       }()},
                      {"seq", T},
                      {"batch", B},
                      {"params", count_elements(params)}};
  fmt::print("{}\n", j.dump());
  return 0;
}

// The machine's single-precision GEMM rate (median of 5 × 2048³ sgemm), the peak that model-FLOPs
// utilisation (MFU) is quoted against on a CPU.
double gemm_peak_gflops(std::int64_t threads) {
  ops::set_num_threads(static_cast<int>(threads));
  const std::int64_t n = 2048;
  Tensor a = Tensor::full({n, n}, 0.5f), b = Tensor::full({n, n}, 0.25f), c = Tensor::empty({n, n});
  std::vector<double> rates;
  for (int i = 0; i < 6; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    ops::matmul(a, false, b, false, c);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i > 0) rates.push_back(2.0 * n * n * n / s / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

// benchmarks/pytorch_gpt.py: installed beside the program (<prefix>/share/tessera), else in the
// source tree this binary was built from.
std::string pytorch_baseline_script(const std::filesystem::path& self) {
  const std::filesystem::path installed = self.parent_path() / "../share/tessera/benchmarks/pytorch_gpt.py";
  std::error_code ec;
  if (std::filesystem::is_regular_file(installed, ec)) return installed.lexically_normal().string();
  const std::filesystem::path source = std::filesystem::path(TESSERA_SOURCE_DIR) / "benchmarks/pytorch_gpt.py";
  if (std::filesystem::is_regular_file(source, ec)) return source.string();
  throw Error(fmt::format("the PyTorch baseline script is neither at {} nor at {}; use --no-pytorch",
                          installed.lexically_normal().string(), source.string()));
}

int bench_parent(const BenchArgs& a) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const double peak = gemm_peak_gflops(a.threads);
  fmt::print("sgemm 2048³ with {} threads: {:.1f} GFLOP/s (median) — MFU below is relative to it\n", a.threads, peak);
  fmt::print("{:<28} {:>10} {:>10} {:>9} {:>6} {:>10} {:>10} {:>10}\n", "config / implementation", "ms/step", "tokens/s",
             "GFLOP/s", "MFU", "peak RSS", "tensors", "vs torch");
  for (const std::string& cfg : a.configs) {
    auto ours = nlohmann::json::parse(run_capture({self, "bench", "--child", "--iters", std::to_string(a.iters), "--warmup",
                                                   std::to_string(a.warmup), "--threads", std::to_string(a.threads),
                                                   "--", cfg}));
    fmt::print("{:<28} {:>10.1f} {:>10.0f} {:>9.1f} {:>5.0f}% {:>8.0f}Mi {:>8.0f}Mi",
               std::filesystem::path(cfg).stem().string() + " / tessera", ours["ms_per_step"].get<double>(),
               ours["tokens_per_s"].get<double>(), ours["gflops"].get<double>(), 100.0 * ours["gflops"].get<double>() / peak,
               ours["peak_rss_mib"].get<double>(), ours["peak_tensor_mib"].get<double>());
    if (a.no_pytorch) {
      fmt::print("\n");
      continue;
    }
    const std::string script = pytorch_baseline_script(self);
    const auto arg = [&](const char* key) { return std::to_string(ours[key].get<std::int64_t>()); };
    auto torch = nlohmann::json::parse(run_capture(
        {a.python, script, "--layers", arg("layers"), "--hidden", arg("hidden"), "--heads", arg("heads"), "--groups",
         arg("groups"), "--vocab", arg("vocab"), "--seq", arg("seq"), "--batch", arg("batch"), "--iters",
         std::to_string(a.iters), "--warmup", std::to_string(a.warmup), "--threads", std::to_string(a.threads),
         "--flops", fmt::format("{:.17g}", ours["flops"].get<double>())}));
    fmt::print(" {:>9.2f}x\n", torch["ms_per_step"].get<double>() / ours["ms_per_step"].get<double>());
    fmt::print("{:<28} {:>10.1f} {:>10.0f} {:>9.1f} {:>5.0f}% {:>8.0f}Mi {:>10}\n",
               std::filesystem::path(cfg).stem().string() + " / pytorch " + torch["torch"].get<std::string>(),
               torch["ms_per_step"].get<double>(), torch["tokens_per_s"].get<double>(), torch["gflops"].get<double>(),
               100.0 * torch["gflops"].get<double>() / peak, torch["peak_rss_mib"].get<double>(), "-");
  }
  return 0;
}

RegisterCommand reg{{"bench",
                     [](CLI::App& sub) -> std::function<int()> {
                       auto a = std::make_shared<BenchArgs>();
                       sub.add_option("configs", a->configs, "model configs to time")->capture_default_str();
                       sub.add_option("--iters", a->iters, "timed steps (the median is reported)")
                           ->capture_default_str()
                           ->check(in_range(1));
                       sub.add_option("--warmup", a->warmup, "untimed steps first")->capture_default_str()->check(in_range(0));
                       sub.add_option("--threads", a->threads, "threads for both Tessera and PyTorch")
                           ->capture_default_str()
                           ->check(in_range(1));
                       sub.add_option("--python", a->python, "python with torch")->capture_default_str();
                       sub.add_flag("--no-pytorch", a->no_pytorch, "skip the PyTorch baseline");
                       sub.add_flag("--child", a->child, "internal: measure one config in this process");
                       return [a] { return a->child ? bench_child(*a) : bench_parent(*a); };
                     },
                     "time training steps against PyTorch on this machine"}};

}  // namespace
}  // namespace tessera::app
