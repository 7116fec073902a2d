// Dataset interface: deterministic samples by index, and the data-source plugin that builds the
// train/valid/test splits from the [data] section (e.g. plugin "gpt_indexed").
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace tessera {

class ConfigSection;

enum class Split { train = 0, valid = 1, test = 2 };
const char* split_name(Split s);

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::int64_t size() const = 0;
  virtual std::int64_t seq_length() const = 0;
  // Writes seq_length tokens (model input), labels (next tokens) and a loss mask for sample
  // `index` in [0, size()). The same index always gives the same sample.
  virtual void sample(std::int64_t index, std::int32_t* tokens, std::int32_t* labels,
                      float* loss_mask) const = 0;
};

// What the trainer asks of a data source: how many samples each split must supply.
struct DataRequest {
  std::int64_t seq_length = 0;
  std::uint64_t seed = 1234;
  std::int64_t num_samples[3] = {0, 0, 0};  // train, valid, test
  std::int32_t eod_token = 0;
  std::int64_t vocab_size = 0;  // the tokenizer's; a token id at or past it means mismatched data
};

class DataSource {
 public:
  using FactorySignature = std::unique_ptr<DataSource>(const ConfigSection& data, const DataRequest& request);
  virtual ~DataSource() = default;
  // The split's dataset; size() may be 0 when the split has no documents.
  virtual const Dataset& split(Split s) const = 0;
  virtual std::string describe() const = 0;
};

}  // namespace tessera
