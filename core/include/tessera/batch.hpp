// A batch is a set of named tensors, each [B, per-sample shape...]. A model plugin declares the
// fields it consumes and a data plugin the fields it produces (FieldSpec); the trainer checks that
// the two agree before any work (check_batch_fields), so GPT, BERT and T5 each bring their own
// fields without a core change.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tessera/tensor.hpp"

namespace tessera {

// One field of a sample: its name, element type and shape (the batch adds the leading B).
// e.g. {"tokens", DType::i32, {T}}, or a sentence-order label {"sop_label", DType::i32, {1}}.
// A model marks a field optional when it reads it only if the data produces it (GPT's
// position_ids and document_start, which gpt_indexed makes under data.reset_position_ids and
// reset_attention_mask); a data plugin's fields are never optional.
struct FieldSpec {
  std::string name;
  DType dtype = DType::f32;
  Shape sample_shape;
  bool optional = false;
  std::string str() const;  // "tokens i32[64]"
  bool operator==(const FieldSpec&) const = default;
};
using FieldSpecs = std::vector<FieldSpec>;

// A microbatch: every field the data plugin produced, stacked over B samples.
class Batch {
 public:
  // Throws Error naming the field (and the fields there are) when the batch has none of that name.
  const Tensor& get(std::string_view name) const;
  // Adds the field, or replaces the one of that name.
  void set(std::string name, Tensor tensor);
  bool has(std::string_view name) const;
  std::vector<std::string> names() const;

 private:
  std::vector<std::pair<std::string, Tensor>> fields_;  // a handful: a vector keeps their order
};

// Throws ConfigError when a field `consumer` (e.g. "model plugin 'gpt'") needs is not produced by
// `producer` (e.g. "data plugin 'gpt_indexed'"), or when a field it reads (optional ones included)
// is produced with another dtype or per-sample shape; the message names both plugins and the field.
void check_batch_fields(const FieldSpecs& consumed, const std::string& consumer, const FieldSpecs& produced,
                        const std::string& producer);

}  // namespace tessera
