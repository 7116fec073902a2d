#include "byte_level_bpe.hpp"

#include <limits>
#include <mutex>
#include <queue>

#include <nlohmann/json.hpp>

#include "tessera/error.hpp"
#include "tessera/io/json_input.hpp"
#include "tessera/quote.hpp"
#include "tessera/utf8.hpp"

namespace tessera {

namespace {

std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
}

const std::unordered_map<char32_t, unsigned char>& unicode_to_byte() {
  static const std::unordered_map<char32_t, unsigned char> map = [] {
    std::unordered_map<char32_t, unsigned char> m;
    const auto b2u = gpt2_byte_to_unicode();
    for (int b = 0; b < 256; ++b) m[b2u[b]] = static_cast<unsigned char>(b);
    return m;
  }();
  return map;
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

std::string byte_level_symbols_to_bytes(std::string_view tok) {
  const auto& u2b = unicode_to_byte();
  std::string bytes;
  for (std::size_t i = 0; i < tok.size();) {
    const auto d = unicode::decode_utf8(tok, i);
    auto it = d.valid ? u2b.find(d.cp) : u2b.end();
    if (it == u2b.end()) return std::string(tok);  // outside the byte alphabet: as written
    bytes += static_cast<char>(it->second);
    i += d.len;
  }
  return bytes;
}

VocabTable read_vocab_object(const nlohmann::json& vocab, const std::string& what) {
  if (!vocab.is_object() || vocab.empty())
    throw FormatError(fmt::format("{}: the vocab must be a non-empty JSON object {{\"token\": id, ...}}", what));
  // Tables are sized by the largest id, so an id far beyond the number of entries (a corrupt file)
  // would allocate gigabytes for nothing; a few gaps are fine.
  const std::int64_t id_limit = 4 * static_cast<std::int64_t>(vocab.size()) + 1024;
  std::int64_t max_id = -1;
  for (const auto& [tok, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 ||
        id.get<std::int64_t>() >= std::numeric_limits<std::int32_t>::max())
      throw FormatError(fmt::format("{}: entry {} has value {}; expected a non-negative integer id", what,
                                    quote_untrusted(tok), detail::describe_json(id)));
    if (id.get<std::int64_t>() >= id_limit)
      throw FormatError(fmt::format("{}: entry {} has id {}, far beyond the {} entries of the vocab (ids must be "
                                    "below {})", what, quote_untrusted(tok), id.get<std::int64_t>(), vocab.size(),
                                    id_limit));
    max_id = std::max(max_id, id.get<std::int64_t>());
  }
  VocabTable t;
  t.entries.resize(static_cast<std::size_t>(max_id + 1));
  std::vector<bool> used(t.entries.size());
  t.id_of.reserve(vocab.size());
  for (const auto& [tok, id_json] : vocab.items()) {
    const auto id = static_cast<std::size_t>(id_json.get<std::int64_t>());
    if (used[id])
      throw FormatError(fmt::format("{}: id {} is given to both {} and {}", what, id, quote_untrusted(t.entries[id]),
                                    quote_untrusted(tok)));
    used[id] = true;
    t.entries[id] = tok;
    t.id_of.emplace(tok, static_cast<std::int32_t>(id));
  }
  return t;
}

// Pieces already merged, sharded so that preprocess's worker threads rarely wait on each other.
// Bounded: a shard that fills up is cleared (long inputs of unique pieces must not grow memory).
struct ByteLevelBpe::Cache {
  static constexpr std::size_t kShards = 64, kMaxPerShard = 1 << 14;
  struct Shard {
    std::mutex m;
    std::unordered_map<std::string, std::vector<std::int32_t>> map;
  };
  std::array<Shard, kShards> shards;
};

ByteLevelBpe::ByteLevelBpe(VocabTable vocab, const std::string& what)
    : entries_(std::move(vocab.entries)), id_of_(std::move(vocab.id_of)), cache_(std::make_unique<Cache>()) {
  const auto b2u = gpt2_byte_to_unicode();
  for (int b = 0; b < 256; ++b) {
    std::string sym;
    unicode::append_utf8(sym, b2u[b]);
    auto it = id_of_.find(sym);
    if (it == id_of_.end())
      throw FormatError(fmt::format("{}: no entry for byte 0x{:02X} (symbol \"{}\"); not a byte-level BPE vocab", what,
                                    b, sym));
    byte_id_[b] = it->second;
  }
  bytes_of_id_.resize(entries_.size());
  for (std::size_t id = 0; id < entries_.size(); ++id) bytes_of_id_[id] = byte_level_symbols_to_bytes(entries_[id]);
}

ByteLevelBpe::~ByteLevelBpe() = default;

void ByteLevelBpe::reserve_merges(std::size_t n) { merges_.reserve(n); }

std::optional<std::int32_t> ByteLevelBpe::find(std::string_view entry) const {
  auto it = id_of_.find(std::string(entry));
  if (it == id_of_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> ByteLevelBpe::add_merge(std::string_view left, std::string_view right, std::int32_t rank) {
  const auto a = find(left);
  if (!a) return std::string(left);
  const auto b = find(right);
  if (!b) return std::string(right);
  std::string joined = std::string(left) + std::string(right);
  const auto m = find(joined);
  if (!m) return joined;
  merges_[pair_key(*a, *b)] = {rank, *m};
  return std::nullopt;
}

void ByteLevelBpe::bpe(std::string_view piece, std::vector<std::int32_t>& out) const {
  if (piece.empty()) return;
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
  // The merge loop of encoder.py (each round merges every left-to-right occurrence of the lowest-ranked
  // pair) without rescanning the word per round, so that a long word (a run of letters is one pre-token)
  // costs O(n log n), not O(n x merges): a doubly linked list of symbols indexed by their first byte's
  // position, and a min-heap of (rank, position) holding every adjacent pair that has a rank.
  const std::size_t n = piece.size(), none = std::numeric_limits<std::size_t>::max();
  std::vector<std::int32_t> sym(n);
  std::vector<std::size_t> prev(n), next(n);
  for (std::size_t i = 0; i < n; ++i) {
    sym[i] = byte_id_[static_cast<unsigned char>(piece[i])];
    prev[i] = i == 0 ? none : i - 1;
    next[i] = i + 1 == n ? none : i + 1;
  }
  using Entry = std::pair<std::int32_t, std::size_t>;  // (rank, left symbol's position)
  // The merge of the pair starting at i, if it has one (none for a removed or the last symbol).
  auto merge_at = [&](std::size_t i) -> const std::pair<std::int32_t, std::int32_t>* {
    if (i == none || sym[i] < 0 || next[i] == none) return nullptr;
    auto it = merges_.find(pair_key(sym[i], sym[next[i]]));
    return it == merges_.end() ? nullptr : &it->second;
  };
  std::vector<Entry> later;  // entries for the heap once the current round is over
  auto push_later = [&](std::size_t i) {
    if (const auto* m = merge_at(i)) later.emplace_back(m->first, i);
  };
  for (std::size_t i = 0; i + 1 < n; ++i) push_later(i);
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap(std::greater<Entry>{}, std::move(later));
  while (!heap.empty()) {
    // One round of encoder.py: the pair of this rank met first (leftmost) is the round's pair, and its
    // occurrences are merged in increasing position. Pairs the round creates are held back to the next
    // round even when their rank is lower (encoder.py rescans only after the round), as are other pairs
    // of the same rank (a merges file may give two pairs one rank; encoder.py merges one per round).
    const std::int32_t rank = heap.top().first;
    std::uint64_t round_pair = 0;
    std::int32_t merged = -1;
    later.clear();
    while (!heap.empty() && heap.top().first == rank) {
      const std::size_t i = heap.top().second;
      heap.pop();
      const auto* m = merge_at(i);
      if (!m || m->first != rank) continue;  // stale: the symbol or its neighbour changed since
      const std::uint64_t key = pair_key(sym[i], sym[next[i]]);
      if (merged < 0) {
        round_pair = key;
        merged = m->second;
      } else if (key != round_pair) {
        later.emplace_back(rank, i);
        continue;
      }
      const std::size_t j = next[i];
      sym[i] = merged;
      sym[j] = -1;
      next[i] = next[j];
      if (next[j] != none) prev[next[j]] = i;
      push_later(prev[i]);
      push_later(i);
    }
    for (const Entry& e : later) heap.push(e);
  }
  std::vector<std::int32_t> word;
  for (std::size_t i = 0; i != none; i = next[i]) word.push_back(sym[i]);
  out.insert(out.end(), word.begin(), word.end());
  std::lock_guard<std::mutex> lock(shard.m);
  if (shard.map.size() >= Cache::kMaxPerShard) shard.map.clear();
  shard.map.emplace(std::move(key), std::move(word));
}

}  // namespace tessera
