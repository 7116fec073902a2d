#include "tessera/train/batch_ramp.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"

namespace tessera {

std::int64_t BatchRamp::batch_at(std::int64_t consumed) const {
  if (!active() || consumed > samples) return global;
  // Megatron: int(consumed / (samples / increments)), in doubles as Python's.
  const double per_increment = static_cast<double>(samples) / static_cast<double>((global - start) / increment);
  const auto steps = static_cast<std::int64_t>(static_cast<double>(consumed) / per_increment);
  return std::min(global, start + steps * increment);
}

std::int64_t BatchRamp::iterations(std::int64_t train_samples) const {
  std::int64_t n = 0, consumed = 0;
  if (active())
    for (; consumed <= samples && consumed <= train_samples; ++n) consumed += batch_at(consumed);
  if (train_samples > consumed) n += (train_samples - consumed) / global;
  return n;
}

std::int64_t BatchRamp::consumed_after(std::int64_t n) const {
  std::int64_t consumed = 0, i = 0;
  for (; i < n && active() && consumed <= samples; ++i) consumed += batch_at(consumed);
  return consumed + (n - i) * global;
}

std::string describe_ramp(const BatchRamp& r) {
  return r.active() ? fmt::format("[{}, {}, {}]", r.start, r.increment, r.samples) : "none";
}

BatchRamp read_batch_ramp(const ConfigSection& t, std::int64_t global, std::int64_t micro_times_dp, bool by_samples) {
  BatchRamp r;
  r.global = global;
  if (!t.has("rampup_batch_size")) return r;
  const std::string where = fmt::format("training.rampup_batch_size ({})", t.origin("rampup_batch_size"));
  const std::vector<std::int64_t> v = t.get_int_list("rampup_batch_size");
  if (v.size() != 3 || std::any_of(v.begin(), v.end(), [](std::int64_t x) { return x < 1; }))
    throw ConfigError(fmt::format("{} must be three integers ≥ 1, [start batch, increment, ramp-up samples] "
                                  "(Megatron-LM's --rampup-batch-size 16 16 5859375 is [16, 16, 5859375])",
                                  where));
  r.start = v[0], r.increment = v[1], r.samples = v[2];
  if (!by_samples)
    throw ConfigError(fmt::format("{} needs a run by samples: set training.train_samples instead of train_iters (as "
                                  "Megatron-LM, which ramps sample-based runs only)",
                                  where));
  if (r.samples / r.start > kMaxRampIterations)
    throw ConfigError(fmt::format("{}: {} samples in batches from {} are over {} iterations of ramp", where, r.samples,
                                  r.start, kMaxRampIterations));
  if (r.start >= global)
    throw ConfigError(fmt::format("{}: the start batch {} must be below training.global_batch_size ({}), which the "
                                  "ramp grows to",
                                  where, r.start, global));
  if ((global - r.start) % r.increment != 0)
    throw ConfigError(fmt::format("{}: global_batch_size {} − start {} = {} is not a multiple of the increment {}",
                                  where, global, r.start, global - r.start, r.increment));
  if (r.start % micro_times_dp != 0 || r.increment % micro_times_dp != 0)
    throw ConfigError(fmt::format("{}: the start {} and the increment {} must be multiples of micro_batch_size × "
                                  "data-parallel size = {}, so that every batch of the ramp is whole microbatches on "
                                  "every rank",
                                  where, r.start, r.increment, micro_times_dp));
  return r;
}

}  // namespace tessera
