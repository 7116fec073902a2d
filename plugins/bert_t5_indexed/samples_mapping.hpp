// Megatron-LM's samples mapping for BERT and T5 (helpers.cpp build_mapping): which sentences make
// each sample. Rows are (first sentence, end sentence, target length), sentence indices absolute in
// the indexed dataset, in the shuffled order the dataset reads them.
//
// The algorithm, as Megatron's (so the same data, seed and settings give the same rows):
//   target(L): r = mt19937(seed)(); r % round(1/short_seq_prob) == 0 ? 2 + r % (L − 1) : L
//              (no draw when short_seq_prob is 0).
//   Epochs until max_num_samples rows exist (checked at each epoch's start); per document: skip it
//   when it has fewer than min_num_sent sentences (2 under BERT's binary head, else 1), or more
//   than one sentence and one of them longer than kLongSentenceLen tokens; else draw a target, walk
//   its sentences summing lengths, and close a row when (length ≥ target and more than one sentence
//   remains and the row has min_num_sent sentences) or the document ends, drawing a new target.
//   Then Fisher-Yates from the end with mt19937_64(seed + 1): j = rng() % (i + 1).
//
// Where it differs from Megatron, on purpose: when an epoch yields no row (every document skipped)
// it stops instead of running 2^31 empty epochs (Megatron's hang with one-sentence documents under
// the binary head), and a mapping that would pass kMaxMappingBytes is a ConfigError at once.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace tessera::bert_t5_indexed {

inline constexpr std::int32_t kLongSentenceLen = 512;
inline constexpr std::int64_t kMaxMappingBytes = std::int64_t{64} << 30;

struct MappingOptions {
  std::int64_t max_seq_length = 509;  // the longest target: seq_length − 3 (BERT) or − 2 (T5)
  double short_seq_prob = 0.1;
  std::uint32_t seed = 1234;
  int min_num_sent = 2;
  std::int64_t max_num_samples = 0;
};

// Documents by kind, for the log line and for errors when no sample can be made.
struct DocumentCounts {
  std::int64_t documents = 0;
  std::int64_t empty = 0;
  std::int64_t too_few_sentences = 0;  // non-empty, fewer than min_num_sent
  std::int64_t long_sentence = 0;      // 2+ sentences, one over kLongSentenceLen tokens
  std::int64_t used() const { return documents - empty - too_few_sentences - long_sentence; }
};
DocumentCounts count_documents(std::span<const std::int64_t> doc_idx, std::span<const std::int32_t> sizes,
                               int min_num_sent);

// The rows, from memory or from a mapped cache file, 4- or 8-byte unsigned entries (Megatron's
// uint32, or uint64 when the dataset has more than 2^32 − 1 sentences).
class SamplesMapping {
 public:
  SamplesMapping() = default;
  explicit SamplesMapping(std::vector<std::uint32_t> rows);
  explicit SamplesMapping(std::vector<std::uint64_t> rows);
  // A view of `rows` × 3 entries of `width` bytes at data, kept alive by owner.
  SamplesMapping(std::shared_ptr<const void> owner, const unsigned char* data, int width, std::int64_t rows);

  std::int64_t size() const { return rows_; }
  int width() const { return width_; }
  const unsigned char* data() const { return data_; }
  std::array<std::int64_t, 3> row(std::int64_t i) const;
  bool operator==(const SamplesMapping& o) const;

 private:
  std::shared_ptr<const void> owner_;
  const unsigned char* data_ = nullptr;
  int width_ = 4;
  std::int64_t rows_ = 0;
};

// doc_idx: the split's document boundaries (D + 1 absolute sentence indices); sizes: every
// sentence's length in the dataset. Throws ConfigError when the rows would pass kMaxMappingBytes.
SamplesMapping build_samples_mapping(std::span<const std::int64_t> doc_idx, std::span<const std::int32_t> sizes,
                                     const MappingOptions& options);

}  // namespace tessera::bert_t5_indexed
