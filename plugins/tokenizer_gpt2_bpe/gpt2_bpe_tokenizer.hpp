// GPT-2's byte-level BPE (OpenAI's encoder.py, Hugging Face's GPT2Tokenizer): ids equal theirs.
// The vocab, merges and merge loop are the engine in byte_level_bpe.hpp, shared with hf_tokenizer.
//
// encode: with parse_special_tokens only, split out special tokens (<|endoftext|> and any other
// "<|...|>" entry of the vocab) so they become their ids — by default their text is ordinary text, as
// in OpenAI's encoder and Megatron-LM's GPT2BPETokenizer; pre-tokenise the rest (gpt2_pretokenizer.hpp); map each piece's bytes to
// GPT-2's printable "byte unicode" symbols; then repeatedly merge the adjacent pair of lowest merge
// rank (all its left-to-right occurrences at once) until no pair has a rank. Symbols are vocab ids
// throughout (every GPT-2 merge result is a vocab entry), and pieces seen before come from a cache
// shared by the threads that encode with one tokenizer.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "byte_level_bpe.hpp"
#include "tessera/tokenizer.hpp"

namespace tessera {

class Gpt2BpeTokenizer : public Tokenizer {
 public:
  // vocab_file: vocab.json / encoder.json ({"token": id, ...}); merges_file: merges.txt / vocab.bpe
  // ("a b" per line, an optional leading "#version" line). FormatError naming file and line/what.
  // parse_special_tokens: whether encode() turns special-token text into its id (see above).
  Gpt2BpeTokenizer(const std::string& vocab_file, const std::string& merges_file, bool parse_special_tokens = false);
  ~Gpt2BpeTokenizer() override;

  std::vector<std::int32_t> encode(std::string_view text) const override;
  // Appends to out (avoids a copy per document in preprocess).
  void encode_into(std::string_view text, std::vector<std::int32_t>& out) const;
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int64_t vocab_size() const override { return vocab_size_; }
  std::int32_t eod() const override { return eod_; }
  std::optional<std::int32_t> special_token(std::string_view text) const override;
  std::string name() const override { return "gpt2_bpe"; }
  // The [tokenizer] keys the plugin reads the two files from (gpt2_bpe_plugin.cpp).
  std::vector<std::string> file_keys() const override { return {"vocab_file", "merges_file"}; }

  std::int64_t num_merges() const { return bpe_->num_merges(); }
  // The vocab entry of an id (in GPT-2's byte-unicode spelling, e.g. "Ġthe").
  const std::string& id_to_token(std::int32_t id) const;

 private:
  void encode_ordinary(std::string_view text, std::vector<std::int32_t>& out) const;

  std::string vocab_file_;
  std::unique_ptr<ByteLevelBpe> bpe_;
  std::vector<std::pair<std::string, std::int32_t>> specials_;
  std::int64_t vocab_size_ = 0;
  std::int32_t eod_ = -1;
  bool parse_special_tokens_ = false;
};

}  // namespace tessera
