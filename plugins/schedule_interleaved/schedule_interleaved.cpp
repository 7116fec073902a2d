// The "interleaved" pipeline schedule: Megatron-LM's interleaved 1F1B with virtual pipeline stages
// (Narayanan et al., "Efficient Large-Scale Language Model Training on GPU Clusters Using
// Megatron-LM", 2021, §2.2.2).
//
// Each of the p ranks holds v model chunks; chunk c of rank s is virtual stage c·p + s, so a
// microbatch visits every rank v times. The m·v (microbatch, chunk) passes of a rank are ordered
// in groups of p microbatches: virtual pass k runs microbatch (k div p·v)·p + k mod p on chunk
// (k mod p·v) div p — p microbatches through chunk 0, the same p through chunk 1, … — and backward
// passes visit the chunks in reverse. Rank s warms up with (p − s − 1)·2 + (v − 1)·p forward passes
// (all m·v of them when m = p), then alternates one forward and one backward pass, then drains.
// Each pass is 1/v of a stage's work, so the bubble shrinks to (p − 1)/(v·m) of the ideal time, at
// the price of v times more point-to-point transfers. m must be a multiple of p.
#include <algorithm>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/plugin.hpp"
#include "tessera/schedule.hpp"

namespace tessera::schedule_interleaved {

namespace {

class Interleaved : public Schedule {
 public:
  std::vector<PipelineStep> training_steps(const ScheduleSpec& spec) const override {
    const std::int64_t p = spec.pipeline_size, v = spec.virtual_size, m = spec.num_microbatches;
    if (v < 2)
      throw ConfigError(fmt::format("the interleaved schedule needs parallel.virtual_pipeline_model_parallel_size >= 2 "
                                    "(got {}); with one model chunk per rank use [schedule] plugin = \"1f1b\"", v));
    if (m % p != 0)
      throw ConfigError(fmt::format("the interleaved schedule needs the microbatches per iteration (global_batch_size / "
                                    "(micro_batch_size × data-parallel size) = {}) to be a multiple of "
                                    "parallel.pipeline_model_parallel_size ({})", m, p));
    const std::int64_t total = m * v;
    const std::int64_t warmup = m == p ? total : std::min(total, (p - spec.stage - 1) * 2 + (v - 1) * p);
    const auto microbatch = [&](std::int64_t k) { return (k / (p * v)) * p + k % p; };
    const auto chunk = [&](std::int64_t k, bool forward) {
      const int c = static_cast<int>((k % (p * v)) / p);
      return forward ? c : static_cast<int>(v) - 1 - c;
    };
    std::vector<PipelineStep> steps;
    auto forward = [&](std::int64_t k) { append_forward(steps, spec, microbatch(k), chunk(k, true)); };
    auto backward = [&](std::int64_t k) { append_backward(steps, spec, microbatch(k), chunk(k, false)); };
    for (std::int64_t k = 0; k < warmup; ++k) forward(k);
    for (std::int64_t i = 0; i < total - warmup; ++i) {  // steady state
      forward(warmup + i);
      backward(i);
    }
    for (std::int64_t k = total - warmup; k < total; ++k) backward(k);  // cool-down
    return steps;
  }

  std::string describe() const override { return "interleaved (1F1B over virtual pipeline stages)"; }
};

std::unique_ptr<Schedule> make_interleaved(const ConfigSection&) { return std::make_unique<Interleaved>(); }

}  // namespace

}  // namespace tessera::schedule_interleaved

TESSERA_PLUGIN(schedule, interleaved, tessera::schedule_interleaved::make_interleaved)
