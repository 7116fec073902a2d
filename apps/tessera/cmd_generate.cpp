// tessera generate --load DIR --prompt TEXT: samples from weights saved by `tessera train`.
#include <filesystem>
#include <random>

#include <fmt/format.h>

#include "command.hpp"
#include "tessera/error.hpp"
#include "tessera/io/safetensors.hpp"
#include "tessera/logging.hpp"
#include "tessera/ops.hpp"
#include "tessera/sampling.hpp"
#include "tessera/train/components.hpp"

namespace tessera::app {
namespace {

struct GenerateArgs {
  std::string load, prompt;
  std::int64_t max_new_tokens = 200, seed = 1234, threads = 0;
  SamplingOptions sampling{0.8, 40, 0.95};
};

int run_generate(const GenerateArgs& a) {
  const std::filesystem::path dir(a.load);
  if (!std::filesystem::exists(dir / "config.toml") || !std::filesystem::exists(dir / "model.safetensors"))
    throw Error(fmt::format("{} does not hold a saved model (expected config.toml and model.safetensors, "
                            "written by `tessera train` with [checkpoint] save = \"{}\")", dir.string(), dir.string()));
  if (a.threads > 0) ops::set_num_threads(static_cast<int>(a.threads));
  Config config = Config::load(dir / "config.toml");
  auto tokenizer = build_tokenizer(config);
  auto model = build_model(config, tokenizer->vocab_size(), 0);
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  SafetensorsFile weights = load_safetensors(dir / "model.safetensors");
  for (Parameter* p : params) {
    auto it = weights.tensors.find(p->name);
    if (it == weights.tensors.end())
      throw FormatError(fmt::format("{}: no tensor '{}' for this model", (dir / "model.safetensors").string(), p->name));
    const Tensor& saved = it->second;
    // Saved files hold no vocabulary padding (Parameter::unpadded_rows): those rows stay zero.
    const bool unpadded = p->unpadded_rows >= 0 && saved.dim() == p->value.dim() && saved.size(0) == p->unpadded_rows;
    Tensor target = unpadded ? p->value.rows(0, p->unpadded_rows) : p->value;
    if (saved.shape() != target.shape())
      throw FormatError(fmt::format("{}: tensor '{}' is {} but the model needs {}", (dir / "model.safetensors").string(),
                                    p->name, saved.str(), target.str()));
    if (unpadded) p->value.zero_();
    ops::copy(saved, target);
  }
  std::string prompt = a.prompt;
  std::vector<std::int32_t> ids = tokenizer->encode(prompt);
  if (ids.empty()) ids.push_back(tokenizer->eod());
  std::mt19937_64 rng(static_cast<std::uint64_t>(a.seed));
  const std::int64_t window = model->seq_length();
  fmt::print("{}", prompt);
  std::fflush(stdout);
  for (std::int64_t i = 0; i < a.max_new_tokens; ++i) {
    const std::size_t start = ids.size() > static_cast<std::size_t>(window) ? ids.size() - window : 0;
    std::vector<std::int32_t> context(ids.begin() + static_cast<std::ptrdiff_t>(start), ids.end());
    Tensor tokens = Tensor::from<std::int32_t>({1, static_cast<std::int64_t>(context.size())}, context);
    Tensor logits = model->next_token_logits(tokens);
    const std::int32_t next = sample_token(logits.data<float>(), logits.size(1), a.sampling, rng);
    if (next == tokenizer->eod()) break;
    ids.push_back(next);
    fmt::print("{}", tokenizer->decode({next}));
    std::fflush(stdout);
  }
  fmt::print("\n");
  return 0;
}

RegisterCommand reg{{"generate",
                     [](CLI::App& sub) -> std::function<int()> {
                       auto a = std::make_shared<GenerateArgs>();
                       sub.add_option("--load", a->load, "folder written by `tessera train` ([checkpoint] save)")->required();
                       sub.add_option("--prompt", a->prompt, "text to continue");
                       sub.add_option("--max-new-tokens", a->max_new_tokens, "tokens to sample")->capture_default_str()->check(in_range(0));
                       sub.add_option("--temperature", a->sampling.temperature, "0 = greedy")->capture_default_str()->check(in_range(0));
                       sub.add_option("--top-k", a->sampling.top_k, "keep the k most likely tokens (0 = all)")
                           ->capture_default_str()
                           ->check(in_range(0));
                       sub.add_option("--top-p", a->sampling.top_p, "nucleus sampling mass (1 = off)")
                           ->capture_default_str()
                           ->check(in_range(0, 1, /*open_lo=*/true));
                       sub.add_option("--seed", a->seed, "sampling seed")->capture_default_str();
                       sub.add_option("--threads", a->threads, "CPU threads (0 = all)");
                       return [a] { return run_generate(*a); };
                     },
                     "sample text from a trained model"}};

}  // namespace
}  // namespace tessera::app
