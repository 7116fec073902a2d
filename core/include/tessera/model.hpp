// Model interface that model plugins (gpt, later bert, t5) implement.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tessera/batch.hpp"
#include "tessera/dtype.hpp"
#include "tessera/nn/parameter.hpp"
#include "tessera/parallel/parallel.hpp"
#include "tessera/nn/step_context.hpp"

namespace tessera {

class ConfigSection;
class Generator;

struct ModelContext {
  std::int64_t vocab_size = 0;  // from the tokenizer; the model pads it (make_vocab_size_divisible_by)
  std::uint64_t seed = 1234;    // initialisation seed
  // How the run is split; null means one process. A model splits its layers over the tensor- and
  // pipeline-parallel groups; data parallelism is the trainer's business.
  std::shared_ptr<const Parallel> parallel;
  // The dtype activations compute in ([training] precision): f32, or bf16/f16 with f32 master
  // weights (the trainer gives every parameter its compute copy, Parameter::weight()). Stage
  // boundaries carry it.
  DType compute_dtype = DType::f32;

  // The run's tp, pp, vpp, sequence parallelism, split rank and uneven stages (one process: the
  // defaults).
  ParallelSizes sizes() const { return parallel ? parallel->layout.sizes() : ParallelSizes{}; }
};

// One tensor passed between pipeline stages: its shape for a microbatch, and its dtype.
struct TensorSpec {
  Shape shape;
  DType dtype = DType::f32;
  bool operator==(const TensorSpec&) const = default;
};

// What one pipeline stage's forward produced for a microbatch.
struct StageOutput {
  // For the next stage, as stage_boundary() lists them (GPT: the hidden state; T5's decoder: the
  // hidden state and the encoder output); empty on the last stage.
  std::vector<Tensor> activations;
  double loss = 0;  // the last stage's mean loss over the masked tokens (Σ loss·mask / Σ mask)
  // A loss made of several terms (BERT: masked-LM + sentence order): each term, in the order of
  // Model::loss_part_names(), summing to `loss`; empty for a model of one term.
  std::vector<double> loss_parts;
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
  // others take `inputs`, the previous virtual stage's activations. The last reads the targets from
  // the batch and returns the loss. With ctx.training, saves what backward_stage() needs on ctx.store; the
  // objective's gradient w.r.t. the loss is ctx.loss_grad_scale.
  virtual StageOutput forward_stage(StepContext& ctx, const Batch& batch, const std::vector<Tensor>& inputs,
                                    int chunk) = 0;
  // Consumes what forward_stage saved on ctx.store for `chunk`, accumulates that chunk's parameter
  // gradients and returns the gradients w.r.t. its `inputs`, one per input (none on the first
  // virtual stage). `output_grads` are the gradients w.r.t. the activations the chunk sent, one
  // per activation (none on the last).
  virtual std::vector<Tensor> backward_stage(StepContext& ctx, const std::vector<Tensor>& output_grads,
                                             int chunk) = 0;
  // The tensors virtual stage `boundary` passes to virtual stage boundary + 1 (0 <= boundary <
  // pp·vpp − 1) for a microbatch of `micro_batch_size` sequences, in order; their gradients travel
  // back with the same specs. The pipeline executor allocates what it receives from these.
  virtual std::vector<TensorSpec> stage_boundary(std::int64_t micro_batch_size, int boundary) const = 0;

  // One stage only (pp = 1): the loss of a microbatch, and its backward.
  double forward_loss(StepContext& ctx, const Batch& batch) { return forward_stage(ctx, batch, {}, 0).loss; }
  void backward(StepContext& ctx) { backward_stage(ctx, {}, 0); }

  // Generation is optional (generation.hpp): a model that can continue a sequence returns its
  // Generator (usually itself), others keep this null.
  virtual Generator* generator() { return nullptr; }

  virtual std::int64_t seq_length() const = 0;
  // The names of StageOutput::loss_parts as the log shows them ("lm loss", "sop loss"); empty: the
  // loss is logged as one "lm loss".
  virtual std::vector<std::string> loss_part_names() const { return {}; }
  // The statistics its modules report to StepContext::metrics in training (GPT with mixture-of-
  // experts layers: "load_balancing_loss", "z_loss"), logged after the losses in this order; a name
  // with a '/' ("moe/z_loss_layer_3") goes to TensorBoard only. Every rank's model lists the same
  // names (they are reduced over pp and dp by position).
  virtual std::vector<std::string> metric_names() const { return {}; }
  // The tokens the loss of `batch` averages over (GPT: its loss_mask's sum; Megatron-Core's
  // num_tokens), for [training] calculate_per_token_loss, which weighs each microbatch's mean loss by
  // its share of the global batch's tokens; nullopt (the default): the model's loss is not such a
  // mean, and the trainer refuses the key.
  virtual std::optional<double> loss_tokens(const Batch& /*batch*/) const { return std::nullopt; }
  // `micro_batch_size` random samples the model accepts, on the host, for benchmarks without data:
  // by default i32 fields hold random ids below vocab_size and every other field ones (every
  // position real and predicted); a model with fields of another range (BERT's token types and
  // sentence-order label) overrides it. Optional fields are left out.
  virtual Batch example_batch(std::int64_t micro_batch_size, std::int64_t vocab_size, std::uint64_t seed) const;
  // An encoder-decoder's decoder length (T5's decoder_seq_length); 0 for a model with one sequence.
  virtual std::int64_t decoder_seq_length() const { return 0; }
  // Model FLOPs of one training iteration over `sequences` sequences (forward + backward, no
  // recompute), Megatron-LM's accounting.
  virtual double flops_per_iteration(std::int64_t sequences) const = 0;
  virtual std::string describe() const = 0;
};

}  // namespace tessera
