// The batch the gpt model plugin reads (GptModel::batch_fields): tokens and labels i32 [B,T],
// loss_mask f32 [B,T].
#pragma once
#include "tessera/batch.hpp"

namespace tessera {

inline Batch gpt_batch(Tensor tokens, Tensor labels, Tensor loss_mask) {
  Batch b;
  b.set("tokens", std::move(tokens));
  b.set("labels", std::move(labels));
  b.set("loss_mask", std::move(loss_mask));
  return b;
}

}  // namespace tessera
