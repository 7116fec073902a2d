// Megatron-LM's SentencePieceTokenizer (megatron/training/tokenizer/tokenizer.py,
// _SentencePieceTokenizer, after NeMo's): the special tokens BERT and T5 need, added to a
// SentencePiece model's pieces. In order: <CLS>, <SEP>, <EOD>, <MASK>, the model's pad, bos and eos
// pieces (<PAD>, <BOS>, <EOS> where the model has none), then vocab_extra_ids sentinels <extra_id_0>,
// <extra_id_1>, … (T5). A token the model already has as a piece keeps its id; each other one takes
// the next id after the pieces and those added before it.
//
// Encoding finds them in the text — the earliest first; of two found at one place (a token that
// begins another), the one added first, as in Megatron-LM — and encodes the text between them with
// the model. Decoding writes the text before each special token, a space, the token's text and a
// space.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace tessera::sentencepiece_tokenizer {

class MegatronSpecialTokens {
 public:
  MegatronSpecialTokens(const sentencepiece::SentencePieceProcessor& sp, std::int64_t vocab_extra_ids);

  std::int64_t vocab_size() const { return vocab_size_; }  // the model's pieces and the tokens added
  std::int32_t cls() const { return cls_; }
  std::int32_t sep() const { return sep_; }
  std::int32_t eod() const { return eod_; }
  std::int32_t mask() const { return mask_; }
  std::int32_t pad() const { return pad_; }
  std::int32_t bos() const { return bos_; }
  std::int32_t eos() const { return eos_; }
  // The id of a special token by its text.
  std::optional<std::int32_t> find(std::string_view text) const;

  using EncodePieces = std::function<void(std::string_view text, std::vector<std::int32_t>& out)>;
  using DecodePieces = std::function<std::string(const std::vector<std::int32_t>& ids)>;
  std::vector<std::int32_t> encode(std::string_view text, const EncodePieces& encode_pieces) const;
  std::string decode(const std::vector<std::int32_t>& ids, const DecodePieces& decode_pieces) const;

 private:
  std::int32_t add(const sentencepiece::SentencePieceProcessor& sp, const std::string& text);

  struct Token {
    std::string text;
    std::int32_t id;
  };
  std::vector<Token> tokens_;                   // in the order added (encode's tie-break)
  std::map<std::int32_t, std::string> by_id_;   // decode's text of each id (the last token given it)
  std::int64_t vocab_size_ = 0;
  std::int32_t cls_ = -1, sep_ = -1, eod_ = -1, mask_ = -1, pad_ = -1, bos_ = -1, eos_ = -1;
};

}  // namespace tessera::sentencepiece_tokenizer
