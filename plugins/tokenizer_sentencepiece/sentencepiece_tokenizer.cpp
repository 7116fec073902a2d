// The "sentencepiece" tokenizer plugin: a SentencePiece model (tokenizer.model), encoded and decoded by
// libsentencepiece, as Megatron-LM's SentencePiece tokenizers do. [tokenizer] keys:
// - tokenizer_model (required; Megatron's --tokenizer-model);
// - add_bos (default false: each text encodes to its pieces alone, GPTSentencePieceTokenizer; true:
//   the beginning-of-sentence id first, Llama2Tokenizer's tokenize(s, bos=True));
// - added_special_tokens (default false; true: Megatron-LM's SentencePieceTokenizer, for BERT and T5,
//   see special_tokens.hpp) and vocab_extra_ids (T5's <extra_id_N> sentinels, with it).
// Without added_special_tokens the end-of-document id is the model's eos id (</s>) and the vocabulary
// is the model's pieces. Text the model's pieces do not cover becomes its byte-fallback pieces or
// <unk>, as SentencePiece decides.
#include <sentencepiece_processor.h>

#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "megatron_special_tokens.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/plugin.hpp"
#include "tessera/quote.hpp"
#include "tessera/tokenizer.hpp"

namespace tessera::sentencepiece_tokenizer {

namespace {

struct SentencePieceOptions {
  std::string model, origin;  // tokenizer_model and where it was set
  bool add_bos = false;
  bool added_special_tokens = false;
  std::int64_t vocab_extra_ids = 0;
};

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const SentencePieceOptions& o) : model_(o.model), add_bos_(o.add_bos) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(o.model, ec))
      throw ConfigError(fmt::format("tokenizer.tokenizer_model = {} (in {}) is not a file: give a SentencePiece "
                                    "model (tokenizer.model)",
                                    quote_untrusted(o.model), o.origin));
    const auto status = sp_.Load(o.model);
    if (!status.ok())
      throw FormatError(fmt::format("{}: not a SentencePiece model ({})", o.model, status.ToString()));
    if (o.added_special_tokens) special_.emplace(sp_, o.vocab_extra_ids);
    if (!special_ && sp_.eos_id() < 0)
      throw FormatError(fmt::format("{}: the SentencePiece model has no end-of-sentence piece (eos_id is -1), which "
                                    "Tessera needs as the end-of-document id (or set tokenizer.added_special_tokens = "
                                    "true: <EOD> is added)",
                                    o.model));
    if (add_bos_ && !special_ && sp_.bos_id() < 0)
      throw ConfigError(fmt::format("tokenizer.add_bos = true (in {}), but {} has no beginning-of-sentence piece",
                                    o.origin, o.model));
  }

  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<std::int32_t> out;
    if (add_bos_) out.push_back(special_ ? special_->bos() : sp_.bos_id());
    if (special_) {
      const std::vector<std::int32_t> ids =
          special_->encode(text, [&](std::string_view part, std::vector<std::int32_t>& to) { encode_pieces(part, to); });
      out.insert(out.end(), ids.begin(), ids.end());
    } else {
      encode_pieces(text, out);
    }
    return out;
  }

  std::string decode(const std::vector<std::int32_t>& ids) const override {
    if (special_) return special_->decode(ids, [&](const std::vector<std::int32_t>& part) { return decode_pieces(part); });
    return decode_pieces(ids);
  }

  std::int64_t vocab_size() const override { return special_ ? special_->vocab_size() : sp_.GetPieceSize(); }
  std::int32_t eod() const override { return special_ ? special_->eod() : sp_.eos_id(); }

  // An added special token, or a piece of the model by its text ("<s>", "</s>", a user-defined symbol …).
  std::optional<std::int32_t> special_token(std::string_view text) const override {
    if (special_)
      if (const auto id = special_->find(text)) return id;
    const int id = sp_.PieceToId(text);
    if (id < 0 || sp_.IdToPiece(id) != text) return std::nullopt;  // unknown text maps to <unk>
    return id;
  }

  // With Megatron-LM's special tokens, BERT's and T5's roles are theirs (<CLS>, the model's bos …).
  std::optional<std::int32_t> role(Role r) const override {
    if (!special_) return Tokenizer::role(r);
    switch (r) {
      case Role::cls: return special_->cls();
      case Role::sep: return special_->sep();
      case Role::mask: return special_->mask();
      case Role::pad: return special_->pad();
      case Role::bos: return special_->bos();
      case Role::eos: return special_->eos();
    }
    return std::nullopt;
  }

  std::string name() const override { return "sentencepiece"; }
  std::vector<std::string> file_keys() const override { return {"tokenizer_model"}; }

 private:
  void encode_pieces(std::string_view text, std::vector<std::int32_t>& out) const {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    if (!status.ok()) throw Error(fmt::format("{}: cannot encode the text ({})", model_, status.ToString()));
    out.insert(out.end(), ids.begin(), ids.end());
  }

  std::string decode_pieces(const std::vector<std::int32_t>& ids) const {
    const std::int32_t pieces = sp_.GetPieceSize();
    for (std::int32_t id : ids)
      if (id < 0 || id >= pieces)
        throw Error(fmt::format("{}: cannot decode id {} (the model's ids are 0 … {}{})", model_, id, pieces - 1,
                                special_ ? ", and its added special tokens'" : ""));
    std::string text;
    const auto status = sp_.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
    if (!status.ok()) throw Error(fmt::format("{}: cannot decode ({})", model_, status.ToString()));
    return text;
  }

  sentencepiece::SentencePieceProcessor sp_;
  std::optional<MegatronSpecialTokens> special_;
  std::string model_;
  bool add_bos_;
};

std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const ConfigSection& s) {
  SentencePieceOptions o;
  o.add_bos = s.get_bool("add_bos", false);
  o.added_special_tokens = s.get_bool("added_special_tokens", false);
  o.vocab_extra_ids = s.get_int("vocab_extra_ids", 0, 0, 1'000'000);
  if (o.vocab_extra_ids > 0 && !o.added_special_tokens)
    throw ConfigError(fmt::format("tokenizer.vocab_extra_ids = {} (in {}) adds T5's sentinels to Megatron-LM's special "
                                  "tokens: set tokenizer.added_special_tokens = true too (Megatron's "
                                  "SentencePieceTokenizer; GPTSentencePieceTokenizer takes none)",
                                  o.vocab_extra_ids, s.origin("vocab_extra_ids")));
  o.model = s.get_string("tokenizer_model", "");
  o.origin = s.origin("tokenizer_model");
  if (o.model.empty())
    throw ConfigError(fmt::format("tokenizer plugin 'sentencepiece' needs tokenizer.tokenizer_model (in {}): a "
                                  "SentencePiece model file, as Megatron-LM's --tokenizer-model",
                                  o.origin));
  return std::make_unique<SentencePieceTokenizer>(o);
}

}  // namespace
}  // namespace tessera::sentencepiece_tokenizer

TESSERA_PLUGIN(tokenizer, sentencepiece, tessera::sentencepiece_tokenizer::make_sentencepiece_tokenizer)
