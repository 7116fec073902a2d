// tessera train CONFIG.toml [--set section.key=value ...]
#include "command.hpp"
#include "plugin_defaults.hpp"
#include "tessera/config.hpp"
#include "tessera/train/checkpoint_args.hpp"
#include "tessera/train/trainer.hpp"

namespace tessera::app {
namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
};

RegisterCommand reg{{"train",
                     [](CLI::App& sub) -> std::function<int()> {
                       auto args = std::make_shared<TrainArgs>();
                       sub.add_option("config", args->config, "TOML run configuration")->required()->check(CLI::ExistingFile);
                       sub.add_option("--set", args->overrides, "override a key: section.key=value (repeatable)");
                       return [args] {
                         auto train = [&] {
                           // The checkpoint's model and layout first (checkpoint.use_checkpoint_args,
                           // use_mp_args_from_checkpoint_args): the default plugins follow them (a
                           // pipeline's schedule).
                           Trainer trainer(
                               with_plugin_defaults(with_checkpoint_args(Config::load(args->config, args->overrides))));
                           trainer.train();
                           return 0;
                         };
                         return run_on_this_rank(train);
                       };
                     },
                     "train a model from a TOML config"}};

}  // namespace
}  // namespace tessera::app
