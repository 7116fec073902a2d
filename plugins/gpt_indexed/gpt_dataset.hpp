// GPT samples over a range of an indexed dataset's documents, indexed like Megatron-LM's GPTDataset
// (see gpt_indices.hpp): sample i is the seq_length + 1 token window at shuffle_idx[i];
// tokens = window[:-1], labels = window[1:], loss_mask = 1 (0 where tokens == eod with
// eod_mask_loss, as Megatron's get_ltor_masks_and_position_ids does). Those are the three batch
// fields the plugin always produces (gpt_fields). With reset_position_ids it adds position_ids,
// and with reset_attention_mask document_start (document_starts below), as Megatron's function
// resets them after each eod of tokens. With a FimTransform (gpt_fim.hpp) the window is first
// rewritten by fill-in-the-middle, from a generator seeded by (seed, index) alone.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gpt_fim.hpp"
#include "gpt_indices.hpp"
#include "tessera/data/indexed_dataset.hpp"
#include "token_documents.hpp"
#include "tessera/dataset.hpp"

namespace tessera::gpt_indexed {

struct GptDatasetOptions {
  std::int64_t seq_length = 1024;
  std::uint32_t seed = 1234;
  std::int64_t num_samples = 0;  // wanted; size() may be larger (Megatron keeps the whole last epoch)
  std::int32_t eod_token = 0;
  bool eod_mask_loss = false;
  bool reset_position_ids = false, reset_attention_mask = false;
  // The tokenizer's vocabulary size; when > 0, every token of the range is checked to be below it
  // once, at construction (a FormatError: the data was preprocessed with another tokenizer).
  std::int64_t vocab_size = 0;
  // Fill-in-the-middle, applied to each window when set (fim_rate > 0).
  std::shared_ptr<const FimTransform> fim;
  // Cache the three index arrays as .npy files (tessera/data/index_cache.hpp), named as Megatron-LM
  // names them plus the document range: <stem>_<split>_indexmap_<N>ns_<S>sl_<seed>s_<kind>_<b>-<e>docs.npy
  // with kind doc_idx, sample_idx, shuffle_idx and stem the data prefix, or cache_dir/<its file name>.
  bool cache_indices = false;
  std::string cache_dir;             // "" = beside the data ([data] data_cache_path)
  std::string split_name = "train";  // in the cache files' names (build_gpt_splits sets it)
};

// The fields of a GPT sample: tokens i32[T], labels i32[T], loss_mask f32[T]; with the options'
// resets also position_ids i32[T] and document_start i32[T].
FieldSpecs gpt_fields(std::int64_t seq_length);
FieldSpecs gpt_fields(const GptDatasetOptions& options);

// Megatron-LM's document boundaries within a sample (get_ltor_masks_and_position_ids): a document
// ends at each eod of tokens[0, n), the eod included, and the next starts after it. first[t] = the
// position its document starts at (0 before the first eod), so that
//   reset_attention_mask: query t attends keys j with first[t] ≤ j ≤ t;
//   reset_position_ids:   token t's position is t − first[t].
void document_starts(const std::int32_t* tokens, std::int64_t n, std::int32_t eod, std::int32_t* first);

class GptDataset : public Dataset {
 public:
  // Documents [doc_begin, doc_end) of data. An empty range makes an empty dataset (size 0), which is
  // an error only if samples are wanted from it. Indices are cached only for data with a
  // cache_prefix (an indexed dataset's, not mock data).
  GptDataset(std::shared_ptr<const TokenDocuments> data, std::int64_t doc_begin, std::int64_t doc_end,
             const GptDatasetOptions& options);
  GptDataset(std::shared_ptr<const IndexedDataset> data, std::int64_t doc_begin, std::int64_t doc_end,
             const GptDatasetOptions& options)
      : GptDataset(indexed_documents(std::move(data)), doc_begin, doc_end, options) {}

  std::int64_t size() const override { return indices_.num_samples(); }
  std::int64_t seq_length() const { return options_.seq_length; }
  // Writes the gpt_fields(options) of sample `index`.
  void sample(std::int64_t index, const SampleView& out) const override;
  // The same, into seq_length values each.
  void sample(std::int64_t index, std::int32_t* tokens, std::int32_t* labels, float* loss_mask) const;
  // The seq_length + 1 tokens of sample `index` (after the shuffle), as stored.
  void window(std::int64_t index, std::int32_t* out) const;
  // The same after fill-in-the-middle, if any: what tokens and labels are made of.
  void sample_window(std::int64_t index, std::vector<std::int32_t>& out) const;

  const GptIndices& indices() const { return indices_; }
  // The cache files (empty when not cached or the range is empty), and whether the indices were
  // read from them or built and written by this constructor.
  const std::vector<std::string>& cache_paths() const { return cache_paths_; }
  bool indices_from_cache() const { return from_cache_; }
  bool indices_written() const { return written_; }
  std::int64_t doc_begin() const { return doc_begin_; }
  std::int64_t doc_end() const { return doc_end_; }

 private:
  std::shared_ptr<const TokenDocuments> data_;
  std::int64_t doc_begin_, doc_end_;
  GptDatasetOptions options_;
  GptIndices indices_;
  std::vector<std::string> cache_paths_;
  bool from_cache_ = false, written_ = false;

  void load_or_build_indices(const std::vector<std::int32_t>& sizes);
};

// The cache files of documents [doc_begin, doc_end) of the dataset at data_prefix: doc_idx,
// sample_idx, shuffle_idx (see GptDatasetOptions::cache_indices).
std::array<std::string, 3> gpt_index_cache_paths(const std::string& data_prefix, const GptDatasetOptions& options,
                                                 std::int64_t doc_begin, std::int64_t doc_end);

// Builds train/valid/test datasets from a split string ("969,30,1", see document_split.hpp);
// options.num_samples is ignored in favour of num_samples[split]. Every split shares the seed, as in
// Megatron. Throws ConfigError when a split with no documents is asked for samples.
std::array<std::unique_ptr<GptDataset>, 3> build_gpt_splits(std::shared_ptr<const TokenDocuments> data,
                                                            const std::string& split,
                                                            const std::array<std::int64_t, 3>& num_samples,
                                                            const GptDatasetOptions& options);
inline std::array<std::unique_ptr<GptDataset>, 3> build_gpt_splits(std::shared_ptr<const IndexedDataset> data,
                                                                   const std::string& split,
                                                                   const std::array<std::int64_t, 3>& num_samples,
                                                                   const GptDatasetOptions& options) {
  return build_gpt_splits(indexed_documents(std::move(data)), split, num_samples, options);
}

}  // namespace tessera::gpt_indexed
