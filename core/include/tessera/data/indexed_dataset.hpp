// Megatron-LM's indexed dataset ("mmap", MMIDIDX): tokens in <prefix>.bin, index in <prefix>.idx.
// Byte-compatible both ways, so data preprocessed by Megatron-LM loads here and ours loads there.
//
// .idx layout (little-endian, no padding; see docs/reference megatron-lm-facts.md):
//   magic "MMIDIDX\0\0" (9) | version u64 = 1 | dtype code u8 | N u64 | D u64 |
//   sizes int32[N] | pointers int64[N] (byte offsets into .bin) | doc_idx int64[D]
// A document is one or more sequences: doc_idx[k]..doc_idx[k+1] are document k's sequences.
// Megatron's GPT dataset treats each *sequence* as a document (preprocess writes one per document).
//
// The reader memory-maps both files and never reads .bin whole; it validates the index once at
// open (O(N + D)) so that a corrupt or mismatched pair fails there with a FormatError naming the
// file, rather than later as a crash or as silently wrong tokens.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace tessera {

// Megatron's dtype codes. 6 and 7 (float32/float64 in the original code, swapped in NVIDIA's newest)
// never hold tokens and are ambiguous across versions, so the reader rejects them.
enum class IndexDtype : std::uint8_t { u8 = 1, i8 = 2, i16 = 3, i32 = 4, i64 = 5, f32 = 6, f64 = 7, u16 = 8 };

std::size_t index_dtype_size(IndexDtype t);
const char* index_dtype_name(IndexDtype t);
// Megatron's rule: uint16 when the vocabulary is under 65,500 ids, else int32.
IndexDtype index_dtype_for_vocab(std::int64_t vocab_size);

// One sequence's tokens as stored in .bin (pointer into the mapping, valid while the dataset lives).
struct SequenceView {
  const void* data = nullptr;
  std::int64_t length = 0;  // tokens
  IndexDtype dtype = IndexDtype::u16;
  // The tokens typed; throws tessera::Error if T does not match the stored dtype.
  template <typename T> std::span<const T> as() const;
};

class IndexedDataset {
 public:
  static constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
  static constexpr std::uint64_t kVersion = 1;
  static constexpr std::size_t kHeaderBytes = 34;

  // Opens <prefix>.idx and <prefix>.bin; throws FormatError naming the file and what is wrong.
  explicit IndexedDataset(const std::string& prefix);
  ~IndexedDataset();
  IndexedDataset(const IndexedDataset&) = delete;
  IndexedDataset& operator=(const IndexedDataset&) = delete;

  std::int64_t num_sequences() const { return num_sequences_; }
  // Number of documents = doc_idx entries − 1.
  std::int64_t num_documents() const { return num_doc_idx_ - 1; }
  IndexDtype dtype() const { return dtype_; }
  std::int64_t total_tokens() const { return total_tokens_; }

  std::int32_t sequence_length(std::int64_t i) const;   // sizes[i]
  std::int64_t sequence_pointer(std::int64_t i) const;  // pointers[i], bytes into .bin
  std::int64_t document_index(std::int64_t k) const;    // doc_idx[k], k in [0, num_documents()]
  std::vector<std::int64_t> document_index() const;     // the whole doc_idx, copied
  std::vector<std::int32_t> sizes() const;              // all sizes, copied

  SequenceView sequence(std::int64_t i) const;
  // Tokens [offset, offset + length) of sequence i converted to int32 into out.
  void read(std::int64_t i, std::int64_t offset, std::int64_t length, std::int32_t* out) const;
  std::vector<std::int32_t> sequence_int32(std::int64_t i) const;

  const std::string& idx_path() const { return idx_path_; }
  const std::string& bin_path() const { return bin_path_; }

 private:
  struct Mapping;
  void validate();
  void check_index(std::int64_t i) const;

  std::string idx_path_, bin_path_;
  std::unique_ptr<Mapping> idx_, bin_;
  IndexDtype dtype_ = IndexDtype::u16;
  std::int64_t num_sequences_ = 0, num_doc_idx_ = 0, total_tokens_ = 0;
  const unsigned char* sizes_ = nullptr;     // int32[N], possibly unaligned
  const unsigned char* pointers_ = nullptr;  // int64[N], unaligned
  const unsigned char* doc_idx_ = nullptr;   // int64[D], unaligned
};

// Writes tokens as sequences arrive and the index at finalize(), like Megatron's
// MMapIndexedDatasetBuilder, but both into temporary files beside <prefix> (<prefix>.bin.tmp.<pid>.<n>)
// that finalize() renames into place: an existing <prefix>.bin/.idx is replaced, never truncated, so
// a reader that has the old files mapped keeps valid files, and a writer that fails or is destroyed
// without finalize() removes its temporaries and leaves an existing dataset as it was.
class IndexedDatasetWriter {
 public:
  IndexedDatasetWriter(const std::string& prefix, IndexDtype dtype);
  ~IndexedDatasetWriter();
  IndexedDatasetWriter(const IndexedDatasetWriter&) = delete;
  IndexedDatasetWriter& operator=(const IndexedDatasetWriter&) = delete;

  // Appends one sequence; throws tessera::Error if a token does not fit the dtype.
  void add_sequence(std::span<const std::int32_t> tokens);
  // Closes the current document (appends the current sequence count to doc_idx).
  void end_document();
  // add_sequence + end_document.
  void add_document(std::span<const std::int32_t> tokens);
  // Appends another dataset as Megatron's merge_file_ does: its sizes, its doc_idx[1:] shifted by
  // our sequence count, its .bin bytes. Dtypes must match (FormatError otherwise).
  void merge(const std::string& other_prefix);
  // Writes the index, then replaces <prefix>.idx and <prefix>.bin by the new files. Idempotent.
  void finalize();

  std::int64_t num_sequences() const { return static_cast<std::int64_t>(sizes_.size()); }
  std::int64_t num_documents() const { return static_cast<std::int64_t>(doc_idx_.size()) - 1; }
  std::int64_t bytes_written() const { return bin_bytes_; }

 private:
  void discard();  // removes the temporary .bin

  std::string prefix_;
  IndexDtype dtype_;
  std::FILE* bin_ = nullptr;
  std::string bin_tmp_;  // the .bin being written, until finalize() renames it
  std::vector<std::int32_t> sizes_;
  std::vector<std::int64_t> doc_idx_{0};
  std::vector<unsigned char> buffer_;
  std::int64_t bin_bytes_ = 0;
  bool finalized_ = false;
};

// Concatenates datasets (same dtype) into <output_prefix>, documents in the given order.
void merge_indexed_datasets(const std::vector<std::string>& input_prefixes, const std::string& output_prefix);

}  // namespace tessera
