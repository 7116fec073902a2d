// What the trainer prints: Megatron-style iteration and validation lines, and the run summary.
// Kept apart from Trainer::train so that the loop reads as the loop, and so that the lines users
// (and tests/parallel's scripts) parse are written in one place.
#pragma once
#include <cstdint>

#include "tessera/train/trainer.hpp"

namespace tessera {

struct IterationLine {
  std::int64_t iteration = 0, train_iters = 0, consumed_samples = 0, global_batch_size = 0;
  double ms_per_iteration = 0, lr = 0, loss = 0, grad_norm = 0;
  double tokens_per_iteration = 0, flops_per_iteration = 0;
  // With a loss scaler (fp16): the scale and the iterations skipped since the last line (Megatron's
  // "loss scale" and "number of skipped iterations"); shown when loss_scale > 0.
  double loss_scale = 0;
  std::int64_t skipped_iterations = 0;
  // A loss of several terms: each (name, value) is shown instead of the one "lm loss" (Megatron's
  // BERT line: "lm loss: … | sop loss: …").
  std::vector<std::pair<std::string, double>> loss_parts;
  // With [logging] log_params_norm: the parameters' L2 norm after the step (Megatron's "params
  // norm"); shown when ≥ 0.
  double params_norm = -1.0;
  // With [logging] log_num_zeros_in_grad: the gradient's elements equal to 0 (Megatron's "num
  // zeros", before params norm); shown when ≥ 0 (not for a skipped step).
  double num_zeros_in_grad = -1.0;
  // With [optimizer] decoupled_lr: the embedding's and output layer's rate (Megatron-Core's
  // "decoupled learning rate", after the learning rate); shown when ≥ 0.
  double decoupled_lr = -1.0;
  // Model::metric_names()'s statistics (mixture-of-experts router losses), shown after the losses
  // as Megatron-LM's " load_balancing_loss: … |".
  std::vector<std::pair<std::string, double>> metrics{};
};
void log_iteration(const IterationLine& line);
void log_validation(std::int64_t iteration, double loss,
                    const std::vector<std::pair<std::string, double>>& loss_parts = {});
// The same line for any `where` (Megatron-LM's prefix): " validation loss at <where> | lm loss value: …
// | lm loss PPL: … |"; `where` is "iteration 10" during training, "iteration 10 on test set" in
// `tessera evaluate`.
void log_validation(const std::string& where, double loss,
                    const std::vector<std::pair<std::string, double>>& loss_parts = {});

// Facts of the run beyond the record: data-parallel reduction and pipeline occupancy.
struct RunFacts {
  std::int64_t iterations = 0;  // in this run (after a resume: since it)
  int dp = 1, pp = 1, vpp = 1, pp_rank = 0;
  std::int64_t reductions_overlapped = 0, buckets = 0, bucket_size = 0;
  bool overlap_grad_reduce = false;
  double reduce_wait_seconds = 0;
  double microbatches = 1;  // per data-parallel rank and iteration
};
void log_run_summary(const TrainingRecord& rec, const RunFacts& facts);

}  // namespace tessera
