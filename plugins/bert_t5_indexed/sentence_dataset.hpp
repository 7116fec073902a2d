// What the BERT and T5 datasets share: a split's documents of a sentence-level indexed dataset
// (each item one sentence, documents by doc_idx), their samples mapping (samples_mapping.hpp,
// cached by mapping_cache.hpp), and reading a sample's sentences. Sample `index` is mapping row
// `index`, and its random draws come from np.random.RandomState((seed + index) mod 2^32), so a
// sample depends only on (data, settings, seed, index): resume and every layout see the same ones.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "samples_mapping.hpp"
#include "tessera/data/indexed_dataset.hpp"
#include "tessera/dataset.hpp"

namespace tessera::bert_t5_indexed {

struct SplitOptions {
  std::string plugin = "data plugin";  // for messages: "data plugin 'bert_indexed'"
  std::string split_name = "train";    // in the cache file's name and in messages
  std::string cache_dir;               // "" = beside the data
  std::int64_t doc_begin = 0, doc_end = 0;  // documents (doc_idx entries) of the split
  std::int64_t num_samples = 0;        // wanted; size() may be larger (whole epochs, as Megatron)
  std::int64_t max_target = 0;         // the mapping's longest target length
  double short_seq_prob = 0.1;
  std::uint64_t seed = 1234;
  int min_num_sent = 2;
  std::int64_t vocab_size = 0;         // token ids must be below it (checked per sample)
};

class SentenceDataset : public Dataset {
 public:
  // doc_idx and sizes: the whole dataset's (passed in so the three splits read them once).
  SentenceDataset(std::shared_ptr<const IndexedDataset> data, const std::vector<std::int64_t>& doc_idx,
                  const std::vector<std::int32_t>& sizes, const SplitOptions& options);

  std::int64_t size() const override { return mapping_.size(); }
  const SamplesMapping& mapping() const { return mapping_; }
  const DocumentCounts& counts() const { return counts_; }
  bool mapping_from_cache() const { return from_cache_; }
  const std::string& cache_path() const { return cache_path_; }
  const SplitOptions& options() const { return options_; }

 protected:
  // The sentences of sample `index` into `sentences` (resized); returns its target length.
  // Throws Error for an index out of range and FormatError for a token outside the vocabulary.
  std::int64_t read_sample(std::int64_t index, std::vector<std::vector<std::int32_t>>& sentences) const;
  // Megatron's RandomState(seed + idx) (BERT takes it mod 2^32, T5 would fail past it).
  std::uint32_t rng_seed(std::int64_t index) const {
    return static_cast<std::uint32_t>(options_.seed + static_cast<std::uint64_t>(index));
  }
  const IndexedDataset& data() const { return *data_; }

 private:
  std::shared_ptr<const IndexedDataset> data_;
  SplitOptions options_;
  DocumentCounts counts_;
  SamplesMapping mapping_;
  std::string cache_path_;
  bool from_cache_ = false;
};

}  // namespace tessera::bert_t5_indexed
