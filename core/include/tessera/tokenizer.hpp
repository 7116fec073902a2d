// Tokenizer interface that tokenizer plugins implement (kind `tokenizer`; Tessera ships `gpt2_bpe`,
// GPT-2's byte-level BPE, `hf_tokenizer`, Hugging Face tokenizer.json files with a byte-level BPE,
// `sentencepiece`, SentencePiece models through libsentencepiece, `bert_wordpiece`, BERT's WordPiece,
// `byte`, and `null`, Megatron-LM's NullTokenizer, in plugins/). A config chooses one with
// `[tokenizer] plugin = "..."`; the plugin reads and checks its own keys from that section.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tessera {

class ConfigSection;

class Tokenizer {
 public:
  // Throws ConfigError for keys it cannot use, FormatError naming the file for files that do not parse.
  using FactorySignature = std::unique_ptr<Tokenizer>(const ConfigSection& tokenizer);
  virtual ~Tokenizer() = default;
  virtual std::vector<std::int32_t> encode(std::string_view text) const = 0;
  virtual std::string decode(const std::vector<std::int32_t>& ids) const = 0;
  // Number of ids the tokenizer can produce (before padding to a multiple for the model).
  virtual std::int64_t vocab_size() const = 0;
  // End-of-document id (GPT-2: <|endoftext|> = 50256).
  virtual std::int32_t eod() const = 0;
  // Id of a special token by its text, if the tokenizer has it. Whether encode() turns such text in
  // its input into the id is the tokenizer's own option (parse_special_tokens for Tessera's two).
  virtual std::optional<std::int32_t> special_token(std::string_view text) const = 0;
  // The special tokens BERT's and T5's data build samples with (Megatron-LM's tokenizer.cls, sep,
  // mask, pad, bos and eos properties).
  enum class Role { cls, sep, mask, pad, bos, eos };
  // The id of a role, if the tokenizer has it. By default the token of WordPiece's name for it
  // ("[CLS]", "[SEP]", "[MASK]", "[PAD]", "[BOS]", "[EOS]"); a tokenizer whose names differ says so
  // (sentencepiece's Megatron-LM special tokens: <CLS>, …).
  virtual std::optional<std::int32_t> role(Role r) const { return special_token(wordpiece_name(r)); }
  static const char* wordpiece_name(Role r) {
    switch (r) {
      case Role::cls: return "[CLS]";
      case Role::sep: return "[SEP]";
      case Role::mask: return "[MASK]";
      case Role::pad: return "[PAD]";
      case Role::bos: return "[BOS]";
      case Role::eos: return "[EOS]";
    }
    return "";
  }
  virtual std::string name() const = 0;
  // The keys of its [tokenizer] section that name files it read (vocabularies, merges, models): a
  // saved model copies them beside its config (train/saved_model.hpp), so it works after they are gone.
  virtual std::vector<std::string> file_keys() const { return {}; }
};

}  // namespace tessera
