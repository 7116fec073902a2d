// A T5 batch (T5Model::batch_fields, plus dec_padding_mask as t5_indexed writes it) with padding:
// row b has enc_lengths[b] real encoder tokens and dec_lengths[b] real decoder tokens, then id 0;
// every real decoder position is predicted (a random label, mask 1), padding has label −1 and mask 0.
// Tokens and labels are drawn from `token` in row order.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "tessera/batch.hpp"

namespace tessera {

template <typename Rng, typename TokenDist>
Batch t5_padded_batch(const std::vector<std::int64_t>& enc_lengths, const std::vector<std::int64_t>& dec_lengths,
                      std::int64_t Te, std::int64_t Td, TokenDist& token, Rng& rng) {
  const std::int64_t B = static_cast<std::int64_t>(enc_lengths.size());
  Tensor enc = Tensor::zeros({B, Te}, DType::i32), enc_pad = Tensor::zeros({B, Te}, DType::u8);
  Tensor dec = Tensor::zeros({B, Td}, DType::i32), dec_pad = Tensor::zeros({B, Td}, DType::u8);
  Tensor labels = Tensor::zeros({B, Td}, DType::i32), loss_mask = Tensor::zeros({B, Td});
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t t = 0; t < Te; ++t) {
      const bool real = t < enc_lengths[b];
      enc.data<std::int32_t>()[b * Te + t] = real ? token(rng) : 0;
      enc_pad.data<std::uint8_t>()[b * Te + t] = real ? 1 : 0;
    }
    for (std::int64_t t = 0; t < Td; ++t) {
      const std::int64_t i = b * Td + t;
      const bool real = t < dec_lengths[b];
      dec.data<std::int32_t>()[i] = real ? token(rng) : 0;
      dec_pad.data<std::uint8_t>()[i] = real ? 1 : 0;
      labels.data<std::int32_t>()[i] = real ? token(rng) : -1;
      loss_mask.data<float>()[i] = real ? 1.0f : 0.0f;
    }
  }
  Batch batch;
  batch.set("enc_tokens", enc);
  batch.set("dec_tokens", dec);
  batch.set("labels", labels);
  batch.set("loss_mask", loss_mask);
  batch.set("enc_padding_mask", enc_pad);
  batch.set("dec_padding_mask", dec_pad);
  return batch;
}

}  // namespace tessera
