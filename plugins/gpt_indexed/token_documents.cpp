#include "token_documents.hpp"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "tessera/data/numpy_default_rng.hpp"
#include "tessera/error.hpp"

namespace tessera::gpt_indexed {

namespace {

class IndexedDocuments final : public TokenDocuments {
 public:
  explicit IndexedDocuments(std::shared_ptr<const IndexedDataset> data) : data_(std::move(data)) {
    if (!data_) throw Error("GPT dataset: no indexed dataset");
  }
  std::int64_t num_sequences() const override { return data_->num_sequences(); }
  std::int32_t sequence_length(std::int64_t i) const override { return data_->sequence_length(i); }
  std::vector<std::int32_t> sizes() const override { return data_->sizes(); }
  void read(std::int64_t i, std::int64_t offset, std::int64_t length, std::int32_t* out) const override {
    data_->read(i, offset, length, out);
  }
  const std::string& name() const override { return data_->idx_path(); }
  const std::string& tokens_name() const override { return data_->bin_path(); }
  std::string cache_prefix() const override {
    const std::string& idx = data_->idx_path();
    return idx.substr(0, idx.size() - 4);  // "<prefix>.idx"
  }

 private:
  std::shared_ptr<const IndexedDataset> data_;
};

class MockDocuments final : public TokenDocuments {
 public:
  explicit MockDocuments(std::int32_t eod)
      : lengths_(NumpyDefaultRng(0).integers_int32(1, kMockMaxLength, kMockDocuments)), eod_(eod) {}
  std::int64_t num_sequences() const override { return kMockDocuments; }
  std::int32_t sequence_length(std::int64_t i) const override { return lengths_.at(static_cast<std::size_t>(i)); }
  std::vector<std::int32_t> sizes() const override { return lengths_; }
  void read(std::int64_t i, std::int64_t offset, std::int64_t length, std::int32_t* out) const override {
    const std::int32_t n = sequence_length(i);
    if (offset < 0 || length < 0 || offset + length > n)
      throw Error(fmt::format("mock data: tokens [{}, {}) of document {} (of {} tokens)", offset, offset + length, i, n));
    // Token t < n − 1 is t + 1; the last is the eod.
    for (std::int64_t t = offset; t < offset + length; ++t)
      out[t - offset] = t == n - 1 ? eod_ : static_cast<std::int32_t>(t + 1);
  }
  const std::string& name() const override { return name_; }
  std::string cache_prefix() const override { return ""; }  // made up in microseconds: never cached, as Megatron

 private:
  std::vector<std::int32_t> lengths_;
  std::int32_t eod_;
  std::string name_ = "mock data";
};

}  // namespace

std::shared_ptr<const TokenDocuments> indexed_documents(std::shared_ptr<const IndexedDataset> data) {
  return std::make_shared<IndexedDocuments>(std::move(data));
}

std::shared_ptr<const TokenDocuments> mock_documents(std::int32_t eod) { return std::make_shared<MockDocuments>(eod); }

}  // namespace tessera::gpt_indexed
