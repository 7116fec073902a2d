#include "vocabulary.hpp"

#include <algorithm>

#include "tessera/error.hpp"
#include "tessera/tokenizer.hpp"

namespace tessera::bert_t5_indexed {

namespace {

const Tokenizer& need_tokenizer(const Tokenizer* t, const std::string& plugin) {
  if (!t) throw ConfigError(plugin + " needs the run's tokenizer (for its special tokens); none was given");
  return *t;
}

using Role = Tokenizer::Role;

std::int32_t need_token(const Tokenizer& t, Role role, const std::string& plugin, const std::string& why) {
  const std::string token = Tokenizer::wordpiece_name(role);
  const auto id = t.role(role);
  if (!id)
    throw ConfigError(fmt::format("{}: tokenizer '{}' has no {} token, which {}; use a WordPiece vocabulary that has "
                                  "it (tokenizer plugin 'bert_wordpiece'), or a SentencePiece model with Megatron-LM's "
                                  "special tokens (plugin 'sentencepiece', added_special_tokens = true)",
                                  plugin, t.name(), token, why));
  if (*id < 0 || *id >= t.vocab_size())
    throw ConfigError(fmt::format("{}: tokenizer '{}' gives {} the id {}, outside its vocabulary of {}", plugin,
                                  t.name(), token, *id, t.vocab_size()));
  return *id;
}

std::int32_t optional_token(const Tokenizer& t, Role role) {
  const auto id = t.role(role);
  return id ? *id : -1;
}

}  // namespace

BertTokenIds bert_token_ids(const Tokenizer* tokenizer, const std::string& plugin) {
  const Tokenizer& t = need_tokenizer(tokenizer, plugin);
  BertTokenIds ids;
  ids.cls = need_token(t, Role::cls, plugin, "starts every BERT sample");
  ids.sep = need_token(t, Role::sep, plugin, "ends each BERT segment");
  ids.mask = need_token(t, Role::mask, plugin, "replaces masked tokens");
  ids.pad = need_token(t, Role::pad, plugin, "pads samples to seq_length");
  ids.vocab_size = t.vocab_size();
  return ids;
}

T5TokenIds t5_token_ids(const Tokenizer* tokenizer, std::int64_t sentinels_needed, const std::string& plugin) {
  const Tokenizer& t = need_tokenizer(tokenizer, plugin);
  T5TokenIds ids;
  ids.pad = need_token(t, Role::pad, plugin, "pads samples to their lengths");
  ids.bos = need_token(t, Role::bos, plugin, "starts every T5 decoder input (Megatron's bos_token_id)");
  ids.eos = need_token(t, Role::eos, plugin, "ends every T5 target (Megatron's eos_token_id)");
  ids.cls = optional_token(t, Role::cls);
  ids.sep = optional_token(t, Role::sep);
  ids.vocab_size = t.vocab_size();
  for (std::int64_t n = 0;; ++n) {
    const auto id = t.special_token(fmt::format("<extra_id_{}>", n));
    if (!id) break;
    ids.sentinels.push_back(*id);
  }
  if (static_cast<std::int64_t>(ids.sentinels.size()) < sentinels_needed)
    throw ConfigError(fmt::format(
        "{}: tokenizer '{}' has {} sentinel tokens (<extra_id_0> … ) but a sample can have {} masked spans, each "
        "replaced by its own sentinel: <extra_id_{}> is missing. Give the tokenizer more (vocab_extra_ids = {}{}), or "
        "lower data.masked_lm_prob or the encoder's seq_length (Megatron-LM does not check this bound at start; its "
        "samples rarely reach it)",
        plugin, t.name(), ids.sentinels.size(), sentinels_needed, ids.sentinels.size(),
        std::max<std::int64_t>(sentinels_needed, 100), sentinels_needed <= 100 ? ", Megatron's default" : ""));
  return ids;
}

std::vector<std::uint8_t> continuation_pieces(const Tokenizer& tokenizer) {
  const std::int64_t n = tokenizer.vocab_size();
  std::vector<std::uint8_t> out(static_cast<std::size_t>(std::max<std::int64_t>(n, 0)), 0);
  for (std::int64_t id = 0; id < n; ++id) {
    try {
      const std::string text = tokenizer.decode({static_cast<std::int32_t>(id)});
      out[static_cast<std::size_t>(id)] = text.size() >= 2 && text[0] == '#' && text[1] == '#';
    } catch (const std::exception&) {
      // an id without text (e.g. a reserved one) starts a word
    }
  }
  return out;
}

}  // namespace tessera::bert_t5_indexed
