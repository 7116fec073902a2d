// Megatron-LM's batch-size ramp-up (--rampup-batch-size START INCREMENT SAMPLES: its
// RampupBatchsizeNumMicroBatchesCalculator and update_train_iters). The global batch starts at
// START and grows by INCREMENT after every SAMPLES / ((global − START) / INCREMENT) consumed samples
// until it is training.global_batch_size; runs by samples only (training.train_samples), as there.
#pragma once
#include <cstdint>
#include <string>

namespace tessera {

class ConfigSection;

// More iterations than any run's ramp has (checked, so that counting its batches is quick).
inline constexpr std::int64_t kMaxRampIterations = 100'000'000;

struct BatchRamp {
  std::int64_t start = 0, increment = 0, samples = 0;  // start 0: no ramp
  std::int64_t global = 0;                             // the batch after the ramp
  bool active() const { return start > 0; }
  // The same ramp (the batch it grows to is training.global_batch_size, compared on its own).
  bool operator==(const BatchRamp& o) const {
    return start == o.start && increment == o.increment && samples == o.samples;
  }

  // The global batch of the iteration that begins after `consumed` samples (global without a ramp).
  std::int64_t batch_at(std::int64_t consumed) const;
  // Iterations that train train_samples: Megatron's update_train_iters (the ramp's iterations, then
  // whole global batches; a partial last batch is dropped).
  std::int64_t iterations(std::int64_t train_samples) const;
  // Samples the first n iterations consume.
  std::int64_t consumed_after(std::int64_t n) const;
};

// "[16, 16, 5859375]", or "none".
std::string describe_ramp(const BatchRamp& r);

// training.rampup_batch_size = [START, INCREMENT, SAMPLES] (integers ≥ 1), checked as Megatron-LM
// checks it — START below the global batch, the difference a multiple of INCREMENT — and so that
// every batch of the ramp is whole microbatches on every data-parallel rank (START and INCREMENT
// multiples of micro_batch_size × dp) and the run goes by samples. Inactive when unset; ConfigError
// naming the key and its origin otherwise.
BatchRamp read_batch_ramp(const ConfigSection& training, std::int64_t global_batch_size, std::int64_t micro_times_dp,
                          bool by_samples);

}  // namespace tessera
