// A Hugging Face tokenizer.json with a byte-level BPE model (GPT-2, StarCoder, SantaCoder, Llama-3-style
// files): ids equal Hugging Face tokenizers' (Megatron-LM's TokenizerFromFile / _HFTokenizer).
//
// encode:
//   1. added_tokens are cut out of the text first, by exact match, leftmost then longest first — those
//      with "normalized": false in a first pass, the others in the segments left (Hugging Face's two
//      tries) — and become their ids; parse_special_tokens = false leaves their text ordinary text.
//   2. With the NFC normalizer (Qwen2's, Qwen3's) each segment left by the first pass is composed
//      (hf_normalizer.hpp) before the second. Each remaining segment goes through the pre_tokenizer: Digits, ByteLevel and Split, alone or in
//      a Sequence, with Hugging Face's split behaviours (Isolated, Removed, MergedWithPrevious,
//      MergedWithNext, Contiguous, invert). ByteLevel with use_regex runs the hand-written GPT-2
//      pre-tokenizer (gpt2_pretokenizer.hpp), and so does a Split whose regex is exactly GPT-2's; other
//      Split regexes run in PCRE2 (hf_regex.hpp).
//   3. Each pre-token's bytes go through the byte-level BPE engine shared with gpt2_bpe
//      (byte_level_bpe.hpp); with "ignore_merges" a pre-token that is itself a vocab entry is taken whole.
// decode: each id's entry (an added token's content) mapped back through the byte table, then the
// bytes read as UTF-8 with U+FFFD for each invalid sequence (Rust's String::from_utf8_lossy).
//
// Everything else a tokenizer.json can say that would change ids is refused with a FormatError naming
// the file and the JSON path: another model (WordPiece, Unigram, ...), byte_fallback, dropout, a
// normalizer other than NFC, a pre-tokenizer other than the three above or a ByteLevel that is not the last step, a
// post_processor that adds tokens, a decoder other than ByteLevel, truncation or padding, added tokens
// with lstrip / rstrip / single_word, and regex constructs whose meaning differs between Oniguruma and
// PCRE2.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tessera/tokenizer.hpp"

namespace tessera {

class ByteLevelBpe;
class HfRegex;

struct HfTokenizerOptions {
  // Whether encode() turns added tokens' text into their ids (Hugging Face and Megatron-LM's
  // TokenizerFromFile do); false treats it as ordinary text.
  bool parse_special_tokens = true;
  // The end-of-document token's text. Empty: "<|endoftext|>" (GPT-2, StarCoder), else the first the
  // file has of "<|end_of_text|>" (Llama 3), "</s>" (Llama 2, Mistral, T5), "<eos>" (Gemma) — a
  // tokenizer.json does not say which is its EOS (tokenizer_config.json does, as Megatron-LM reads it).
  std::string eod_token;
};

class HfTokenizer : public Tokenizer {
 public:
  explicit HfTokenizer(const std::string& tokenizer_file, HfTokenizerOptions options = {});
  ~HfTokenizer() override;

  std::vector<std::int32_t> encode(std::string_view text) const override;
  void encode_into(std::string_view text, std::vector<std::int32_t>& out) const;
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int64_t vocab_size() const override { return vocab_size_; }
  // <|endoftext|>'s id; ConfigError naming the file when the tokenizer has none (a tokenizer without
  // one still loads and encodes: only the users of an end-of-document token need it).
  std::int32_t eod() const override;
  // An added token's id by its content, else a vocab entry's id.
  std::optional<std::int32_t> special_token(std::string_view text) const override;
  std::string name() const override { return "hf_tokenizer"; }
  std::vector<std::string> file_keys() const override { return {"tokenizer_file"}; }

  // The pre-tokens of a text without added tokens (raw bytes, before the byte-level mapping): for tests.
  std::vector<std::string> pre_tokenize(std::string_view text) const;
  std::int64_t num_merges() const;
  std::int64_t num_added_tokens() const { return static_cast<std::int64_t>(added_.size()); }

  enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };
  struct Step {
    enum class Kind { digits, byte_level, split } kind;
    bool individual_digits = false;           // digits
    bool add_prefix_space = false, use_regex = true;  // byte_level
    std::shared_ptr<HfRegex> regex;            // split; null with gpt2_regex
    bool gpt2_regex = false;                   // split whose pattern is GPT-2's: the hand-written splitter
    Behavior behavior = Behavior::isolated;    // split
    bool invert = false;                       // split
  };

 private:
  struct Added {
    std::string content;
    std::int32_t id;
    bool normalized;
  };
  void encode_segment(std::string_view text, std::vector<std::int32_t>& out) const;
  void pre_tokenize_into(std::string_view text, std::vector<std::string_view>& pieces) const;

  std::string file_;
  HfTokenizerOptions options_;
  std::unique_ptr<ByteLevelBpe> bpe_;
  std::vector<Step> steps_;
  bool ignore_merges_ = false;
  bool nfc_ = false;  // normalizer NFC: each text segment composed (hf_normalizer.hpp) before pre-tokenizing
  std::vector<Added> added_;
  std::unordered_map<std::string, std::int32_t> added_id_;
  std::unordered_map<std::int32_t, std::string> added_bytes_;  // id -> the bytes an added token decodes to
  // Added tokens grouped for the two passes, each list sorted longest first.
  std::vector<const Added*> pass_[2];
  std::array<bool, 256> first_byte_[2]{};  // the first bytes of each pass's tokens
  std::int64_t vocab_size_ = 0;
  std::optional<std::int32_t> eod_;
};

// Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes one U+FFFD.
std::string utf8_lossy(std::string_view bytes);

}  // namespace tessera
