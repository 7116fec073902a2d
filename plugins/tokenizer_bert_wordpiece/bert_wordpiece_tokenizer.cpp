#include "bert_wordpiece_tokenizer.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "bert_unicode.hpp"
#include "tessera/error.hpp"
#include "tessera/io/input_file.hpp"
#include "tessera/quote.hpp"
#include "tessera/utf8.hpp"

namespace tessera {

namespace {

using tessera::unicode::append_utf8;

// The tokens Megatron's _BertWordPieceTokenizer looks up in the vocab (vocab['[MASK]'], ...).
constexpr const char* kRequired[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};


// Python's str.replace(from, to): every non-overlapping occurrence, left to right.
void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  std::size_t pos = 0;
  for (std::size_t at; (at = s.find(from, pos)) != std::string::npos; pos = at + from.size()) {
    out.append(s, pos, at - pos);
    out += to;
  }
  out.append(s, pos);
  s = std::move(out);
}

}  // namespace

BertWordPieceTokenizer::BertWordPieceTokenizer(const std::string& vocab_file, const BertWordPieceOptions& options)
    : vocab_file_(vocab_file), options_(options) {
  if (options.vocab_extra_ids < 0)
    throw ConfigError(fmt::format("bert_wordpiece: vocab_extra_ids must be >= 0, got {}", options.vocab_extra_ids));
  // Megatron's load_vocab: one token per line (readline, so a last line without '\n' counts and
  // nothing after a final '\n' does), surrounding white space stripped, id = line number.
  const std::string text = read_whole_file(vocab_file, "the vocab file", kMaxVocabularyBytes);
  std::int64_t line_no = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    std::size_t first = line.size(), last = 0;  // bytes of the token, white space (str.strip) excluded
    for (std::size_t i = 0; i < line.size();) {
      const unicode::Decoded d = unicode::decode_utf8(line, i);
      if (!d.valid)
        throw FormatError(fmt::format("{}:{}: the vocab file is not valid UTF-8 (byte {} of the line, in {})",
                                      vocab_file, line_no, i + 1, quote_untrusted(line)));
      if (!(bert_unicode::flags(d.cp) & bert_unicode::kPySpace)) {
        first = std::min(first, i);
        last = i + d.len;
      }
      i += d.len;
    }
    const std::string token(first < last ? line.substr(first, last - first) : std::string_view{});
    if (const std::int32_t seen = id_of(token); seen >= 0)
      throw FormatError(fmt::format("{}:{}: the token {} is also on line {}; each token must be on one line (ids "
                                    "are line numbers)",
                                    vocab_file, line_no, quote_untrusted(token), seen + 1));
    if (line_no > INT32_MAX / 2) throw FormatError(fmt::format("{}: more than {} lines", vocab_file, INT32_MAX / 2));
    ids_.emplace(token, static_cast<std::int32_t>(tokens_.size()));
    tokens_.push_back(token);
    const std::string_view piece = std::string_view(token).substr(token.starts_with("##") ? 2 : 0);
    std::size_t chars = 0;
    for (std::size_t i = 0; i < piece.size(); i += unicode::decode_utf8(piece, i).len) ++chars;
    max_piece_chars_ = std::max(max_piece_chars_, chars);
  }
  file_vocab_size_ = static_cast<std::int64_t>(tokens_.size());
  if (tokens_.empty()) throw FormatError(fmt::format("{}: the vocab file is empty (expected one token per line)", vocab_file));
  std::int32_t* const required_ids[] = {&pad_, &unk_, &cls_, &sep_, &mask_};
  for (std::size_t k = 0; k < std::size(kRequired); ++k) {
    *required_ids[k] = id_of(kRequired[k]);
    if (*required_ids[k] < 0)
      throw FormatError(fmt::format("{}: the vocab has no {} token (a BERT vocab.txt has [PAD], [UNK], [CLS], [SEP] "
                                    "and [MASK], each on a line of its own)",
                                    vocab_file, kRequired[k]));
    specials_.emplace(kRequired[k], *required_ids[k]);
  }
  // Megatron appends these after the vocab (T5's decoder input starts with [BOS] and ends with [EOS];
  // its sentinels are the extra ids).
  bos_ = add_token("[BOS]");
  eos_ = add_token("[EOS]");
  specials_.emplace("[BOS]", bos_);
  specials_.emplace("[EOS]", eos_);
  for (std::int64_t i = 0; i < options.vocab_extra_ids; ++i) {
    const std::string t = fmt::format("<extra_id_{}>", i);
    specials_.emplace(t, add_token(t));
  }
}

std::int32_t BertWordPieceTokenizer::id_of(std::string_view token) const {
  const auto it = ids_.find(token);
  return it == ids_.end() ? -1 : it->second;
}

std::int32_t BertWordPieceTokenizer::add_token(const std::string& token) {
  if (const std::int32_t id = id_of(token); id >= 0) return id;
  const auto id = static_cast<std::int32_t>(tokens_.size());
  ids_.emplace(token, id);
  tokens_.push_back(token);
  return id;
}

const std::string& BertWordPieceTokenizer::id_to_token(std::int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw Error(fmt::format("bert_wordpiece: id {} outside the vocabulary [0, {}) of {}", id, vocab_size(), vocab_file_));
  return tokens_[static_cast<std::size_t>(id)];
}

std::optional<std::int32_t> BertWordPieceTokenizer::special_token(std::string_view text) const {
  const auto it = specials_.find(text);
  if (it == specials_.end()) return std::nullopt;
  return it->second;
}

void BertWordPieceTokenizer::wordpiece(const std::u32string& word, std::vector<std::int32_t>& ids) const {
  if (word.size() > kMaxWordChars) {
    ids.push_back(unk_);
    return;
  }
  thread_local std::string utf8, key;
  thread_local std::vector<std::size_t> at;  // byte offset of each code point, and the end
  utf8.clear();
  at.clear();
  for (char32_t c : word) {
    at.push_back(utf8.size());
    append_utf8(utf8, c);
  }
  at.push_back(utf8.size());
  const std::size_t n = word.size(), first_id = ids.size();
  for (std::size_t start = 0; start < n;) {
    std::int32_t id = -1;
    std::size_t end = std::min(n, start + max_piece_chars_);  // no longer entry exists
    for (; end > start; --end) {
      key.assign(start > 0 ? "##" : "");
      key.append(utf8, at[start], at[end] - at[start]);
      if ((id = id_of(key)) >= 0) break;
    }
    if (id < 0) {  // some rest of the word matches nothing: the whole word is [UNK]
      ids.resize(first_id);
      ids.push_back(unk_);
      return;
    }
    ids.push_back(id);
    start = end;
  }
}

void BertWordPieceTokenizer::encode_ordinary(std::string_view text, std::vector<std::int32_t>& ids) const {
  bert_basic_tokenize(text, {options_.lower_case, options_.strip_accents},
                      [&](const std::u32string& word) { wordpiece(word, ids); });
}

std::vector<std::int32_t> BertWordPieceTokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> ids;
  ids.reserve(text.size() / 4 + 1);
  // With parse_special_tokens the special tokens' text is cut out first, as Hugging Face's
  // BertTokenizer does; by default it is ordinary text ("[", "mask", "]"), as in Megatron. A special
  // token is a bracketed word, so a candidate runs from "[" or "<" to the first closing bracket.
  std::size_t start = 0;
  for (std::size_t at = 0; options_.parse_special_tokens && at < text.size(); ++at) {
    if (text[at] != '[' && text[at] != '<') continue;
    const std::size_t close = text.find(text[at] == '[' ? ']' : '>', at + 1);
    if (close == std::string_view::npos) continue;
    const auto hit = specials_.find(text.substr(at, close + 1 - at));
    if (hit == specials_.end()) continue;
    encode_ordinary(text.substr(start, at - start), ids);
    ids.push_back(hit->second);
    start = close + 1;
    at = close;
  }
  encode_ordinary(text.substr(start), ids);
  return ids;
}

std::vector<std::string> BertWordPieceTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> out;
  for (std::int32_t id : encode(text)) out.push_back(tokens_[static_cast<std::size_t>(id)]);
  return out;
}

std::string BertWordPieceTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string s;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ' ';
    s += id_to_token(ids[i]);
  }
  replace_all(s, " ##", "");
  const std::size_t b = s.find_first_not_of(" \t\n\r\v\f"), e = s.find_last_not_of(" \t\n\r\v\f");
  s = b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  for (const auto& [from, to] : {std::pair{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
                                 {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}})
    replace_all(s, from, to);
  return s;
}

}  // namespace tessera
