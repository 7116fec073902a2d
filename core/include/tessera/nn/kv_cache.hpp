// Key/value cache for generation (Megatron-LM's InferenceParams): every causal self-attention layer
// keeps the keys and values of the tokens it has seen, so that a step runs only the new token.
//
// Per layer one buffer [B, capacity, 2·Hkv·D] (capacity: what the session needs, its longest prompt
// plus the tokens to generate, at most the model's sequence length) in the layer's kv layout (each
// token's row is [K of every query group | V of every query group], what the projection writes and
// ops::attention_forward reads): [batch, max_len, kv_heads, head_dim] for keys and for values,
// with kv_heads the query groups on this rank — multi-query attention stores its one K/V head once,
// not per query head. Allocated on first use (keyed by the layer), in the projection's dtype and
// device.
//
// Rows are right-padded: row b holds its tokens at slots 0 … length(b) − 1. Two kinds of forward:
//   prefill  tokens [B, T] at positions 0 … T − 1 (each row's padding after its real tokens, which
//            causal attention keeps from the real ones): slots 0 … T − 1 written;
//   step     one token per row [B, 1] at position length(b): slot length(b) written, then attended
//            with keys 0 … length(b) (a key mask hides the rest, padding included).
// The model sets lengths after each forward (finish_prefill / finish_step); layers only read them.
// Inference only: nothing saved for backward, no dropout (StepContext::training = false).
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "tessera/tensor.hpp"

namespace tessera {

class KvCache {
 public:
  KvCache(std::int64_t batch, std::int64_t capacity);
  std::int64_t batch() const { return batch_; }
  std::int64_t capacity() const { return capacity_; }
  std::int64_t length(std::int64_t row) const { return lengths_.at(static_cast<std::size_t>(row)); }
  const std::vector<std::int64_t>& lengths() const { return lengths_; }
  // Whether the next forward is the prompt's (prefill) or a step.
  bool prefilling() const { return prefilling_; }

  // Layer `layer`'s buffer [B, capacity, width] of like's dtype and device, zeroed when allocated.
  Tensor& buffer(const void* layer, std::int64_t width, const Tensor& like);
  // Positions of a step's tokens: i32 [B] = length(b), on `device` (built once per step).
  const Tensor& step_positions(Device device);
  // A step's key mask u8 [B, max length + 1]: row b keeps keys 0 … length(b).
  const Tensor& step_key_mask(Device device);
  std::int64_t step_keys() const;  // max length + 1

  // After the prefill forward: row b holds prompt_lengths[b] tokens (each ≤ the prefill's T).
  void finish_prefill(const std::vector<std::int64_t>& prompt_lengths);
  // After a step: every row one token longer.
  void finish_step();
  // Beam search: the cache becomes rows.size() rows, row i a copy of old row rows[i] (repeats
  // allowed, each in [0, batch)), buffers and length. Not during a prefill. A layer's previous
  // buffer is the next layer's (or call's) destination: repeated calls with the same row count
  // allocate nothing; only each row's used slots are copied, the slots after them read as zero.
  void select_rows(const std::vector<std::int64_t>& rows);
  // Layer buffers allocated so far (the first use of each layer, select_rows changing the row count).
  std::int64_t allocations() const { return allocations_; }

 private:
  std::int64_t batch_, capacity_;
  std::vector<std::int64_t> lengths_;
  bool prefilling_ = true;
  std::int64_t high_water_ = 0;  // the most tokens any row has held: no slot at or past it was written
  std::int64_t allocations_ = 0;
  std::unordered_map<const void*, Tensor> buffers_;
  Tensor spare_;  // select_rows' next destination: a layer's previous buffer, reused
  Tensor positions_, key_mask_;  // this step's, built on first use
};

}  // namespace tessera
