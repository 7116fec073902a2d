#include "tessera/error.hpp"
#include "tessera/tokenizer.hpp"
#include "tessera/tokenizer/byte_tokenizer.hpp"
#include "tessera/tokenizer/gpt2_bpe_tokenizer.hpp"

namespace tessera {

std::unique_ptr<Tokenizer> make_tokenizer(const TokenizerOptions& options) {
  if (options.type == "gpt2_bpe") {
    if (options.vocab_file.empty() || options.merges_file.empty())
      throw ConfigError("tokenizer gpt2_bpe needs vocab_file (vocab.json / encoder.json) and merges_file "
                        "(merges.txt / vocab.bpe)");
    return std::make_unique<Gpt2BpeTokenizer>(options.vocab_file, options.merges_file, options.parse_special_tokens);
  }
  if (options.type == "byte") return std::make_unique<ByteTokenizer>(options.parse_special_tokens);
  throw ConfigError(fmt::format("unknown tokenizer type \"{}\" (known: gpt2_bpe, byte)", options.type));
}

}  // namespace tessera
