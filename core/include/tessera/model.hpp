// Model interface that model plugins (gpt, later bert, t5) implement.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tessera/nn/parameter.hpp"
#include "tessera/parallel/parallel.hpp"
#include "tessera/nn/step_context.hpp"

namespace tessera {

class ConfigSection;

// One microbatch: tokens and labels i32 [B,T], loss_mask f32 [B,T].
struct Batch {
  Tensor tokens, labels, loss_mask;
};

struct ModelContext {
  std::int64_t vocab_size = 0;  // from the tokenizer; the model pads it (make_vocab_size_divisible_by)
  std::uint64_t seed = 1234;    // initialisation seed
  // How the run is split; null means one process. A model splits its layers over the tensor- and
  // pipeline-parallel groups; data parallelism is the trainer's business.
  std::shared_ptr<const Parallel> parallel;
};

class Model {
 public:
  using FactorySignature = std::unique_ptr<Model>(const ConfigSection& model, const ModelContext& context);
  virtual ~Model() = default;

  virtual void collect_parameters(std::vector<Parameter*>& out) = 0;
  // Mean loss over the masked tokens of the batch (Megatron: Σ loss·mask / Σ mask). With
  // ctx.training, saves what backward() needs; the objective's gradient w.r.t. this loss is
  // ctx.loss_grad_scale.
  virtual double forward_loss(StepContext& ctx, const Batch& batch) = 0;
  // Accumulates every parameter's gradient for the last forward_loss on ctx.store.
  virtual void backward(StepContext& ctx) = 0;
  // Logits [B, vocab_size] for the next token after each row of tokens [B,T] (inference).
  virtual Tensor next_token_logits(const Tensor& tokens) = 0;

  virtual std::int64_t seq_length() const = 0;
  // Model FLOPs of one training iteration over `sequences` sequences (forward + backward, no
  // recompute), Megatron-LM's accounting.
  virtual double flops_per_iteration(std::int64_t sequences) const = 0;
  virtual std::string describe() const = 0;
};

}  // namespace tessera
