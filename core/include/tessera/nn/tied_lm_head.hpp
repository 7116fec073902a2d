// The fused, chunked LM head + cross-entropy of a model whose output layer is its (vocab-parallel)
// word embedding — GPT's, BERT's and T5's: logits = h·Wᵀ (+ a per-vocabulary bias), the loss per
// row, and, when training, the gradients at once.
//
// Each chunk's logits are computed, turned into their gradient in place and consumed at once (dh
// and the table's dW, the bias's db), so the [N, V] logits never exist whole and are written once.
// That needs the loss gradient's scale at forward time (StepContext::loss_grad_scale). Logits and
// the loss are f32 whatever the compute dtype (as Megatron-LM); in bf16/f16 the logits' gradient is
// rounded to it for the two backward GEMMs. Under tp the table (and bias) hold this rank's
// vocabulary shard [first_id, first_id + V): the cross-entropy combines per-row statistics over tp,
// and the returned dh covers this rank's columns only — the caller sums it over tp.
#pragma once
#include <algorithm>
#include <cstdint>

#include "tessera/nn/tensor_parallel_region.hpp"
#include "tessera/tensor.hpp"

namespace tessera {

struct TiedLmHead {
  const Tensor* table = nullptr;  // [V, C] this rank's shard, in the compute dtype
  Tensor* table_grad = nullptr;   // [V, C] f32, accumulated
  std::int64_t first_id = 0;
  const Tensor* bias = nullptr;   // optional [V] f32 (BERT, T5)
  Tensor* bias_grad = nullptr;    // [V] f32, accumulated
  TpGroup tp;
  // Targets outside the vocabulary (Megatron's −1 for "not predicted", BERT/T5) add nothing: they
  // must have mask 0. Without it a target must be a valid id.
  bool ignored_targets = false;
  // Rows of logits per chunk: elements / V, at least 16 (the device's Backend::chunk_elements_hint()).
  std::int64_t chunk_elements = std::int64_t{8} << 20;
};

// Rows of logits computed at once over a vocabulary (shard) of `vocab`: on the CPU 8M floats (32
// MB): measured on GPT-2 shapes, 4M-float chunks (~80 rows) make the head's GEMMs 10-20% slower,
// 16M+ gain nothing and only raise the memory peak.
inline std::int64_t head_chunk_rows(std::int64_t vocab, std::int64_t elements = std::int64_t{8} << 20) {
  return std::max<std::int64_t>(16, elements / vocab);
}

struct TiedLmHeadOutput {
  Tensor losses;  // f32 [N], per row (masked rows hold a value that must be ignored)
  Tensor dh;      // training: [N, C] in h's dtype, this rank's vocabulary part of the input gradient
};

// h [N, C], labels i32 [N], mask f32 [N]; grad_scale multiplies each row's gradient (and its mask).
TiedLmHeadOutput tied_lm_head_loss(const TiedLmHead& head, const Tensor& h, const Tensor& labels, const Tensor& mask,
                                   float grad_scale, bool training);

}  // namespace tessera
