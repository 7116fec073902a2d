#include "tessera/train/tensorboard_writer.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <system_error>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/train/run_report.hpp"

namespace tessera {
namespace {

constexpr std::array<std::uint32_t, 256> make_crc32c_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<std::uint32_t, 256> kCrc32cTable = make_crc32c_table();

// Protobuf wire format: varints, and keys (field number << 3 | wire type).
void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_key(std::string& out, int field, int wire_type) { put_varint(out, static_cast<std::uint64_t>(field) << 3 | wire_type); }
void put_double(std::string& out, int field, double v) {
  std::uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, 1);  // fixed64
  put_le(out, bits, 8);
}
void put_float(std::string& out, int field, float v) {
  std::uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, 5);  // fixed32
  put_le(out, bits, 4);
}
void put_int64(std::string& out, int field, std::int64_t v) {
  put_key(out, field, 0);  // varint (two's complement for negatives, as protobuf's int64)
  put_varint(out, static_cast<std::uint64_t>(v));
}
void put_bytes(std::string& out, int field, std::string_view v) {
  put_key(out, field, 2);  // length-delimited
  put_varint(out, v.size());
  out.append(v);
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::uint32_t crc32c(const void* data, std::size_t size, std::uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (std::size_t i = 0; i < size; ++i) crc = kCrc32cTable[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

std::uint32_t masked_crc32c(const void* data, std::size_t size) {
  const std::uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord(std::string_view data) {
  std::string out, length;
  put_le(length, data.size(), 8);
  out += length;
  put_le(out, masked_crc32c(length.data(), length.size()), 4);
  out.append(data);
  put_le(out, masked_crc32c(data.data(), data.size()), 4);
  return out;
}

// message Event { double wall_time = 1; int64 step = 2; oneof what { string file_version = 3; …
// Summary summary = 5; } }   message Summary { repeated Value value = 1; }
// message Summary.Value { string tag = 1; float simple_value = 2; … }
std::string event_file_version(double wall_time) {
  std::string e;
  put_double(e, 1, wall_time);
  put_bytes(e, 3, "brain.Event:2");
  return e;
}

std::string event_scalar(double wall_time, std::int64_t step, std::string_view tag, float value) {
  std::string v, summary, e;
  put_bytes(v, 1, tag);
  put_float(v, 2, value);
  put_bytes(summary, 1, v);
  put_double(e, 1, wall_time);
  put_int64(e, 2, step);
  put_bytes(e, 5, summary);
  return e;
}

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    throw Error(fmt::format("cannot create the TensorBoard folder {} (logging.tensorboard_dir): {}", dir.string(),
                            ec ? ec.message() : "not a folder"));
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "localhost");
  const double now = unix_seconds();
  // TensorFlow's name; a second writer in the same second (a quick resume) gets a suffix.
  const std::string base = fmt::format("events.out.tfevents.{}.{}", static_cast<std::int64_t>(now), host);
  path_ = dir / base;
  for (int i = 1; std::filesystem::exists(path_); ++i) path_ = dir / fmt::format("{}.{}", base, i);
  file_ = std::fopen(path_.c_str(), "wb");
  if (file_ == nullptr)
    throw Error(fmt::format("cannot write the TensorBoard event file {} (logging.tensorboard_dir): {}", path_.string(),
                            std::strerror(errno)));
  write(tfrecord(event_file_version(now)));
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

void TensorBoardWriter::add_scalar(std::string_view tag, double value, std::int64_t step) {
  write(tfrecord(event_scalar(unix_seconds(), step, tag, static_cast<float>(value))));
}

void TensorBoardWriter::write(const std::string& record) {
  if (failed_) return;
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size()) {
    failed_ = true;
    log_warn("cannot write the TensorBoard event file {}: {}; no more scalars go to it", path_.string(),
             std::strerror(errno));
  }
}

void TensorBoardWriter::flush() {
  if (failed_) return;
  if (std::fflush(file_) != 0) {
    failed_ = true;
    log_warn("cannot write the TensorBoard event file {}: {}; no more scalars go to it", path_.string(),
             std::strerror(errno));
  }
}

namespace {
void add_scalar_pair(TensorBoardWriter& w, const std::string& tag, double value, std::int64_t iteration,
                     std::int64_t samples) {
  w.add_scalar(tag, value, iteration);
  w.add_scalar(tag + " vs samples", value, samples);
}
}  // namespace

void write_iteration(TensorBoardWriter& w, const IterationLine& l) {
  const std::int64_t it = l.iteration, samples = l.consumed_samples;
  add_scalar_pair(w, "learning-rate", l.lr, it, samples);
  if (l.decoupled_lr >= 0) add_scalar_pair(w, "decoupled-learning-rate", l.decoupled_lr, it, samples);
  add_scalar_pair(w, "batch-size", static_cast<double>(l.global_batch_size), it, samples);
  if (l.loss_parts.empty()) add_scalar_pair(w, "lm loss", l.loss, it, samples);
  for (const auto& [name, value] : l.loss_parts) add_scalar_pair(w, name, value, it, samples);
  for (const auto& [name, value] : l.metrics) w.add_scalar(name, value, it);  // as Megatron's track_moe_metrics
  add_scalar_pair(w, "loss-scale", l.loss_scale > 0 ? l.loss_scale : 1.0, it, samples);
  add_scalar_pair(w, "grad-norm", l.grad_norm, it, samples);
  if (l.num_zeros_in_grad >= 0) add_scalar_pair(w, "num-zeros", l.num_zeros_in_grad, it, samples);
  if (l.params_norm >= 0) add_scalar_pair(w, "params-norm", l.params_norm, it, samples);
  w.flush();
}

void write_iteration_time(TensorBoardWriter& w, std::int64_t iteration, double ms_per_iteration) {
  w.add_scalar("iteration-time", ms_per_iteration / 1000.0, iteration);
  w.flush();
}

void write_validation(TensorBoardWriter& w, std::int64_t iteration, std::int64_t consumed_samples, double loss,
                      const std::vector<std::pair<std::string, double>>& loss_parts) {
  const std::vector<std::pair<std::string, double>> parts =
      loss_parts.empty() ? std::vector<std::pair<std::string, double>>{{"lm loss", loss}} : loss_parts;
  for (const auto& [name, value] : parts) {
    add_scalar_pair(w, name + " validation", value, iteration, consumed_samples);
    add_scalar_pair(w, name + " validation ppl", std::exp(std::min(value, 20.0)), iteration, consumed_samples);
  }
  w.flush();
}

}  // namespace tessera
