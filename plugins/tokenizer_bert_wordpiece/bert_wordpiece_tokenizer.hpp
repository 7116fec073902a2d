// BERT's WordPiece tokenizer as Megatron-LM's _BertWordPieceTokenizer builds it (BertWordPieceLowerCase /
// BertWordPieceCase): ids equal those of Google's tokenization.py FullTokenizer on the same vocab.txt.
//
// encode: BERT's basic tokenization (bert_basic_tokenizer.hpp), then per word greedy longest-match-
// first WordPiece: the longest vocab entry that prefixes the rest of the word, spelled "##piece" after
// the word's first piece; a word with a rest no entry matches, or of more than 200 characters, is one
// [UNK]. Special-token text ("[MASK]") in the input is ordinary text, as in Megatron, unless
// parse_special_tokens.
//
// Ids: vocab.txt's line numbers (one token per line, surrounding white space stripped); then, as
// Megatron appends them, [BOS] and [EOS] (unless the vocab has them) and <extra_id_0> ..
// <extra_id_{N-1}> (vocab_extra_ids, T5's sentinels). [PAD] [UNK] [CLS] [SEP] [MASK] must be in the
// vocab. Megatron's BERT tokenizer has no end-of-document token; eod() here is [SEP].
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "bert_basic_tokenizer.hpp"
#include "tessera/tokenizer.hpp"

namespace tessera {

struct BertWordPieceOptions {
  bool lower_case = true;
  bool strip_accents = true;
  std::int64_t vocab_extra_ids = 0;
  bool parse_special_tokens = false;
};

class BertWordPieceTokenizer : public Tokenizer {
 public:
  static constexpr std::size_t kMaxWordChars = 200;  // BERT's max_input_chars_per_word

  // FormatError naming the file (and line) for a vocab that cannot be read, is not UTF-8, repeats a
  // token or lacks one of [PAD] [UNK] [CLS] [SEP] [MASK].
  BertWordPieceTokenizer(const std::string& vocab_file, const BertWordPieceOptions& options);

  std::vector<std::int32_t> encode(std::string_view text) const override;
  // Megatron's decode (convert_tokens_to_string): pieces joined by spaces, " ##" removed, and its
  // clean-up of English spacing (" ." -> ".", " n't" -> "n't", ...).
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(tokens_.size()); }
  std::int32_t eod() const override { return sep_; }
  // [PAD] [UNK] [CLS] [SEP] [MASK] [BOS] [EOS] and <extra_id_N>.
  std::optional<std::int32_t> special_token(std::string_view text) const override;
  std::string name() const override { return "bert_wordpiece"; }
  std::vector<std::string> file_keys() const override { return {"vocab_file"}; }

  // The WordPiece tokens of `text` ("un", "##aff", "##able"), as FullTokenizer.tokenize returns them.
  std::vector<std::string> tokenize(std::string_view text) const;
  // A token's text as the vocab spells it ("##able"); Error for an id outside the vocabulary.
  const std::string& id_to_token(std::int32_t id) const;
  std::int32_t cls() const { return cls_; }
  std::int32_t sep() const { return sep_; }
  std::int32_t pad() const { return pad_; }
  std::int32_t mask() const { return mask_; }
  std::int32_t unk() const { return unk_; }
  std::int32_t bos() const { return bos_; }
  std::int32_t eos() const { return eos_; }
  std::int64_t vocab_extra_ids() const { return options_.vocab_extra_ids; }
  // Lines of vocab.txt (ids below this come from the file).
  std::int64_t file_vocab_size() const { return file_vocab_size_; }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::int32_t id_of(std::string_view token) const;  // -1 when absent
  std::int32_t add_token(const std::string& token);  // Megatron's add_token: only if absent
  void encode_ordinary(std::string_view text, std::vector<std::int32_t>& ids) const;
  void wordpiece(const std::u32string& word, std::vector<std::int32_t>& ids) const;

  std::string vocab_file_;
  BertWordPieceOptions options_;
  std::vector<std::string> tokens_;  // id -> token
  std::unordered_map<std::string, std::int32_t, Hash, std::equal_to<>> ids_;
  std::size_t max_piece_chars_ = 0;  // longest entry in code points ("##" not counted)
  std::int64_t file_vocab_size_ = 0;
  std::int32_t pad_ = -1, unk_ = -1, cls_ = -1, sep_ = -1, mask_ = -1, bos_ = -1, eos_ = -1;
  // For special_token and parse_special_tokens: each is "[...]" or "<...>" without a bracket inside.
  std::unordered_map<std::string, std::int32_t, Hash, std::equal_to<>> specials_;
};

}  // namespace tessera
