// TensorBoard event files without TensorFlow or protobuf: [logging] tensorboard_dir makes the
// trainer write `events.out.tfevents.<unix time>.<hostname>` there with Megatron-LM's scalar tags
// (docs/run-logs.md). The format is TensorFlow's record framing — uint64 length (little-endian),
// masked CRC32C of the length, the data, masked CRC32C of the data — around serialized `Event`
// protobufs: first one with file_version "brain.Event:2", then one per scalar with wall_time
// (field 1, double), step (field 2, int64) and summary (field 5) → value (1) → {tag (1),
// simple_value (2, float)}. The few protobuf encodings needed are written by hand here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera {

struct IterationLine;  // train/run_report.hpp

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses: crc32c("123456789") =
// 0xE3069283. `crc` continues a previous call's result.
std::uint32_t crc32c(const void* data, std::size_t size, std::uint32_t crc = 0);
// TFRecord's mask: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
std::uint32_t masked_crc32c(const void* data, std::size_t size);
// One record: length, masked CRC of the length, data, masked CRC of the data.
std::string tfrecord(std::string_view data);
// Serialized Event protobufs.
std::string event_file_version(double wall_time);
std::string event_scalar(double wall_time, std::int64_t step, std::string_view tag, float value);

class TensorBoardWriter {
 public:
  // Creates `dir` (and its parents) and an event file in it; throws tessera::Error naming the
  // folder when either cannot be made.
  explicit TensorBoardWriter(const std::filesystem::path& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One scalar at `step`, stamped with the current wall time. A failed write is a warning (once),
  // not the end of the training run; later scalars are then dropped.
  void add_scalar(std::string_view tag, double value, std::int64_t step);
  // Makes what was written visible to TensorBoard (the trainer flushes after each logged iteration).
  void flush();
  const std::filesystem::path& path() const { return path_; }

 private:
  void write(const std::string& record);
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
  bool failed_ = false;
};

// The trainer's numbers as scalars with Megatron-LM's tags (its training_log and
// evaluate_and_print_results). write_iteration: one iteration's own values, as Megatron writes them
// every tensorboard_log_interval iterations — "learning-rate" (and "decoupled-learning-rate" with
// [optimizer] decoupled_lr), "batch-size", each loss ("lm loss",
// or the model's loss parts: "lm loss", "sop loss", …), "loss-scale" (1 without a loss scaler),
// "grad-norm", each with its "<tag> vs samples" twin (step: consumed samples); `line` holds that
// iteration's values (ms_per_iteration unused). write_iteration_time: "iteration-time", seconds per
// iteration averaged over the logging window, at each printed line. write_validation: "<loss>
// validation" and "<loss> validation ppl" (exp(min(20, loss)) as Megatron) with their "vs samples"
// twins. Each call ends with a flush.
void write_iteration(TensorBoardWriter& writer, const IterationLine& line);
void write_iteration_time(TensorBoardWriter& writer, std::int64_t iteration, double ms_per_iteration);
void write_validation(TensorBoardWriter& writer, std::int64_t iteration, std::int64_t consumed_samples, double loss,
                      const std::vector<std::pair<std::string, double>>& loss_parts = {});

}  // namespace tessera
