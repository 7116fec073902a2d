// Runs a schedule's list of steps (schedule.hpp) for one iteration on this rank's pipeline stage:
// forwards and backwards through Model::forward_stage / backward_stage, activations and their
// gradients sent to and received from the neighbouring stages over the pp group. A stage boundary
// carries a list of tensors (Model::stage_boundary): each is sent in turn, and received into a
// tensor allocated from its spec.
//
// Every (microbatch, model chunk) in flight has its own ActivationStore, freed by its backward; the executor
// measures how many are held at once and how many elements they hold, which is what the 1F1B
// memory claim (≤ p microbatches on the first stage) is tested on. Sends are non-blocking and
// receives blocking: with the sends never waiting for their receiver, any schedule whose receives
// follow the neighbours' send order cannot deadlock.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "tessera/model.hpp"
#include "tessera/parallel/parallel.hpp"
#include "tessera/schedule.hpp"

namespace tessera {

// What every step's StepContext shares.
struct PipelinePass {
  bool training = true;
  std::uint64_t seed = 0;
  std::int64_t iteration = 0;
  float loss_grad_scale = 1.0f;
  // Per-token loss ([training] calculate_per_token_loss): microbatch m's loss counts
  // microbatch_weights[m] times in the objective and in PipelineRun's sums (its loss_grad_scale is
  // multiplied by it); empty: once each.
  std::vector<double> microbatch_weights;
  std::int64_t micro_batch_size = 1;
  // This rank's microbatch m → the index of that microbatch in the whole global batch (dropout
  // masks depend on it, so that every layout draws the one-process masks).
  std::function<std::int64_t(std::int64_t)> global_microbatch = [](std::int64_t m) { return m; };
  // Told of final gradients during the backward of the last microbatch (overlapped reduction).
  GradReadyListener* grad_listener = nullptr;
  Device device;  // where received activations and gradients are allocated (the model's)
};

struct PipelineRun {
  // Σ of this stage's microbatch losses, each times its PipelinePass::microbatch_weights (non-zero on
  // the last stage only)
  double loss_sum = 0;
  std::vector<double> loss_part_sums;  // Σ of their parts (StageOutput::loss_parts), where the model has parts
  StepMetrics metrics;  // what this rank's modules reported in backward (training only)
  BufferStatistics buffer_statistics;  // likewise, for their buffers (applied by run_iteration)
  std::int64_t peak_microbatches_held = 0;  // most (microbatch, chunk) pairs with saved activations at once
  std::int64_t peak_held_elements = 0;      // most activation elements saved at once
  // Wall time of the whole step list and the part spent blocked in receives: waiting for a
  // neighbour is the pipeline bubble (plus any imbalance between stages).
  double seconds = 0, seconds_receiving = 0;
};

// `microbatch(m)` supplies this rank's microbatch m. Throws Error if the model leaves activations
// behind or a received tensor has the wrong size (the schedule or the model is broken).
PipelineRun run_pipeline_steps(Model& model, const std::vector<PipelineStep>& steps,
                               const std::function<Batch(std::int64_t)>& microbatch, const PipelinePass& pass,
                               const Parallel& parallel);

}  // namespace tessera
