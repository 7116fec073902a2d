// Model interface that model plugins (gpt, later bert, t5) implement.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tessera/batch.hpp"
#include "tessera/nn/parameter.hpp"
#include "tessera/parallel/parallel.hpp"
#include "tessera/nn/step_context.hpp"

namespace tessera {

class ConfigSection;

struct ModelContext {
  std::int64_t vocab_size = 0;  // from the tokenizer; the model pads it (make_vocab_size_divisible_by)
  std::uint64_t seed = 1234;    // initialisation seed
  // How the run is split; null means one process. A model splits its layers over the tensor- and
  // pipeline-parallel groups; data parallelism is the trainer's business.
  std::shared_ptr<const Parallel> parallel;
};

// What one pipeline stage's forward produced for a microbatch.
struct StageOutput {
  Tensor activation;  // for the next stage; undefined on the last stage
  double loss = 0;    // the last stage's mean loss over the masked tokens (Σ loss·mask / Σ mask)
};

class Model {
 public:
  using FactorySignature = std::unique_ptr<Model>(const ConfigSection& model, const ModelContext& context);
  virtual ~Model() = default;

  // The batch fields the model reads (name, dtype, per-sample shape), e.g. GPT's tokens i32[T],
  // labels i32[T], loss_mask f32[T]; the trainer checks at start that the data plugin produces them.
  virtual FieldSpecs batch_fields() const = 0;

  // This rank's parameters: its pipeline stage's layers, its tensor-parallel shards.
  virtual void collect_parameters(std::vector<Parameter*>& out) = 0;

  // Pipeline stages (ModelContext::parallel's pp rank; with pp = 1 the one stage is first and
  // last). With a virtual pipeline (vpp = v) this rank holds v model chunks; chunk c is virtual
  // stage c·pp + pp_rank. The first virtual stage reads its inputs from the batch's fields; the
  // others take `input`, the previous virtual stage's activation. The last reads the targets from
  // the batch and returns the loss. With ctx.training, saves what backward_stage() needs on ctx.store; the
  // objective's gradient w.r.t. the loss is ctx.loss_grad_scale.
  virtual StageOutput forward_stage(StepContext& ctx, const Batch& batch, const Tensor& input, int chunk) = 0;
  // Consumes what forward_stage saved on ctx.store for `chunk`, accumulates that chunk's parameter
  // gradients and returns the gradient w.r.t. its `input` (undefined on the first virtual stage).
  // `output_grad` is the gradient w.r.t. the activation the chunk sent (undefined on the last).
  virtual Tensor backward_stage(StepContext& ctx, const Tensor& output_grad, int chunk) = 0;
  // Shape of the activation passed between stages for a microbatch of `micro_batch_size` sequences.
  virtual Shape stage_activation_shape(std::int64_t micro_batch_size) const = 0;

  // One stage only (pp = 1): the loss of a microbatch, and its backward.
  double forward_loss(StepContext& ctx, const Batch& batch) { return forward_stage(ctx, batch, Tensor(), 0).loss; }
  void backward(StepContext& ctx) { backward_stage(ctx, Tensor(), 0); }

  // Logits [B, vocab_size] for the next token after each row of tokens [B,T] (inference).
  virtual Tensor next_token_logits(const Tensor& tokens) = 0;

  virtual std::int64_t seq_length() const = 0;
  // Model FLOPs of one training iteration over `sequences` sequences (forward + backward, no
  // recompute), Megatron-LM's accounting.
  virtual double flops_per_iteration(std::int64_t sequences) const = 0;
  virtual std::string describe() const = 0;
};

}  // namespace tessera
