// The three index arrays of Megatron-LM's GPTDataset (_build_index_mappings + helpers.cpp
// build_sample_idx), built exactly as Megatron builds them so that the same data, seed, seq_length
// and sample count give the same samples in the same order:
//
//   doc_idx     the documents tiled over E epochs, shuffled (np.random.RandomState(seed)); when the
//               last epoch supplies < 80% of an epoch's samples it is shuffled separately and
//               appended, so the first E−1 epochs stay a uniform mix.
//   sample_idx  (num_samples + 1) rows of (position in doc_idx, token offset): sample i spans from
//               row i to row i+1 inclusive, seq_length + 1 tokens, so consecutive samples share
//               one token (the last label of i is the first input of i+1).
//   shuffle_idx a permutation of the samples (the separate last epoch's samples shuffled apart).
//
// "Documents" are sequences of the indexed dataset, as in Megatron's GPT dataset. Everything is one
// linear pass plus two Fisher-Yates shuffles: ~1M documents build in well under a second.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace tessera::gpt_indexed {

struct GptIndices {
  std::int64_t tokens_per_epoch = 0;
  std::int64_t num_epochs = 0;
  bool separate_last_epoch = false;
  std::vector<std::int32_t> doc_idx;     // absolute sequence ids, num_epochs × documents
  std::vector<std::int64_t> sample_idx;  // flattened (num_samples + 1) × 2
  std::vector<std::int64_t> shuffle_idx; // num_samples
  std::int64_t num_samples() const { return static_cast<std::int64_t>(shuffle_idx.size()); }
};

// The most memory the three arrays may take (4 bytes per doc_idx entry, 24 per sample): 64 GiB is
// ~2.8e9 samples, several trillion tokens at common sequence lengths.
inline constexpr std::int64_t kMaxGptIndexBytes = std::int64_t{64} << 30;

// Smallest E >= 1 with (E · tokens_per_epoch − 1) / seq_length >= num_samples (Megatron's
// _num_epochs loop, in closed form).
std::int64_t gpt_num_epochs(std::int64_t tokens_per_epoch, std::int64_t seq_length, std::int64_t num_samples);

// The shape of the indices build_gpt_indices makes, known before building them (what a cached copy
// must match).
struct GptIndexPlan {
  std::int64_t documents = 0;          // doc_end − doc_begin
  std::int64_t tokens_per_epoch = 0;
  std::int64_t num_epochs = 0;
  bool separate_last_epoch = false;
  std::int64_t from_first_epochs = 0;  // samples of the first num_epochs − 1 epochs (when num_epochs > 1)
  std::int64_t total_samples = 0;      // shuffle_idx entries; sample_idx has one row more
};

// Checks the arguments and sizes the indices, with build_gpt_indices's errors (it calls this first).
GptIndexPlan plan_gpt_indices(std::span<const std::int32_t> sizes, std::int64_t doc_begin, std::int64_t doc_end,
                              std::int64_t num_samples, std::int64_t seq_length);

// Whether indices (read from a cache) fit the plan and the documents: doc_idx of the right length
// within [doc_begin, doc_end), sample_idx rows that are non-decreasing positions inside doc_idx's
// documents, shuffle_idx a permutation. "" when they do, else what is wrong. Linear time.
std::string check_gpt_indices(const GptIndices& indices, const GptIndexPlan& plan, std::span<const std::int32_t> sizes,
                              std::int64_t doc_begin, std::int64_t doc_end);

// sizes: tokens per sequence of the whole indexed dataset; documents: [doc_begin, doc_end).
// Throws tessera::Error when the range holds fewer than 2 tokens or seq_length < 1, and ConfigError
// when the indices for num_samples would take more than kMaxGptIndexBytes (computed first, in 128-bit
// arithmetic, so any int64 num_samples is a quick, clear answer).
GptIndices build_gpt_indices(std::span<const std::int32_t> sizes, std::int64_t doc_begin, std::int64_t doc_end,
                             std::int64_t num_samples, std::int64_t seq_length, std::uint32_t seed);

}  // namespace tessera::gpt_indexed
