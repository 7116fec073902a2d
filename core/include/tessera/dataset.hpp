// Dataset interface: deterministic samples by index, each a set of named fields (batch.hpp), and
// the data-source plugin that builds the train/valid/test splits from the [data] section (e.g.
// plugin "gpt_indexed").
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/batch.hpp"

namespace tessera {

class ConfigSection;
class Tokenizer;

enum class Split { train = 0, valid = 1, test = 2 };
const char* split_name(Split s);

// Where Dataset::sample writes one sample: for each field the source produces, host memory of that
// field's per-sample shape (in practice one row of the microbatch's tensor).
class SampleView {
 public:
  void add(const FieldSpec& spec, void* data);
  // The memory of field `name`, checked to hold T; throws Error naming the field otherwise.
  template <typename T>
  std::span<T> get(std::string_view name) const {
    const Entry& e = find(name, dtype_of<T>());
    return {static_cast<T*>(e.data), static_cast<std::size_t>(shape_numel(e.spec.sample_shape))};
  }

 private:
  struct Entry {
    FieldSpec spec;
    void* data;
  };
  const Entry& find(std::string_view name, DType dtype) const;
  std::vector<Entry> fields_;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::int64_t size() const = 0;
  // Writes every field the data source produces (DataSource::fields) for sample `index` in
  // [0, size()). The same index always gives the same sample.
  virtual void sample(std::int64_t index, const SampleView& out) const = 0;
};

// What the trainer asks of a data source: how many samples each split must supply.
struct DataRequest {
  std::int64_t seq_length = 0;  // the model's (an encoder-decoder's encoder length)
  std::int64_t decoder_seq_length = 0;  // an encoder-decoder's decoder length; 0 otherwise
  std::uint64_t seed = 1234;
  std::int64_t num_samples[3] = {0, 0, 0};  // train, valid, test
  // Training asks the test split as Megatron-LM does (evaluated once at the end) whether or not the
  // split has documents: true makes a test split without any an empty dataset, not an error.
  bool test_split_optional = false;
  std::int32_t eod_token = 0;
  std::int64_t vocab_size = 0;  // the tokenizer's; a token id at or past it means mismatched data
  // The run's tokenizer, for sources that need its special ids ([CLS], [SEP], [MASK], sentinels…)
  // or its text; lives as long as the trainer. nullptr where no tokenizer exists (some tests).
  const Tokenizer* tokenizer = nullptr;
  // The fields the model reads (Model::batch_fields()): a source whose samples come in several
  // shapes follows the model by default (bert_indexed makes sentence-order pairs when the model
  // reads is_random, as Megatron-LM's one bert_binary_head flag). Empty where no model exists.
  FieldSpecs model_fields;
};

// Made in two steps so that every config mistake is reported before any file is touched: the
// factory reads and checks its [data] keys only (no I/O); open() then opens the files and builds
// the splits.
class DataSource {
 public:
  using FactorySignature = std::unique_ptr<DataSource>(const ConfigSection& data, const DataRequest& request);
  virtual ~DataSource() = default;
  // The fields every sample has (known before open(), so the trainer can check them against the
  // model's).
  virtual FieldSpecs fields() const = 0;
  virtual void open() = 0;
  // After open(): the split's dataset; size() may be 0 when the split has no documents.
  virtual const Dataset& split(Split s) const = 0;
  virtual std::string describe() const = 0;
};

}  // namespace tessera
