// The "gpt2_bpe" tokenizer plugin: [tokenizer] vocab_file (vocab.json / encoder.json), merges_file
// (merges.txt / vocab.bpe) and parse_special_tokens (default false, as Megatron-LM's
// GPT2BPETokenizer and OpenAI's encoder: "<|endoftext|>" in the input is ordinary text).
#include "gpt2_bpe_tokenizer.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/plugin.hpp"

namespace tessera {

namespace {

std::unique_ptr<Tokenizer> make_gpt2_bpe(const ConfigSection& s) {
  const bool parse_special_tokens = s.get_bool("parse_special_tokens", false);
  const std::string vocab = s.get_string("vocab_file", ""), merges = s.get_string("merges_file", "");
  if (vocab.empty() || merges.empty())
    throw ConfigError(fmt::format("[tokenizer] in {} needs vocab_file (vocab.json / encoder.json) and merges_file "
                                  "(merges.txt / vocab.bpe)",
                                  s.origin(vocab.empty() ? "vocab_file" : "merges_file")));
  return std::make_unique<Gpt2BpeTokenizer>(vocab, merges, parse_special_tokens);
}

}  // namespace
}  // namespace tessera

TESSERA_PLUGIN(tokenizer, gpt2_bpe, tessera::make_gpt2_bpe)
