// tessera generate --load DIR --prompt TEXT: samples from weights saved by `tessera train` (final
// weights or any resumable checkpoint, whatever its layout).
#include <algorithm>
#include <cmath>
#include <random>

#include <fmt/format.h>

#include "command.hpp"
#include "plugin_defaults.hpp"
#include "tessera/error.hpp"
#include "tessera/generation.hpp"
#include "tessera/logging.hpp"
#include "tessera/ops.hpp"
#include "tessera/tools/sampling.hpp"
#include "tessera/train/components.hpp"
#include "tessera/train/saved_model.hpp"

namespace tessera::app {
namespace {

struct GenerateArgs {
  std::string load, prompt;
  std::int64_t max_new_tokens = 200, seed = 1234, threads = 0;
  SamplingOptions sampling{0.8, 40, 0.95};
};

// Sections a saved model's config has for training only: generate declares them wholesale, and
// checks [model] and [tokenizer] key by key as train does.
void check_model_keys(const Config& config) {
  for (const std::string& name : config.section_names())
    if (name != "model" && name != "tokenizer") {
      ConfigSection s = config.section(name);
      for (const std::string& key : s.keys()) s.declare(key);
    }
  config.check_no_unknown_keys();
}

int run_generate(const GenerateArgs& a) {
  if (a.threads > 0) ops::set_num_threads(static_cast<int>(a.threads));
  SavedModel saved = open_saved_model(a.load);
  saved.config = with_plugin_defaults(saved.config);
  auto tokenizer = build_tokenizer(saved.config);
  auto model = build_model(saved.config, tokenizer->vocab_size(), 0);
  check_model_keys(saved.config);
  Generator& generator = require_generator(*model, plugin_label(model));
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  load_saved_weights(saved, params);
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
    Tensor logits = generator.next_token_logits(tokens);
    const float* row = logits.data<float>();
    if (!std::all_of(row, row + logits.size(1), [](float v) { return std::isfinite(v); }))
      throw Error(fmt::format("the model computed non-finite logits (NaN or infinity) for token {} of the output: the "
                              "weights in {} do not make a usable model",
                              i + 1, saved.describe()));
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
                       sub.add_option("--load", a->load, "a saved model: the [checkpoint] save folder of `tessera train` (its final weights, else its latest checkpoint) or a checkpoint folder iter_XXXXXXX")->required();
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
