// The "hf_tokenizer" tokenizer plugin: a Hugging Face tokenizer.json with a byte-level BPE model
// (hf_tokenizer.hpp says what it reads and what it refuses). [tokenizer] keys: tokenizer_file
// (required), parse_special_tokens (default true: added tokens in the text become their ids, as in
// Hugging Face tokenizers and Megatron-LM's TokenizerFromFile) and eod_token (the end-of-document
// token's text; default: the first of "<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>" it has).
#include "hf_tokenizer.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/plugin.hpp"

namespace tessera {

namespace {

std::unique_ptr<Tokenizer> make_hf_tokenizer(const ConfigSection& s) {
  HfTokenizerOptions o;
  o.parse_special_tokens = s.get_bool("parse_special_tokens", true);
  o.eod_token = s.get_string("eod_token", "");
  const std::string file = s.get_string("tokenizer_file", "");
  if (file.empty())
    throw ConfigError(fmt::format("[tokenizer] in {} needs tokenizer_file (a Hugging Face tokenizer.json)",
                                  s.origin("tokenizer_file")));
  return std::make_unique<HfTokenizer>(file, o);
}

}  // namespace
}  // namespace tessera

TESSERA_PLUGIN(tokenizer, hf_tokenizer, tessera::make_hf_tokenizer)
