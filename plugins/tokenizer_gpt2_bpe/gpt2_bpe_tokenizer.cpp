#include "gpt2_bpe_tokenizer.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <mutex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tessera/error.hpp"
#include "tessera/io/input_file.hpp"
#include "tessera/io/json_input.hpp"
#include "tessera/quote.hpp"
#include "tessera/utf8.hpp"
#include "gpt2_pretokenizer.hpp"
#include "unicode_classes.hpp"

namespace tessera {

namespace {

using tessera::unicode::append_utf8;

constexpr std::string_view kEndOfText = "<|endoftext|>";


std::string read_file(const std::string& path, const char* what) {
  return read_whole_file(path, what, kMaxVocabularyBytes);
}

std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
}

}  // namespace

std::array<char32_t, 256> gpt2_byte_to_unicode() {
  std::array<char32_t, 256> map{};
  std::array<bool, 256> printable{};
  for (int b = '!'; b <= '~'; ++b) printable[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) map[b] = printable[b] ? static_cast<char32_t>(b) : next++;
  return map;
}

// Pieces already merged, sharded so that preprocess's worker threads rarely wait on each other.
// Bounded: a shard that fills up is cleared (long inputs of unique pieces must not grow memory).
struct Gpt2BpeTokenizer::Cache {
  static constexpr std::size_t kShards = 64, kMaxPerShard = 1 << 14;
  struct Shard {
    std::mutex m;
    std::unordered_map<std::string, std::vector<std::int32_t>> map;
  };
  std::array<Shard, kShards> shards;
};

Gpt2BpeTokenizer::Gpt2BpeTokenizer(const std::string& vocab_file, const std::string& merges_file,
                                   bool parse_special_tokens)
    : vocab_file_(vocab_file), parse_special_tokens_(parse_special_tokens), cache_(std::make_unique<Cache>()) {
  // --- vocab.json: {"token": id}
  const nlohmann::json vocab =
      detail::parse_untrusted_json(read_file(vocab_file, "the vocab file"), vocab_file + ": the vocab file");
  if (!vocab.is_object() || vocab.empty())
    throw FormatError(fmt::format("{}: the vocab file must be a non-empty JSON object {{\"token\": id, ...}}", vocab_file));
  // Tables are sized by the largest id, so an id far beyond the number of entries (a corrupt file)
  // would allocate gigabytes for nothing; a few gaps are fine.
  const std::int64_t id_limit = 4 * static_cast<std::int64_t>(vocab.size()) + 1024;
  std::int64_t max_id = -1;
  for (const auto& [tok, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 ||
        id.get<std::int64_t>() >= std::numeric_limits<std::int32_t>::max())
      throw FormatError(fmt::format("{}: entry {} has value {}; expected a non-negative integer id", vocab_file,
                                    quote_untrusted(tok), detail::describe_json(id)));
    if (id.get<std::int64_t>() >= id_limit)
      throw FormatError(fmt::format("{}: entry {} has id {}, far beyond the {} entries of the vocab (ids must be "
                                    "below {})", vocab_file, quote_untrusted(tok), id.get<std::int64_t>(), vocab.size(),
                                    id_limit));
    max_id = std::max(max_id, id.get<std::int64_t>());
  }
  vocab_size_ = max_id + 1;
  tokens_.resize(static_cast<std::size_t>(vocab_size_));
  std::vector<bool> used(static_cast<std::size_t>(vocab_size_));
  std::unordered_map<std::string, std::int32_t> token_id;
  token_id.reserve(vocab.size());
  for (const auto& [tok, id_json] : vocab.items()) {
    const auto id = static_cast<std::size_t>(id_json.get<std::int64_t>());
    if (used[id])
      throw FormatError(fmt::format("{}: id {} is given to both {} and {}", vocab_file, id, quote_untrusted(tokens_[id]),
                                    quote_untrusted(tok)));
    used[id] = true;
    tokens_[id] = tok;
    token_id.emplace(tok, static_cast<std::int32_t>(id));
  }

  // --- byte <-> symbol tables
  const auto b2u = gpt2_byte_to_unicode();
  std::unordered_map<char32_t, unsigned char> u2b;
  for (int b = 0; b < 256; ++b) {
    u2b[b2u[b]] = static_cast<unsigned char>(b);
    std::string sym;
    append_utf8(sym, b2u[b]);
    auto it = token_id.find(sym);
    if (it == token_id.end())
      throw FormatError(fmt::format("{}: no entry for byte 0x{:02X} (symbol \"{}\"); not a byte-level BPE vocab",
                                    vocab_file, b, sym));
    byte_id_[b] = it->second;
  }
  bytes_of_id_.resize(tokens_.size());
  for (std::size_t id = 0; id < tokens_.size(); ++id) {
    const std::string& tok = tokens_[id];
    std::string bytes;
    bool ok = true;
    for (std::size_t i = 0; i < tok.size() && ok;) {
      const auto d = unicode::decode_utf8(tok, i);
      auto it = d.valid ? u2b.find(d.cp) : u2b.end();
      if (it == u2b.end()) ok = false; else bytes += static_cast<char>(it->second);
      i += d.len;
    }
    bytes_of_id_[id] = ok ? bytes : tok;  // entries outside the byte alphabet decode as written
    if (tok.size() > 4 && tok.starts_with("<|") && tok.ends_with("|>"))
      specials_.emplace_back(tok, static_cast<std::int32_t>(id));
  }
  auto eod = token_id.find(std::string(kEndOfText));
  if (eod == token_id.end()) throw FormatError(fmt::format("{}: the vocab has no \"<|endoftext|>\" entry (EOD)", vocab_file));
  eod_ = eod->second;

  // --- merges.txt: "left right" per line, rank = order
  const std::string merges = read_file(merges_file, "the merges file");
  std::size_t pos = 0;
  std::int64_t line_no = 0;
  std::int32_t rank = 0;
  merges_.reserve(65536);
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
    auto id_of = [&](std::string_view s) {
      auto it = token_id.find(std::string(s));
      if (it == token_id.end())
        throw FormatError(fmt::format("{}:{}: {} (from merge {}) is not in the vocab {}", merges_file, line_no,
                                      quote_untrusted(s), quote_untrusted(line), vocab_file));
      return it->second;
    };
    const std::int32_t a = id_of(left), b = id_of(right);
    const std::int32_t m = id_of(std::string(left) + std::string(right));
    // Python's dict(zip(merges, range(...))): a repeated pair keeps its last rank.
    merges_[pair_key(a, b)] = {rank++, m};
  }
}

Gpt2BpeTokenizer::~Gpt2BpeTokenizer() = default;

const std::string& Gpt2BpeTokenizer::id_to_token(std::int32_t id) const {
  if (id < 0 || id >= vocab_size_) throw Error(fmt::format("gpt2_bpe: id {} outside the vocab [0, {})", id, vocab_size_));
  return tokens_[static_cast<std::size_t>(id)];
}

std::optional<std::int32_t> Gpt2BpeTokenizer::special_token(std::string_view text) const {
  for (const auto& [tok, id] : specials_)
    if (tok == text) return id;
  return std::nullopt;
}

void Gpt2BpeTokenizer::bpe(std::string_view piece, std::vector<std::int32_t>& out) const {
  if (piece.size() == 1) {
    out.push_back(byte_id_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  const std::size_t h = std::hash<std::string_view>{}(piece);
  Cache::Shard& shard = cache_->shards[h % Cache::kShards];
  std::string key(piece);
  {
    std::lock_guard<std::mutex> lock(shard.m);
    auto it = shard.map.find(key);
    if (it != shard.map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<std::int32_t> word(piece.size());
  for (std::size_t i = 0; i < piece.size(); ++i) word[i] = byte_id_[static_cast<unsigned char>(piece[i])];
  while (word.size() > 1) {
    std::int32_t best_rank = std::numeric_limits<std::int32_t>::max(), merged = -1;
    std::int32_t left = 0, right = 0;
    for (std::size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = merges_.find(pair_key(word[i], word[i + 1]));
      if (it != merges_.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        merged = it->second.second;
        left = word[i];
        right = word[i + 1];
      }
    }
    if (merged < 0) break;
    // Merge every occurrence of (left, right), left to right, as encoder.py does.
    std::size_t j = 0;
    for (std::size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == left && word[i + 1] == right) {
        word[j++] = merged;
        i += 2;
      } else {
        word[j++] = word[i++];
      }
    }
    word.resize(j);
  }
  out.insert(out.end(), word.begin(), word.end());
  std::lock_guard<std::mutex> lock(shard.m);
  if (shard.map.size() >= Cache::kMaxPerShard) shard.map.clear();
  shard.map.emplace(std::move(key), std::move(word));
}

void Gpt2BpeTokenizer::encode_ordinary(std::string_view text, std::vector<std::int32_t>& out) const {
  thread_local std::vector<std::string_view> pieces;
  pieces.clear();
  gpt2_pretokenize(text, pieces);
  for (std::string_view p : pieces) bpe(p, out);
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
    if (id < 0 || id >= vocab_size_ || tokens_[static_cast<std::size_t>(id)].empty())
      throw Error(fmt::format("gpt2_bpe: cannot decode id {}: not in the vocab {}", id, vocab_file_));
    s += bytes_of_id_[static_cast<std::size_t>(id)];
  }
  return s;
}

}  // namespace tessera
