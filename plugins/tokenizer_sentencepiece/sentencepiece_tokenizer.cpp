// The "sentencepiece" tokenizer plugin: a SentencePiece model (tokenizer.model), encoded and decoded by
// libsentencepiece, as Megatron-LM's GPTSentencePieceTokenizer and Llama2Tokenizer do. [tokenizer]
// keys: tokenizer_model (required; Megatron's --tokenizer-model) and add_bos (default false: each
// text encodes to its pieces alone, GPTSentencePieceTokenizer; true: the beginning-of-sentence id
// first, Llama2Tokenizer's tokenize(s, bos=True)). The end-of-document id is the model's eos id
// (</s>); the vocabulary is the model's pieces. Text the model's pieces do not cover becomes its
// byte-fallback pieces or <unk>, as SentencePiece decides.
#include <sentencepiece_processor.h>

#include <filesystem>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/plugin.hpp"
#include "tessera/quote.hpp"
#include "tessera/tokenizer.hpp"

namespace tessera::sentencepiece_tokenizer {

namespace {

class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& model, const std::string& origin, bool add_bos)
      : model_(model), add_bos_(add_bos) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(model, ec))
      throw ConfigError(fmt::format("tokenizer.tokenizer_model = {} (in {}) is not a file: give a SentencePiece "
                                    "model (tokenizer.model)",
                                    quote_untrusted(model), origin));
    const auto status = sp_.Load(model);
    if (!status.ok())
      throw FormatError(fmt::format("{}: not a SentencePiece model ({})", model, status.ToString()));
    if (sp_.eos_id() < 0)
      throw FormatError(fmt::format("{}: the SentencePiece model has no end-of-sentence piece (eos_id is -1), which "
                                    "Tessera needs as the end-of-document id",
                                    model));
    if (add_bos_ && sp_.bos_id() < 0)
      throw ConfigError(fmt::format("tokenizer.add_bos = true (in {}), but {} has no beginning-of-sentence piece",
                                    origin, model));
  }

  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    if (!status.ok()) throw Error(fmt::format("{}: cannot encode the text ({})", model_, status.ToString()));
    std::vector<std::int32_t> out;
    out.reserve(ids.size() + 1);
    if (add_bos_) out.push_back(sp_.bos_id());
    out.insert(out.end(), ids.begin(), ids.end());
    return out;
  }

  std::string decode(const std::vector<std::int32_t>& ids) const override {
    const std::int32_t pieces = sp_.GetPieceSize();
    for (std::int32_t id : ids)
      if (id < 0 || id >= pieces)
        throw Error(fmt::format("{}: cannot decode id {} (the model's ids are 0 … {})", model_, id, pieces - 1));
    std::string text;
    const auto status = sp_.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
    if (!status.ok()) throw Error(fmt::format("{}: cannot decode ({})", model_, status.ToString()));
    return text;
  }

  std::int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  std::int32_t eod() const override { return sp_.eos_id(); }

  // A piece of the model by its text ("<s>", "</s>", a user-defined symbol …).
  std::optional<std::int32_t> special_token(std::string_view text) const override {
    const int id = sp_.PieceToId(text);
    if (id < 0 || sp_.IdToPiece(id) != text) return std::nullopt;  // unknown text maps to <unk>
    return id;
  }

  std::string name() const override { return "sentencepiece"; }
  std::vector<std::string> file_keys() const override { return {"tokenizer_model"}; }

 private:
  sentencepiece::SentencePieceProcessor sp_;
  std::string model_;
  bool add_bos_;
};

std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const ConfigSection& s) {
  const bool add_bos = s.get_bool("add_bos", false);
  const std::string model = s.get_string("tokenizer_model", "");
  if (model.empty())
    throw ConfigError(fmt::format("tokenizer plugin 'sentencepiece' needs tokenizer.tokenizer_model (in {}): a "
                                  "SentencePiece model file, as Megatron-LM's --tokenizer-model",
                                  s.origin("tokenizer_model")));
  return std::make_unique<SentencePieceTokenizer>(model, s.origin("tokenizer_model"), add_bos);
}

}  // namespace
}  // namespace tessera::sentencepiece_tokenizer

TESSERA_PLUGIN(tokenizer, sentencepiece, tessera::sentencepiece_tokenizer::make_sentencepiece_tokenizer)
