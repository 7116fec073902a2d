// The "1f1b" pipeline schedule (PipeDream-Flush, Megatron-LM's non-interleaved schedule).
//
// Stage s of p runs min(p − s − 1, m) warm-up forwards, then alternates one forward with one
// backward (steady state), then drains the remaining backwards (cool-down). A microbatch's
// activations are freed by its backward, so stage s never holds more than min(p − s, m)
// microbatches — the first stage at most p, however many microbatches the batch has (GPipe's
// all-forwards-then-all-backwards would hold m). The bubble is (p − 1) / (m + p − 1) of the time.
// With p = 1 the list is F0 B0 F1 B1 …: plain gradient accumulation.
#include <algorithm>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/plugin.hpp"
#include "tessera/schedule.hpp"

namespace tessera::schedule_1f1b {

namespace {

class OneForwardOneBackward : public Schedule {
 public:
  std::vector<PipelineStep> training_steps(const ScheduleSpec& spec) const override {
    if (spec.virtual_size != 1)
      throw ConfigError(fmt::format("the 1f1b schedule runs one model chunk per rank, but "
                                    "parallel.virtual_pipeline_model_parallel_size is {}; use [schedule] plugin = "
                                    "\"interleaved\"", spec.virtual_size));
    const std::int64_t m = spec.num_microbatches;
    const std::int64_t warmup = std::min<std::int64_t>(spec.pipeline_size - spec.stage - 1, m);
    std::vector<PipelineStep> steps;
    auto forward = [&](std::int64_t i) { append_forward(steps, spec, i); };
    auto backward = [&](std::int64_t i) { append_backward(steps, spec, i); };
    for (std::int64_t i = 0; i < warmup; ++i) forward(i);
    for (std::int64_t i = 0; i < m - warmup; ++i) {  // steady state
      forward(warmup + i);
      backward(i);
    }
    for (std::int64_t i = m - warmup; i < m; ++i) backward(i);  // cool-down
    return steps;
  }

  std::string describe() const override { return "1f1b (one forward, one backward; PipeDream-Flush)"; }
};

std::unique_ptr<Schedule> make_1f1b(const ConfigSection&) { return std::make_unique<OneForwardOneBackward>(); }

}  // namespace

}  // namespace tessera::schedule_1f1b

TESSERA_PLUGIN(schedule, 1f1b, tessera::schedule_1f1b::make_1f1b)
