// The byte-level BPE engine that GPT-2's tokenizer (gpt2_bpe) and Hugging Face tokenizer.json files
// (hf_tokenizer, plugins/tokenizer_hf) share: GPT-2's byte <-> "byte unicode" symbol table, the vocab
// (id <-> entry, and the bytes each id decodes to), the merge table and the merge loop with its cache.
// Each plugin reads its own file format into it and reports errors in its own terms (file, line or
// JSON path); the engine itself never reads a file.
//
// bpe(): maps a pre-token's bytes to the ids of their 256 byte symbols, then repeatedly merges the
// adjacent pair of lowest merge rank (all its left-to-right occurrences at once, as OpenAI's
// encoder.py; Hugging Face's merge queue gives the same result) until no pair has a rank, with a heap
// of pairs so that a long piece costs O(n log n), not O(n x merges). Symbols are
// vocab ids throughout (every merge result must be a vocab entry), and pieces seen before come from a
// bounded cache shared by the threads that encode with one tokenizer.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tessera {

// GPT-2's bytes_to_unicode(): the printable code point each byte is spelled with in the vocab.
std::array<char32_t, 256> gpt2_byte_to_unicode();

// The bytes a vocab entry stands for: each of its characters mapped back through the byte table, or
// the entry's own UTF-8 when some character is outside that alphabet (as Hugging Face's ByteLevel
// decoder does, e.g. for added tokens written in plain text).
std::string byte_level_symbols_to_bytes(std::string_view entry);

// A {"token": id, ...} JSON object checked and laid out by id: entries[id] (empty where no entry has
// that id). `what` starts every FormatError ("vocab.json", "tokenizer.json: model.vocab"): a value that
// is not a non-negative integer, an id far beyond the number of entries (a corrupt file must not size
// a table of gigabytes), or an id given twice.
struct VocabTable {
  std::vector<std::string> entries;
  std::unordered_map<std::string, std::int32_t> id_of;
};
VocabTable read_vocab_object(const nlohmann::json& vocab, const std::string& what);

class ByteLevelBpe {
 public:
  // FormatError "<what>: no entry for byte 0xNN (symbol ...); not a byte-level BPE vocab" when one of
  // the 256 byte symbols is missing.
  ByteLevelBpe(VocabTable vocab, const std::string& what);
  ~ByteLevelBpe();
  ByteLevelBpe(const ByteLevelBpe&) = delete;
  ByteLevelBpe& operator=(const ByteLevelBpe&) = delete;

  // Adds the merge (left, right) -> left+right at `rank` (a repeated pair keeps its last rank, as
  // Python's dict and Hugging Face's HashMap). Returns the symbol that is not in the vocab, if one is
  // not (left, right or their concatenation); the caller names it in its own terms.
  std::optional<std::string> add_merge(std::string_view left, std::string_view right, std::int32_t rank);
  void reserve_merges(std::size_t n);

  // Appends the ids of one pre-token (raw bytes, any content) to out.
  void bpe(std::string_view piece, std::vector<std::int32_t>& out) const;

  std::optional<std::int32_t> find(std::string_view entry) const;
  // Number of id slots (largest vocab id + 1).
  std::int64_t size() const { return static_cast<std::int64_t>(entries_.size()); }
  bool has_id(std::int32_t id) const {
    return id >= 0 && id < size() && !entries_[static_cast<std::size_t>(id)].empty();
  }
  const std::string& entry(std::int32_t id) const { return entries_[static_cast<std::size_t>(id)]; }
  const std::string& bytes_of(std::int32_t id) const { return bytes_of_id_[static_cast<std::size_t>(id)]; }
  std::int64_t num_merges() const { return static_cast<std::int64_t>(merges_.size()); }

 private:
  struct Cache;
  std::vector<std::string> entries_;      // id -> vocab entry
  std::vector<std::string> bytes_of_id_;  // id -> the bytes it decodes to
  std::unordered_map<std::string, std::int32_t> id_of_;
  std::array<std::int32_t, 256> byte_id_{};
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<std::uint64_t, std::pair<std::int32_t, std::int32_t>> merges_;
  std::unique_ptr<Cache> cache_;
};

}  // namespace tessera
