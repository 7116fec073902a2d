// tessera generate --load DIR --prompt TEXT: samples from weights saved by `tessera train` (final
// weights or any resumable checkpoint, whatever its layout). With --fim-prefix/--fim-suffix, a
// fill-in-the-middle prompt for code models: the middle is generated (tools/fim_prompt.hpp).
// Generation stops at the end-of-document token, a --stop string or --max-new-tokens
// (tools/text_generation.hpp). Under mpirun -np N with --tp N every rank loads its tensor-parallel
// shard (saved_generator.hpp) and all generate in lockstep with rank 0's logits and the same seed, so
// they sample the same tokens; rank 0 prints.
#include <cstdio>
#include <optional>

#include <fmt/format.h>

#include "command.hpp"
#include "saved_generator.hpp"
#include "tessera/error.hpp"
#include "tessera/generation.hpp"
#include "tessera/logging.hpp"
#include "tessera/ops.hpp"
#include "tessera/tools/fim_prompt.hpp"
#include "tessera/tools/sampling.hpp"
#include "tessera/tools/text_generation.hpp"

namespace tessera::app {
namespace {

struct GenerateArgs {
  std::string load, prompt;
  std::int64_t max_new_tokens = 200, seed = 1234, threads = 0;
  SamplingOptions sampling{0.8, 40, 0.95};
  std::vector<std::string> stop;
  std::optional<std::string> fim_prefix, fim_suffix;
  std::string fim_order = "psm";
  bool no_kv_cache = false;
  int tp = 1;
};

int run_generate(const GenerateArgs& a) {
  if (a.threads > 0) ops::set_num_threads(static_cast<int>(a.threads));
  SavedGenerator loaded = load_saved_generator(a.load, a.tp, "tessera generate");
  const bool prints = loaded.rank() == 0;
  const SavedModel& saved = loaded.saved;
  const Tokenizer* tokenizer = loaded.tokenizer.get();
  const Model* model = loaded.model.get();
  Generator& generator = *loaded.generator;
  TextGenerationOptions o;
  o.max_new_tokens = a.max_new_tokens;
  o.sampling = a.sampling;
  o.seed = static_cast<std::uint64_t>(a.seed);
  o.stop_tokens = {tokenizer->eod()};
  o.stop_strings = a.stop;
  o.window = model->seq_length();
  o.use_kv_cache = !a.no_kv_cache;
  std::vector<std::int32_t> prompt;
  const bool fim = a.fim_prefix || a.fim_suffix;
  if (fim) {
    if (!a.prompt.empty())
      throw ConfigError("--prompt and --fim-prefix/--fim-suffix are two kinds of prompt: give one of them");
    const FimTokenIds ids = require_fim_tokens(*tokenizer);
    prompt = fim_prompt(*tokenizer, ids, a.fim_prefix.value_or(""), a.fim_suffix.value_or(""),
                        parse_fim_order(a.fim_order, "--fim-order"));
    // The middle ends at end of document (the only terminator FIM training had) or at another sentinel,
    // which cannot belong to it; the prompt's first token must stay in the window.
    o.stop_tokens.insert(o.stop_tokens.end(), {ids.prefix, ids.middle, ids.suffix, ids.pad});
    o.slide_window = false;
  } else {
    prompt = tokenizer->encode(a.prompt);
    if (prompt.empty()) prompt.push_back(tokenizer->eod());
    if (prints) fmt::print("{}", a.prompt);
  }
  std::fflush(stdout);
  const auto print = [prints](std::string_view piece) {
    if (!prints) return;
    fmt::print("{}", piece);
    std::fflush(stdout);
  };
  GeneratedText out;
  try {
    out = generate_text(generator, *tokenizer, std::move(prompt), o, print);
  } catch (const NonFiniteLogits& e) {
    throw NonFiniteLogits(fmt::format("{}: the weights in {} do not make a usable model", e.what(), saved.describe()));
  }
  log_debug("generation ended by {} after {} tokens", stop_reason_name(out.reason), out.ids.size());
  if (prints) fmt::print("\n");
  return 0;
}

RegisterCommand reg{{"generate",
                     [](CLI::App& sub) -> std::function<int()> {
                       auto a = std::make_shared<GenerateArgs>();
                       sub.add_option("--load", a->load, "a saved model: the [checkpoint] save folder of `tessera train` (its final weights, else its latest checkpoint) or a checkpoint folder iter_XXXXXXX")->required();
                       sub.add_option("--prompt", a->prompt, "text to continue");
                       sub.add_option("--fim-prefix", a->fim_prefix,
                                      "fill-in-the-middle: the code before the gap (a model trained with fim_rate > 0); "
                                      "only the middle is printed");
                       sub.add_option("--fim-suffix", a->fim_suffix, "fill-in-the-middle: the code after the gap");
                       sub.add_option("--fim-order", a->fim_order, "psm or spm: the FIM prompt order")
                           ->capture_default_str()
                           ->check(CLI::IsMember({"psm", "spm"}));
                       sub.add_option("--stop", a->stop,
                                      "stop when the output contains this text (cut before it); repeatable");
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
                       sub.add_flag("--no-kv-cache", a->no_kv_cache,
                                    "a full forward over the context for every token, instead of the key/value cache");
                       sub.add_option("--tp", a->tp,
                                      "tensor-parallel size: under mpirun -np N, --tp N (each rank a shard; rank 0 prints)")
                           ->capture_default_str()
                           ->check(in_range(1));
                       return [a] {
                         auto generate = [&] { return run_generate(*a); };
                         return run_on_this_rank(generate);
                       };
                     },
                     "sample text from a trained model"}};

}  // namespace
}  // namespace tessera::app
