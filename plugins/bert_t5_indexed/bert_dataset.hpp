// BERT samples as Megatron-LM's BertDataset builds them (bert_dataset.py build_training_sample),
// drawing from np.random.RandomState(seed + index) in its order:
//   1. With the binary head, the sentence-order pair: A = the first a_end sentences (a_end = 1 for
//      2 sentences, else randint(1, n)), B = the rest; random() < 0.5 swaps them (is_random = 1).
//      Without it, A = every sentence, B empty.
//   2. truncate_segments to the row's target: while too long, trim the longer (B on ties), its
//      front when random() < 0.5, else its back.
//   3. [CLS] A [SEP] B [SEP] (the second [SEP] only when B is not empty); types 0 up to the first
//      [SEP], 1 after.
//   4. Whole-word n-gram masking (masking.hpp), max_ngrams 3, 80/10/10.
//   5. Padding to seq_length with [PAD]; labels −1 except at masked positions (the original id);
//      loss_mask 1 there. Differs from Megatron only in padding types with 0 where it pads them with
//      the [PAD] id (the same for BERT vocabularies, where [PAD] is 0, and never a third type).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "sentence_dataset.hpp"
#include "vocabulary.hpp"

namespace tessera::bert_t5_indexed {

// tokens i32[S], types i32[S], labels i32[S], loss_mask f32[S], padding_mask u8[S], is_random i32[1].
FieldSpecs bert_fields(std::int64_t seq_length);

struct BertSampleOptions {
  std::int64_t seq_length = 512;
  double masked_lm_prob = 0.15;
  bool binary_head = true;
  BertTokenIds ids;
};

struct BertSample {
  std::span<std::int32_t> tokens, types, labels;
  std::span<float> loss_mask;
  std::span<std::uint8_t> padding_mask;
  std::int32_t* is_random = nullptr;
};

// sentences: the sample's sentences (consumed); target: its target length (≤ seq_length − 3).
void build_bert_sample(std::vector<std::vector<std::int32_t>>& sentences, std::int64_t target, std::uint32_t seed,
                       const BertSampleOptions& options, std::span<const std::uint8_t> continuation,
                       const BertSample& out);

class BertDataset : public SentenceDataset {
 public:
  // split.max_target and split.min_num_sent are set from options (seq_length − 3; 2 with the binary head).
  BertDataset(std::shared_ptr<const IndexedDataset> data, const std::vector<std::int64_t>& doc_idx,
              const std::vector<std::int32_t>& sizes, SplitOptions split, const BertSampleOptions& options,
              std::shared_ptr<const std::vector<std::uint8_t>> continuation);
  void sample(std::int64_t index, const SampleView& out) const override;
  void sample(std::int64_t index, const BertSample& out) const;

 private:
  BertSampleOptions options_;
  std::shared_ptr<const std::vector<std::uint8_t>> continuation_;
};

}  // namespace tessera::bert_t5_indexed
