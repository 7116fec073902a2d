// tessera evaluate CONFIG --load SAVED [--set section.key=value ...] [--split valid|test|both]:
// Megatron-LM's eval-only runs. The validation and test loss (and perplexity) of saved weights — final
// weights or a checkpoint of any layout — over training.eval_iters global batches of each split of the
// config's data, in the config's layout (under mpirun any tp/pp/dp), with no optimizer step. The
// numbers are those `tessera train` logs at validation: both run Trainer::evaluate_and_log (on the same
// samples given the same train_iters, eval_interval and eval_iters, which size the validation indices).
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "command.hpp"
#include "plugin_defaults.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/quote.hpp"
#include "tessera/train/saved_model.hpp"
#include "tessera/train/trainer.hpp"

namespace tessera::app {
namespace {

struct EvaluateArgs {
  std::string config, load, split = "both";
  std::vector<std::string> overrides;
};

// The saved model must be of the config's model plugin: a BERT checkpoint is not a GPT with other
// tensors. (Shapes and names are checked tensor by tensor when the weights load.)
void check_model_kind(const SavedModel& saved, const Config& config) {
  const Config saved_config = with_plugin_defaults(saved.config);
  const std::string saved_kind = saved_config.section("model").get_string("plugin", "");
  const std::string kind = config.section("model").get_string("plugin", "");
  if (saved_kind != kind)
    throw ConfigError(fmt::format("{} holds a {} model (model.plugin in {}), but model.plugin is {} in {}: evaluate a "
                                  "saved model with the config of its own model kind",
                                  saved.describe(), plain_or_quoted(saved_kind), saved_config.source(),
                                  plain_or_quoted(kind), config.section("model").origin("plugin")));
}

int run_evaluate(const EvaluateArgs& a) {
  Config config = with_plugin_defaults(Config::load(a.config, a.overrides));
  const SavedModel saved = open_saved_model(a.load);
  check_model_kind(saved, config);
  EvaluationOnly which;
  which.valid = a.split != "test";
  which.test = a.split != "valid";
  std::optional<Trainer> built;
  try {
    built.emplace(std::move(config), which);
  } catch (const ConfigError& e) {
    // A split the data gives no documents (Megatron's "969,30,1" with a small corpus, "98,2,0"): say how
    // to leave it out.
    if (a.split == "both" && std::string_view(e.what()).find(" split no documents") != std::string_view::npos)
      throw ConfigError(fmt::format("{} (tessera evaluate --split valid or --split test evaluates one split only)",
                                    e.what()));
    throw;
  }
  Trainer& trainer = *built;
  trainer.load_weights(saved);
  // Megatron-LM's prefixes: "iteration N on validation set", "iteration N on test set".
  const std::string at = saved.iteration >= 0 ? fmt::format("iteration {}", saved.iteration) : "the final weights";
  if (which.valid) trainer.evaluate_and_log(Split::valid, at + " on validation set");
  if (which.test) trainer.evaluate_and_log(Split::test, at + " on test set");
  return 0;
}

RegisterCommand reg{{"evaluate",
                     [](CLI::App& sub) -> std::function<int()> {
                       auto a = std::make_shared<EvaluateArgs>();
                       sub.add_option("config", a->config, "TOML run configuration: model, data, layout, eval_iters")
                           ->required()
                           ->check(CLI::ExistingFile);
                       sub.add_option("--load", a->load,
                                      "the saved model: a [checkpoint] save folder (its final weights, else its latest "
                                      "checkpoint) or a checkpoint folder iter_XXXXXXX, of any layout")
                           ->required();
                       sub.add_option("--set", a->overrides, "override a key: section.key=value (repeatable)");
                       sub.add_option("--split", a->split, "which data splits to evaluate: valid, test or both")
                           ->capture_default_str()
                           ->check(CLI::IsMember({"valid", "test", "both"}));
                       return [a] {
                         auto evaluate = [&] { return run_evaluate(*a); };
                         return run_on_this_rank(evaluate);
                       };
                     },
                     "validation and test loss and perplexity of saved weights, without training"}};

}  // namespace
}  // namespace tessera::app
