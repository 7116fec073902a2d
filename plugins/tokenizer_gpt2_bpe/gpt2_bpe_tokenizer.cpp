#include "gpt2_bpe_tokenizer.hpp"

#include <nlohmann/json.hpp>

#include "tessera/error.hpp"
#include "tessera/io/input_file.hpp"
#include "tessera/io/json_input.hpp"
#include "tessera/quote.hpp"
#include "gpt2_pretokenizer.hpp"

namespace tessera {

namespace {

constexpr std::string_view kEndOfText = "<|endoftext|>";

std::string read_file(const std::string& path, const char* what) {
  return read_whole_file(path, what, kMaxVocabularyBytes);
}

}  // namespace

Gpt2BpeTokenizer::Gpt2BpeTokenizer(const std::string& vocab_file, const std::string& merges_file,
                                   bool parse_special_tokens)
    : vocab_file_(vocab_file), parse_special_tokens_(parse_special_tokens) {
  // --- vocab.json: {"token": id}
  const nlohmann::json vocab =
      detail::parse_untrusted_json(read_file(vocab_file, "the vocab file"), vocab_file + ": the vocab file");
  bpe_ = std::make_unique<ByteLevelBpe>(read_vocab_object(vocab, vocab_file), vocab_file);
  vocab_size_ = bpe_->size();
  for (std::int32_t id = 0; id < vocab_size_; ++id) {
    const std::string& tok = bpe_->entry(id);
    if (tok.size() > 4 && tok.starts_with("<|") && tok.ends_with("|>")) specials_.emplace_back(tok, id);
  }
  const auto eod = bpe_->find(kEndOfText);
  if (!eod) throw FormatError(fmt::format("{}: the vocab has no \"<|endoftext|>\" entry (EOD)", vocab_file));
  eod_ = *eod;

  // --- merges.txt: "left right" per line, rank = order
  const std::string merges = read_file(merges_file, "the merges file");
  std::size_t pos = 0;
  std::int64_t line_no = 0;
  std::int32_t rank = 0;
  bpe_->reserve_merges(65536);
  while (pos < merges.size()) {
    std::size_t end = merges.find('\n', pos);
    if (end == std::string::npos) end = merges.size();
    std::string_view line(merges.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_no == 1 && line.starts_with("#version")) continue;
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    const std::size_t sp = line.find(' ');
    const std::string_view left = line.substr(0, sp == std::string_view::npos ? line.size() : sp);
    const std::string_view right = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    if (left.empty() || right.empty() || right.find_first_of(" \t") != std::string_view::npos)
      throw FormatError(fmt::format("{}:{}: expected two symbols separated by one space, got {}", merges_file,
                                    line_no, quote_untrusted(line)));
    // Python's dict(zip(merges, range(...))): a repeated pair keeps its last rank.
    if (auto missing = bpe_->add_merge(left, right, rank++))
      throw FormatError(fmt::format("{}:{}: {} (from merge {}) is not in the vocab {}", merges_file, line_no,
                                    quote_untrusted(*missing), quote_untrusted(line), vocab_file));
  }
}

Gpt2BpeTokenizer::~Gpt2BpeTokenizer() = default;

const std::string& Gpt2BpeTokenizer::id_to_token(std::int32_t id) const {
  if (id < 0 || id >= vocab_size_) throw Error(fmt::format("gpt2_bpe: id {} outside the vocab [0, {})", id, vocab_size_));
  return bpe_->entry(id);
}

std::optional<std::int32_t> Gpt2BpeTokenizer::special_token(std::string_view text) const {
  for (const auto& [tok, id] : specials_)
    if (tok == text) return id;
  return std::nullopt;
}

void Gpt2BpeTokenizer::encode_ordinary(std::string_view text, std::vector<std::int32_t>& out) const {
  thread_local std::vector<std::string_view> pieces;
  pieces.clear();
  gpt2_pretokenize(text, pieces);
  for (std::string_view p : pieces) bpe_->bpe(p, out);
}

void Gpt2BpeTokenizer::encode_into(std::string_view text, std::vector<std::int32_t>& out) const {
  // By default special tokens' text is ordinary text (Megatron-LM, OpenAI's encoder); with
  // parse_special_tokens they are cut out first so that "<|endoftext|>" in the text becomes the EOD id.
  std::size_t start = 0, search = 0;
  while (true) {
    const std::size_t at =
        !parse_special_tokens_ || specials_.empty() ? std::string_view::npos : text.find("<|", search);
    if (at == std::string_view::npos) break;
    const std::pair<std::string, std::int32_t>* hit = nullptr;
    for (const auto& s : specials_)
      if (text.substr(at).starts_with(s.first) && (!hit || s.first.size() > hit->first.size())) hit = &s;
    if (!hit) {
      search = at + 1;
      continue;
    }
    encode_ordinary(text.substr(start, at - start), out);
    out.push_back(hit->second);
    start = search = at + hit->first.size();
  }
  encode_ordinary(text.substr(start), out);
}

std::vector<std::int32_t> Gpt2BpeTokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> out;
  out.reserve(text.size() / 3 + 1);
  encode_into(text, out);
  return out;
}

std::string Gpt2BpeTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string s;
  for (std::int32_t id : ids) {
    if (!bpe_->has_id(id)) throw Error(fmt::format("gpt2_bpe: cannot decode id {}: not in the vocab {}", id, vocab_file_));
    s += bpe_->bytes_of(id);
  }
  return s;
}

}  // namespace tessera
