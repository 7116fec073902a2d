#include "saved_generator.hpp"

#include <vector>

#include <fmt/format.h>

#include "plugin_defaults.hpp"
#include "rank_zero_logits.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/parallel/mpi_runtime.hpp"
#include "tessera/train/components.hpp"

namespace tessera::app {

namespace {


// Generation runs one model: every process holds a tensor-parallel shard of it (no pipeline stages,
// no data-parallel copies, which would only repeat the same work).
void check_layout(int tp, const std::string& command) {
  if (tp < 1) throw ConfigError(fmt::format("{} --tp {}: the tensor-parallel size must be at least 1", command, tp));
  const LaunchInfo launch = detect_launch();
  const int world = launch.under_launcher ? launch.world_size : 1;
  if (world == tp) return;
  if (world == 1)
    throw ConfigError(fmt::format("{} --tp {} runs {} processes, each holding a tensor-parallel shard of the model: "
                                  "launch it with mpirun -np {} (this process has no launcher)",
                                  command, tp, tp, tp));
  const std::string why = world % tp == 0 ? fmt::format("--tp {} would make {} data-parallel copies", tp, world / tp)
                                          : fmt::format("--tp {} does not divide them", tp);
  throw ConfigError(fmt::format("{} under a launcher of {} processes ({}) needs --tp {}: every process holds a "
                                "tensor-parallel shard of the one model (no pipeline stages or data-parallel "
                                "copies; {})",
                                command, world, launch.evidence, world, why));
}

}  // namespace

SavedGenerator load_saved_generator(const std::string& load, int tp, const std::string& command) {
  check_layout(tp, command);
  SavedGenerator g;
  if (tp > 1) {
    g.parallel = Parallel::create(ParallelSizes{.tp = tp});
    log_state().rank = g.parallel->layout.rank();
  }
  g.saved = open_saved_model(load);
  g.saved.config = with_plugin_defaults(g.saved.config);
  g.tokenizer = build_tokenizer(g.saved.config);
  g.model = build_model(g.saved.config, g.tokenizer->vocab_size(), 0, g.parallel);
  // Its training-only sections are taken as they are; [model] and [tokenizer] are checked as train checks them.
  g.saved.config.check_no_unknown_keys_in({"model", "tokenizer"});
  Generator& own = require_generator(*g.model, plugin_label(g.model));
  std::vector<Parameter*> params;
  g.model->collect_parameters(params);
  if (!g.parallel) {
    load_saved_weights(g.saved, params);
    g.generator = &own;
    return g;
  }
  // Each rank its shard; a file error on any rank ends every rank's load (none waits for it).
  const ParallelLayout& layout = g.parallel->layout;
  run_on_all_or_throw(*g.parallel->groups.world, "loading " + g.saved.describe(), [&] {
    load_saved_weights(g.saved, params, SavedWeightsTarget{layout.tp_rank(), layout.tp(), true, false});
  });
  g.lockstep = std::make_unique<RankZeroLogits>(own, *g.parallel->groups.tp);
  g.generator = g.lockstep.get();
  return g;
}

}  // namespace tessera::app
