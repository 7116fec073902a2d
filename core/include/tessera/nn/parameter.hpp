// A trainable tensor with its gradient and what the optimizer and the parallel layout need to know.
#pragma once
#include <string>
#include <vector>

#include "tessera/tensor.hpp"

namespace tessera {

struct Parameter {
  std::string name;    // dotted path, e.g. "layers.3.mlp.fc1.weight" (checkpoint key)
  Tensor value;        // f32 (the master weight in mixed precision)
  Tensor grad;         // f32, same shape; accumulated (+=) over microbatches
  // Mixed precision (Megatron-LM's fp32 master weights): `value` stays the f32 tensor the optimizer
  // updates and checkpoints save; `compute` is its bf16/f16 copy that forward and backward read,
  // rewritten by the optimizer in the same pass as the update. Undefined in f32 training.
  Tensor compute;
  // What forward and backward read: the compute copy, or the f32 value without one.
  const Tensor& weight() const { return compute.defined() ? compute : value; }
  bool weight_decay = true;  // false for biases and norm weights (Megatron's default)
  // Tensor parallelism: the dim of the full tensor split across the tp group (-1: every tp rank
  // holds the whole tensor). A replicated tensor whose gradient each tp rank computes from its own
  // part of the work (MQA's K/V, norms under sequence parallelism, whole experts under tp with
  // expert_tensor_parallel_size 1 and ep 1) sets reduce_grad_over_tp.
  int tp_split_dim = -1;
  bool reduce_grad_over_tp = false;
  // The split dim is this many equal blocks, each split across tp (Megatron's partition stride):
  // 2 for the fused [K | V] projection, whose shard on tp rank r is [K_r | V_r]. To gather the full
  // tensor, view every shard's split dim as blocks × (size / blocks) and concatenate per block.
  int tp_split_blocks = 1;
  // Rows of the full tensor past this are padding whose count depends on the layout (Megatron pads
  // the vocabulary to a multiple of make_vocab_size_divisible_by × tp); saved weights keep only the
  // first `unpadded_rows` so that a file does not depend on the layout that wrote it. -1: no padding.
  std::int64_t unpadded_rows = -1;
  // Pipeline parallelism: a parameter that two stages both hold (the token embedding, tied to the
  // LM head on the last stage). The trainer sums the two gradients over the embedding group so the
  // copies stay equal; the owner alone counts in the grad norm and in saved files.
  enum class StageTie { none, owner, copy };
  StageTie stage_tie = StageTie::none;
  // Forward reads the f32 `value`, not weight() (BERT's and T5's LM-head bias: the logits are f32).
  // An optimizer that updates shards of the masters and gathers only the compute copies (mixed
  // precision distributed_adam) must gather this one's masters too.
  bool forward_reads_value = false;
  // The input embedding's and the output layer's weights (Megatron-Core's
  // is_embedding_or_output_parameter: the word embeddings, an untied output layer, the tied head's
  // copy): with [optimizer] decoupled_lr they learn at that rate (UpdateRates::lr_for).
  bool embedding_or_output = false;
  // false: a buffer, not a trainable weight (the MoE router's expert bias): saved, loaded, resharded
  // and moved to the device with the parameters, but without gradient, optimizer state, norm or
  // data-parallel reduction. Its module updates it from statistics the trainer sums over the
  // data-parallel ranks (StepContext::buffer_statistics). The trainer, tessera bench and the
  // reshard hand optimizers trainable_parameters() only.
  bool trainable = true;
  // Expert parallelism: an expert's weight that one rank of the expert-parallel group holds (the
  // others hold other experts). Its gradient is summed over the expert-data-parallel group (the
  // ranks holding the same experts) instead of dp, it counts in the norms on every expert-parallel
  // rank, and saved files collect it from them. Set only with expert_model_parallel_size > 1.
  bool expert_parallel = false;
  // Expert tensor parallel size 1: an expert's weight held whole by one rank of its tp group, the
  // other tp ranks holding other experts. It counts in the norms on every tp rank (as a shard does),
  // and saved files, which hold every expert on every tp rank, collect it over tp too.
  bool whole_on_one_tp_rank = false;

  Parameter(std::string n, const Shape& shape, bool decay = true)
      : name(std::move(n)), value(Tensor::zeros(shape)), grad(Tensor::zeros(shape)), weight_decay(decay) {}
};

std::int64_t count_elements(const std::vector<Parameter*>& params);
// The trainable ones (Parameter::trainable), in order.
std::vector<Parameter*> trainable_parameters(const std::vector<Parameter*>& params);
// Moves every parameter's value and gradient to `device` (modules build them on the host).
void move_parameters(const std::vector<Parameter*>& params, Device device);
// Mixed precision: gives every parameter a `compute` copy in `dtype` (bf16 or f16) cast from its
// value; f32 removes them. refresh_compute_copies casts the values again (after a checkpoint load).
void make_compute_copies(const std::vector<Parameter*>& params, DType dtype);
void refresh_compute_copies(const std::vector<Parameter*>& params);

// Whether p's gradient enters the global gradient norm on tensor-parallel rank `tp_rank`: a shard
// on every rank, a tensor replicated over tp on rank 0 only, a pipeline stage's tied copy never —
// so that the sum over tp and pp counts every element of the model once.
inline bool counts_in_grad_norm(const Parameter& p, int tp_rank) {
  return p.stage_tie != Parameter::StageTie::copy && (p.tp_split_dim >= 0 || p.whole_on_one_tp_rank || tp_rank == 0);
}

}  // namespace tessera
