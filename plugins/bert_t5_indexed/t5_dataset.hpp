// T5 span-corruption samples as Megatron-LM's T5Dataset builds them (t5_dataset.py
// build_training_sample), drawing from np.random.RandomState(seed + index):
//   1. The row's sentences joined and cut to its target length (no [CLS]/[SEP]).
//   2. Whole-word span masking (masking.hpp): span lengths min(Geometric(0.2), 10) words, within
//      the 15% budget.
//   3. Span k (in order) becomes sentinel <extra_id_k>: encoder = the text with each span replaced
//      by its sentinel; decoder input = [BOS] then, per span, its sentinel and its tokens; labels =
//      the same without [BOS], then [EOS]. Padding with [PAD] to the encoder and decoder lengths;
//      labels −1 and loss_mask 0 on the padding.
// Megatron fails a sample whose decoder input passes decoder_seq_length (DecoderLengthExceededError);
// here its last spans are left unmasked until it fits (and that is counted), so a long run never
// stops on one unlucky draw. Padding masks are 1 for the real tokens (Megatron derives them from
// the ids, `id >= 1`, which is the same while [PAD] is 0 and no text token is 0).
#pragma once
#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "sentence_dataset.hpp"
#include "vocabulary.hpp"

namespace tessera::bert_t5_indexed {

// enc_tokens i32[Se], dec_tokens i32[Sd], labels i32[Sd], loss_mask f32[Sd], enc_padding_mask u8[Se],
// dec_padding_mask u8[Sd].
FieldSpecs t5_fields(std::int64_t encoder_length, std::int64_t decoder_length);

// The most masked spans (so sentinels) a sample of this encoder length can have.
std::int64_t t5_max_spans(std::int64_t encoder_length, double masked_lm_prob);

struct T5SampleOptions {
  std::int64_t encoder_length = 512;
  std::int64_t decoder_length = 128;
  double masked_lm_prob = 0.15;
  T5TokenIds ids;
};

struct T5Sample {
  std::span<std::int32_t> enc_tokens, dec_tokens, labels;
  std::span<float> loss_mask;
  std::span<std::uint8_t> enc_padding_mask, dec_padding_mask;
};

// Returns the number of spans left unmasked to fit the decoder length (0 almost always).
std::int64_t build_t5_sample(const std::vector<std::vector<std::int32_t>>& sentences, std::int64_t target,
                             std::uint32_t seed, const T5SampleOptions& options,
                             std::span<const std::uint8_t> continuation, const T5Sample& out);

class T5Dataset : public SentenceDataset {
 public:
  // split.max_target and split.min_num_sent are set here (encoder_length − 2; 1).
  T5Dataset(std::shared_ptr<const IndexedDataset> data, const std::vector<std::int64_t>& doc_idx,
            const std::vector<std::int32_t>& sizes, SplitOptions split, const T5SampleOptions& options,
            std::shared_ptr<const std::vector<std::uint8_t>> continuation);
  void sample(std::int64_t index, const SampleView& out) const override;
  void sample(std::int64_t index, const T5Sample& out) const;
  // Samples so far whose last spans were left unmasked to fit the decoder length.
  std::int64_t shortened_samples() const { return shortened_.load(); }

 private:
  T5SampleOptions options_;
  std::shared_ptr<const std::vector<std::uint8_t>> continuation_;
  mutable std::atomic<std::int64_t> shortened_{0};
};

}  // namespace tessera::bert_t5_indexed
