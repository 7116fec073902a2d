// Generation is an optional interface a model plugin may implement (GPT does; an encoder such as
// BERT does not): Model::generator() returns it, or null. `tessera generate` asks for it.
//
// Two ways to get logits:
// - next_token_logits: a full forward over the whole context at every token (no state kept);
// - a cached session (start_session, Megatron-LM's inference_params): the prompts are run through
//   the model once, filling per-layer key/value buffers (nn/kv_cache.hpp), then each step runs one
//   token per row, attending to what is cached. The same logits (to rounding), far less work.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tessera/tensor.hpp"

namespace tessera {

class Model;

// A cached generation of a batch of rows (prompts of any lengths): each row holds its own tokens
// so far (its length) and advances one token per step at its own position. It refers to its model:
// it must not outlive it. Tested in one process and under tp 2 (pp = 1).
class GenerationSession {
 public:
  virtual ~GenerationSession() = default;
  // Appends next[b] to row b (at position length(b)) and returns logits f32 [B, vocab_size] for the
  // token after it in each row. Needs length(b) < capacity() for every row.
  virtual Tensor step(const std::vector<std::int32_t>& next) = 0;
  virtual std::int64_t batch() const = 0;
  virtual std::int64_t length(std::int64_t row) const = 0;
  // Tokens a row can hold (start_session's capacity): after that the cache is full.
  virtual std::int64_t capacity() const = 0;
  // Beam search (Megatron's swap_key_value_dict): the session becomes rows.size() rows, row i a copy
  // of row rows[i] (cache and length; repeats allowed), so that a beam's continuations share its
  // prefix without recomputing it.
  virtual void select_rows(const std::vector<std::int64_t>& rows) = 0;
};

// A session that passes every call on to another, for wrappers that change one thing (the logits a
// step returns, counting steps): derive and override that.
class ForwardingSession : public GenerationSession {
 public:
  explicit ForwardingSession(std::unique_ptr<GenerationSession> inner) : inner_(std::move(inner)) {}
  Tensor step(const std::vector<std::int32_t>& next) override { return inner_->step(next); }
  std::int64_t batch() const override { return inner_->batch(); }
  std::int64_t length(std::int64_t row) const override { return inner_->length(row); }
  std::int64_t capacity() const override { return inner_->capacity(); }
  void select_rows(const std::vector<std::int64_t>& rows) override { inner_->select_rows(rows); }

 private:
  std::unique_ptr<GenerationSession> inner_;
};

struct SessionStart {
  std::unique_ptr<GenerationSession> session;  // null: the Generator has no cached path
  Tensor logits;                               // f32 [B, vocab_size] after each row's last prompt token
};

class Generator {
 public:
  virtual ~Generator() = default;
  // Logits f32 [B, vocab_size] for the next token after each row of tokens i32 [B, T]; T may be
  // anything up to the model's sequence length. Needs the whole model in this process (pp = 1).
  virtual Tensor next_token_logits(const Tensor& tokens) = 0;
  // A cached session over `prompts` (each 1 … sequence length tokens; lengths may differ): the
  // prompts in one forward. `capacity`: the tokens a row will hold at most (its longest prompt plus
  // the tokens to generate), which sizes the cache (memory ∝ rows × capacity); 0 or anything past
  // the model's sequence length means the sequence length, and it is never less than the longest
  // prompt. The default: no cached path (session null), callers use next_token_logits.
  virtual SessionStart start_session(const std::vector<std::vector<std::int32_t>>& /*prompts*/,
                                     std::int64_t /*capacity*/ = 0) {
    return {};
  }
};

// The model's Generator; a ConfigError "<plugin> does not support generation" when it has none.
// plugin: "model plugin 'gpt'" (plugin_label).
Generator& require_generator(Model& model, const std::string& plugin);

}  // namespace tessera
