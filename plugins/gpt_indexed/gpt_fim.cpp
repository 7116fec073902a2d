#include "gpt_fim.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/error.hpp"
#include "tessera/fim_tokens.hpp"
#include "tessera/tokenizer.hpp"
#include "tessera/utf8.hpp"

namespace tessera::gpt_indexed {

namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

void append(std::vector<std::int32_t>& out, std::span<const std::int32_t> part) {
  out.insert(out.end(), part.begin(), part.end());
}

}  // namespace

void check_fim_options(const FimOptions& o, const std::string& where) {
  const std::pair<const char*, double> rates[] = {
      {"fim_rate", o.rate}, {"fim_spm_rate", o.spm_rate}, {"fragment_fim_rate", o.fragment_rate}};
  for (const auto& [key, v] : rates)
    if (!(v >= 0.0 && v <= 1.0))
      throw ConfigError(fmt::format("{}: {} = {}: a probability, expected a number in [0, 1]", where, key, v));
}

FimTokens find_fim_tokens(const Tokenizer& tokenizer, const FimOptions& options, const std::string& where) {
  FimTokens t;
  std::vector<std::string> missing;
  if (const auto ids = find_fim_token_ids(tokenizer, missing)) {
    t.prefix = ids->prefix;
    t.middle = ids->middle;
    t.suffix = ids->suffix;
    t.pad = ids->pad;
  }
  if (!options.split_sample.empty()) {
    if (auto v = tokenizer.special_token(options.split_sample)) {
      t.split = *v;
    } else {
      const auto ids = tokenizer.encode(options.split_sample);
      if (ids.size() == 1) t.split = ids[0];
      else missing.push_back(fmt::format("{} (fim_split_sample; it encodes to {} tokens, not one)",
                                         options.split_sample, ids.size()));
    }
  }
  if (!missing.empty())
    throw ConfigError(fmt::format(
        "{}: fim_rate = {} needs the fill-in-the-middle tokens, but the tokenizer '{}' lacks {}; use a tokenizer "
        "that has them (StarCoder's or SantaCoder's tokenizer.json, or add them as special tokens), or set "
        "fim_rate = 0",
        where, options.rate, tokenizer.name(), fmt::join(missing, ", ")));
  return t;
}

std::uint32_t fim_sample_seed(std::uint64_t seed, std::int64_t index) {
  return static_cast<std::uint32_t>(splitmix64(splitmix64(seed) ^ static_cast<std::uint64_t>(index)) >> 32);
}

std::vector<std::size_t> code_point_offsets(const std::string& text) {
  std::vector<std::size_t> offs;
  offs.reserve(text.size() + 1);
  for (std::size_t i = 0; i < text.size(); i += unicode::decode_utf8(text, i).len) offs.push_back(i);
  offs.push_back(text.size());
  return offs;
}

FimTransform::FimTransform(const Tokenizer& tokenizer, FimTokens tokens, FimOptions options, std::int32_t eod)
    : tokenizer_(tokenizer), tokens_(tokens), options_(std::move(options)), eod_(eod) {}

std::vector<std::int32_t> FimTransform::permute(std::span<const std::int32_t> seq, double rate,
                                                NumpyRandomState& rng) const {
  if (!rng.binomial(1, rate)) return {seq.begin(), seq.end()};
  const std::string text = tokenizer_.decode(std::vector<std::int32_t>(seq.begin(), seq.end()));
  const std::vector<std::size_t> offs = code_point_offsets(text);
  const auto chars = static_cast<std::int64_t>(offs.size()) - 1;
  std::int64_t b0 = rng.randint(0, chars + 1), b1 = rng.randint(0, chars + 1);
  if (b1 < b0) std::swap(b0, b1);
  const std::size_t c0 = offs[static_cast<std::size_t>(b0)], c1 = offs[static_cast<std::size_t>(b1)];
  const auto prefix = tokenizer_.encode(std::string_view(text).substr(0, c0));
  const auto middle = tokenizer_.encode(std::string_view(text).substr(c0, c1 - c0));
  const auto suffix = tokenizer_.encode(std::string_view(text).substr(c1));
  std::vector<std::int32_t> out;
  out.reserve(prefix.size() + middle.size() + suffix.size() + 3);
  if (rng.binomial(1, options_.spm_rate)) {  // SPM, "variant 2" of the FIM paper
    out = {tokens_.prefix, tokens_.suffix};
    append(out, suffix);
    out.push_back(tokens_.middle);
    append(out, prefix);
    append(out, middle);
  } else {  // PSM
    out = {tokens_.prefix};
    append(out, prefix);
    out.push_back(tokens_.suffix);
    append(out, suffix);
    out.push_back(tokens_.middle);
    append(out, middle);
  }
  return out;
}

std::vector<std::int32_t> FimTransform::split_and_permute(std::span<const std::int32_t> seq,
                                                          NumpyRandomState& rng) const {
  if (!tokens_.split || std::find(seq.begin(), seq.end(), *tokens_.split) == seq.end())
    return permute(seq, options_.rate, rng);
  if (!rng.binomial(1, options_.rate)) return {seq.begin(), seq.end()};
  std::vector<std::int32_t> out;
  out.reserve(seq.size() + 16);
  std::size_t cur = 0;
  for (std::size_t k = 0; k < seq.size(); ++k) {
    if (seq[k] != *tokens_.split) continue;
    if (k > cur) append(out, permute(seq.subspan(cur, k - cur), options_.fragment_rate, rng));
    out.push_back(*tokens_.split);  // kept even at a fragment's start or doubled (BigCode drops it)
    cur = k + 1;
  }
  append(out, permute(seq.subspan(cur), options_.fragment_rate, rng));
  return out;
}

void FimTransform::apply(std::vector<std::int32_t>& window, NumpyRandomState& rng) const {
  const std::size_t length = window.size();
  std::vector<std::int32_t> out;
  out.reserve(length + 16);
  const std::span<const std::int32_t> w(window);
  std::size_t cur = 0;
  for (std::size_t k = 0; k < length; ++k) {
    if (w[k] != eod_) continue;
    if (k > cur) append(out, split_and_permute(w.subspan(cur, k - cur), rng));
    out.push_back(eod_);  // kept even at the start or doubled (BigCode drops it)
    cur = k + 1;
  }
  append(out, split_and_permute(w.subspan(cur), rng));  // the tail, even when empty, as BigCode
  out.resize(length, tokens_.pad);                      // truncate, or right-pad with <fim_pad>
  window.swap(out);
}

}  // namespace tessera::gpt_indexed
