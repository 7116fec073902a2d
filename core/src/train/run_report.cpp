#include "tessera/train/run_report.hpp"

#include <cmath>
#include <string>

#include <fmt/format.h>

#include "tessera/logging.hpp"

namespace tessera {

void log_iteration(const IterationLine& l) {
  const double s = l.ms_per_iteration / 1000.0;
  const std::string scaler = l.loss_scale > 0 ? fmt::format(" loss scale: {:.1f} | number of skipped iterations: {:>3} |",
                                                            l.loss_scale, l.skipped_iterations)
                                              : std::string();
  std::string losses = fmt::format(" lm loss: {:.6E} |", l.loss);
  if (!l.loss_parts.empty()) {
    losses.clear();
    for (const auto& [name, value] : l.loss_parts) losses += fmt::format(" {}: {:.6E} |", name, value);
  }
  // A statistic named like a TensorBoard folder ("moe/…_layer_i", per layer) goes to TensorBoard
  // only, as Megatron-Core's per-layer MoE logging.
  for (const auto& [name, value] : l.metrics)
    if (name.find('/') == std::string::npos) losses += fmt::format(" {}: {:.6E} |", name, value);
  // Megatron's order and "num zeros: {:.1f}" (a count its parsers read as a float).
  std::string statistics = l.num_zeros_in_grad >= 0 ? fmt::format(" num zeros: {:.1f} |", l.num_zeros_in_grad) : "";
  if (l.params_norm >= 0) statistics += fmt::format(" params norm: {:.6E} |", l.params_norm);
  const std::string decoupled =
      l.decoupled_lr >= 0 ? fmt::format(" decoupled learning rate: {:.3E} |", l.decoupled_lr) : std::string();
  log_info(" iteration {:>8}/{:>8} | consumed samples: {:>10} | elapsed time per iteration (ms): {:.1f} | "
           "learning rate: {:.3E} |{} global batch size: {:>5} |{} grad norm: {:.6E} |{}{} "
           "tokens/s: {:.0f} | GFLOP/s: {:.1f} |",
           l.iteration, l.train_iters, l.consumed_samples, l.ms_per_iteration, l.lr, decoupled, l.global_batch_size,
           losses, l.grad_norm, statistics, scaler, l.tokens_per_iteration / s, l.flops_per_iteration / s / 1e9);
}

void log_validation(std::int64_t iteration, double loss, const std::vector<std::pair<std::string, double>>& loss_parts) {
  log_validation(fmt::format("iteration {}", iteration), loss, loss_parts);
}

void log_validation(const std::string& where, double loss, const std::vector<std::pair<std::string, double>>& loss_parts) {
  if (loss_parts.empty()) {
    log_info(" validation loss at {} | lm loss value: {:.6E} | lm loss PPL: {:.3f} |", where, loss, std::exp(loss));
    return;
  }
  std::string parts;
  for (const auto& [name, value] : loss_parts)
    parts += fmt::format(" {} value: {:.6E} | {} PPL: {:.3f} |", name, value, name, std::exp(value));
  log_info(" validation loss at {} |{}", where, parts);
}

void log_run_summary(const TrainingRecord& rec, const RunFacts& f) {
  if (rec.losses.empty()) {  // resumed at train_iters: nothing was trained
    log_info("run summary: 0 iterations (the checkpoint loaded is at training.train_iters)");
    return;
  }
  log_info("run summary: {} iterations, {:.1f} s, {:.0f} tokens/s, {:.1f} GFLOP/s, first loss {:.4f}, last loss {:.4f}{}, "
           "peak tensor memory {:.1f} MiB",
           f.iterations, rec.seconds, rec.tokens / rec.seconds, rec.flops / rec.seconds / 1e9, rec.losses.front(),
           rec.losses.back(),
           (rec.valid_losses.empty() ? std::string()
                                     : fmt::format(", validation loss {:.4f} → {:.4f}", rec.valid_losses.front().second,
                                                   rec.valid_losses.back().second)) +
               (rec.test_loss ? fmt::format(", test loss {:.4f}", *rec.test_loss) : std::string()),
           static_cast<double>(rec.peak_bytes) / (1 << 20));
  if (f.dp > 1)
    log_info("data parallel: {} of {} gradient all-reduces started while backward ran (last iteration; one per "
             "bucket, parallel.bucket_size = {}, parallel.overlap_grad_reduce = {}); waiting for them after "
             "backward: {:.1f} ms per iteration (mean)",
             f.reductions_overlapped, f.buckets, f.bucket_size, f.overlap_grad_reduce,
             1000.0 * f.reduce_wait_seconds / static_cast<double>(f.iterations));
  if (f.pp > 1) {
    log_info("pipeline: stage {} of {} held at most {} {}' activations at once ({} elements)", f.pp_rank, f.pp,
             rec.peak_microbatches_held, f.vpp > 1 ? "(microbatch, chunk) pairs" : "microbatches",
             rec.peak_held_elements);
    log_info("pipeline bubble: stages spent {:.1f}% of the step blocked receiving (mean over stages); theory "
             "(p−1)/(v·m+p−1) = {:.1f}% for p = {}, v = {}, m = {}",
             100 * rec.bubble_fraction, 100 * rec.bubble_theory, f.pp, f.vpp, f.microbatches);
  }
}

}  // namespace tessera
