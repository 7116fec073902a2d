// Tokenizer interface and the built-in tokenizers: GPT-2 byte-level BPE (vocab.json + merges.txt,
// or GPT-2's original encoder.json + vocab.bpe) and a byte-level tokenizer (ids 0..255, then EOD).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tessera {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<std::int32_t> encode(std::string_view text) const = 0;
  virtual std::string decode(const std::vector<std::int32_t>& ids) const = 0;
  // Number of ids the tokenizer can produce (before padding to a multiple for the model).
  virtual std::int64_t vocab_size() const = 0;
  // End-of-document id (GPT-2: <|endoftext|> = 50256).
  virtual std::int32_t eod() const = 0;
  // Id of a special token by its text, if the tokenizer has it. Whether encode() turns such text in
  // its input into the id is the tokenizer's parse_special_tokens option (off by default).
  virtual std::optional<std::int32_t> special_token(std::string_view text) const = 0;
  virtual std::string name() const = 0;
};

// What [tokenizer] in a config (or `tessera preprocess --tokenizer ...`) asks for.
struct TokenizerOptions {
  std::string type = "gpt2_bpe";  // "gpt2_bpe" | "byte"
  std::string vocab_file;         // vocab.json / encoder.json (gpt2_bpe)
  std::string merges_file;        // merges.txt / vocab.bpe (gpt2_bpe)
  // false (default, as Megatron-LM's GPT2BPETokenizer and OpenAI's encoder): a special token's text in
  // the input ("<|endoftext|>") is encoded as ordinary text. true: it becomes the special token's id
  // (so text can mark document ends itself).
  bool parse_special_tokens = false;
};
// Throws ConfigError for an unknown type, FormatError naming the file for files that do not parse.
std::unique_ptr<Tokenizer> make_tokenizer(const TokenizerOptions& options);

}  // namespace tessera
