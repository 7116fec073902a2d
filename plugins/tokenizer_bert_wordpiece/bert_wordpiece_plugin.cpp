// The "bert_wordpiece" tokenizer plugin: BERT's WordPiece with a vocab.txt, as Megatron-LM's
// BertWordPieceLowerCase (lower_case = true, the default) and BertWordPieceCase (lower_case = false).
// [tokenizer] keys: vocab_file (required), lower_case, strip_accents (default: lower_case, as Hugging
// Face's BertTokenizer; Megatron always strips with lower-casing), vocab_extra_ids (T5 sentinels,
// Megatron's --vocab-extra-ids) and parse_special_tokens (default false, as Megatron).
#include "bert_wordpiece_tokenizer.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/plugin.hpp"

namespace tessera {

namespace {

std::unique_ptr<Tokenizer> make_bert_wordpiece(const ConfigSection& s) {
  const std::string vocab = s.get_string("vocab_file", "");
  BertWordPieceOptions o;
  o.lower_case = s.get_bool("lower_case", true);
  o.strip_accents = s.get_bool("strip_accents", o.lower_case);
  o.vocab_extra_ids = s.get_int("vocab_extra_ids", 0, 0, 1'000'000);
  o.parse_special_tokens = s.get_bool("parse_special_tokens", false);
  if (vocab.empty())
    throw ConfigError(fmt::format("[tokenizer] in {} needs vocab_file (a BERT vocab.txt: one token per line)",
                                  s.origin("vocab_file")));
  return std::make_unique<BertWordPieceTokenizer>(vocab, o);
}

}  // namespace
}  // namespace tessera

TESSERA_PLUGIN(tokenizer, bert_wordpiece, tessera::make_bert_wordpiece)
