// What GptDataset samples from: documents of token ids by index — an indexed dataset's (.bin/.idx),
// or Megatron-Core's mock corpus (--mock-data), made up on the fly.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tessera/data/indexed_dataset.hpp"

namespace tessera::gpt_indexed {

class TokenDocuments {
 public:
  virtual ~TokenDocuments() = default;
  virtual std::int64_t num_sequences() const = 0;
  virtual std::int32_t sequence_length(std::int64_t i) const = 0;
  virtual std::vector<std::int32_t> sizes() const = 0;  // every sequence_length
  // Tokens [offset, offset + length) of sequence i.
  virtual void read(std::int64_t i, std::int64_t offset, std::int64_t length, std::int32_t* out) const = 0;
  // What messages call it ("<prefix>.idx", "mock data"), and where its tokens are ("<prefix>.bin").
  virtual const std::string& name() const = 0;
  virtual const std::string& tokens_name() const { return name(); }
  // The prefix the index caches of its samples are named after; empty: none are written.
  virtual std::string cache_prefix() const = 0;
};

// An indexed dataset's sequences.
std::shared_ptr<const TokenDocuments> indexed_documents(std::shared_ptr<const IndexedDataset> data);

// Megatron-Core's MockGPTLowLevelDataset: kMockDocuments documents, document i of length
// L_i = numpy.random.default_rng(0).integers(1, 4096, kMockDocuments, int32)[i] holding the ids
// 1, 2, …, L_i − 1 and then the end-of-document id `eod`.
inline constexpr std::int64_t kMockDocuments = 100000;
inline constexpr std::int32_t kMockMaxLength = 4096;
std::shared_ptr<const TokenDocuments> mock_documents(std::int32_t eod);

}  // namespace tessera::gpt_indexed
