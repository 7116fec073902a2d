// What the BERT and T5 samples need from the run's tokenizer: the special ids ([CLS] [SEP] [MASK]
// [PAD], [BOS] [EOS], the sentinels <extra_id_N>) and, for whole-word masking, which ids are
// WordPiece continuations ("##ing"). Missing ones are a ConfigError naming the tokenizer and token.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tessera {
class Tokenizer;
}

namespace tessera::bert_t5_indexed {

struct BertTokenIds {
  std::int32_t cls = -1, sep = -1, mask = -1, pad = -1;
  std::int64_t vocab_size = 0;
};

struct T5TokenIds {
  std::int32_t pad = -1, bos = -1, eos = -1;
  std::int32_t cls = -1, sep = -1;  // -1 when the tokenizer has none: masking then skips no token
  std::vector<std::int32_t> sentinels;  // <extra_id_0>, <extra_id_1>, … in that order
  std::int64_t vocab_size = 0;
};

// plugin: "data plugin 'bert_indexed'" for messages. tokenizer may be null (an error saying so).
BertTokenIds bert_token_ids(const Tokenizer* tokenizer, const std::string& plugin);
// Needs at least `sentinels_needed` sentinels (one per masked span, so the most spans a sample can
// have); takes every consecutive <extra_id_N> the tokenizer has.
T5TokenIds t5_token_ids(const Tokenizer* tokenizer, std::int64_t sentinels_needed, const std::string& plugin);

// continuation[id] = 1 when id's text starts with "##" (is_start_piece is false in Megatron).
//
// The Tokenizer interface has no id → token-text call, so this asks decode({id}) and relies on a
// WordPiece tokenizer keeping "##" when decoding a lone continuation piece (as BERT's
// convert_tokens_to_string, " ".join(pieces).replace(" ##", ""), does). An id whose decode throws
// counts as a word start.
std::vector<std::uint8_t> continuation_pieces(const Tokenizer& tokenizer);

}  // namespace tessera::bert_t5_indexed
