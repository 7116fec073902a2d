// Fuzzes the hf_tokenizer plugin's tokenizer.json reader (plugins/tokenizer_hf). Seeds are small valid
// byte-level tokenizer.json files: StarCoder's shape (Digits + ByteLevel, added tokens, "a b" merges),
// a Split with a regex (PCRE2) and pair merges, and ByteLevel alone with a prefix space. A file that
// loads must give a tokenizer whose ids lie in its vocabulary and that decodes them; with added tokens'
// text left as text (odd-sized inputs) decode(encode(text)) is the text, read as UTF-8 lossily (after
// the space ByteLevel's add_prefix_space puts before it).
#include <unistd.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "byte_level_bpe.hpp"  // the byte table, from the gpt2_bpe plugin's library
#include "fuzz_harness.hpp"
#include "hf_tokenizer.hpp"    // the hf_tokenizer plugin's tokenizer library
#include "tessera/utf8.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using tessera::fuzz::Bytes;
using json = nlohmann::ordered_json;

namespace {

const std::string kText =
    "Hello world, the theory thereof! don't  stop\t\n  <|endoftext|>x<fim_prefix>a 12<fim_middle> caf\xc3\xa9 "
    "\xe6\x97\xa5\xe6\x9c\xac \xd9\xa3\xc2\xbd \xf0\x9f\x91\x8d \xff\xfe\xc3 12345 <|endoftext The-final--countdown";

std::string byte_symbol(int b) {
  static const auto b2u = gpt2_byte_to_unicode();
  std::string s;
  unicode::append_utf8(s, b2u[static_cast<std::size_t>(b)]);
  return s;
}

json added(const std::string& content, int id, bool normalized) {
  return json{{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
              {"normalized", normalized}, {"special", !normalized}};
}

Bytes seed(const json& pre_tokenizer, const std::vector<std::pair<std::string, std::string>>& merges, bool pairs,
           const std::vector<std::string>& specials) {
  json vocab = json::object();
  int id = 0;
  json added_tokens = json::array();
  for (const auto& s : specials) {
    added_tokens.push_back(added(s, id, id % 2 == 1));
    vocab[s] = id++;
  }
  for (int b = 0; b < 256; ++b) vocab[byte_symbol(b)] = id++;
  json merge_list = json::array();
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = id++;
    merge_list.push_back(pairs ? json::array({a, b}) : json(a + " " + b));
  }
  return json{{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added_tokens},
              {"normalizer", nullptr}, {"pre_tokenizer", pre_tokenizer},
              {"post_processor", json{{"type", "ByteLevel"}, {"trim_offsets", false}}},
              {"decoder", json{{"type", "ByteLevel"}}},
              {"model", json{{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"byte_fallback", false},
                             {"ignore_merges", pairs}, {"vocab", vocab}, {"merges", merge_list}}}}
      .dump(1);
}

void parse(const fs::path& file, const Bytes& input) {
  fuzz::write_file_bytes(file, input);
  const bool special = input.size() % 2 == 0;
  HfTokenizerOptions options;
  options.parse_special_tokens = special;
  const HfTokenizer tok(file.string(), options);
  const std::vector<std::int32_t> ids = tok.encode(kText);
  for (const std::int32_t id : ids)
    if (id < 0 || id >= tok.vocab_size()) throw std::logic_error("encode gave an id outside the vocab");
  const std::string back = tok.decode(ids);
  // A Split that removes text ("Removed") cannot give it back; ByteLevel's add_prefix_space adds a space.
  if (!special && input.find("Removed") == Bytes::npos && back != utf8_lossy(kText) && back != " " + utf8_lossy(kText))
    throw std::logic_error("decode(encode(text)) != text");
  if (!tok.encode("").empty()) throw std::logic_error("encode(\"\") is not empty");
}

}  // namespace

TEST_CASE("fuzz: Hugging Face tokenizer.json loader (the hf_tokenizer plugin)", "[fuzz]") {
  const fs::path dir = fs::temp_directory_path() / ("tessera_fuzz_hf_tokenizer_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string G = byte_symbol(' ');  // "Ġ"
  const std::vector<std::pair<std::string, std::string>> merges = {
      {G, "t"}, {"h", "e"}, {G + "t", "he"}, {"t", "h"}, {G, "w"}, {"o", "r"}, {G + "w", "or"}, {"l", "l"},
      {"e", "ll"}, {"H", "ell"}, {"Hell", "o"}, {"1", "2"}, {G, G}};
  const json byte_level = json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  fuzz::FuzzTarget t;
  t.name = "hf_tokenizer";
  t.seeds = {
      seed(json{{"type", "Sequence"},
                {"pretokenizers", json::array({json{{"type", "Digits"}, {"individual_digits", true}}, byte_level})}},
           merges, false, {"<|endoftext|>", "<fim_prefix>", "<fim_middle>"}),
      seed(json{{"type", "Sequence"},
                {"pretokenizers",
                 json::array({json{{"type", "Split"},
                                   {"pattern", json{{"Regex", "(?i:'s|'t)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|\\s+"}}},
                                   {"behavior", "Isolated"}, {"invert", false}},
                              json{{"type", "Split"}, {"pattern", json{{"String", "-"}}}, {"behavior", "MergedWithNext"},
                                   {"invert", false}},
                              json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}},
           merges, true, {"<|endoftext|>"}),
      seed(json{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}, merges, false, {}),
  };
  t.parse = [&](const Bytes& input) { parse(dir / "tokenizer.json", input); };
  t.iterations = 1500;
  tessera::fuzz::run_fuzz(t);
  std::error_code ec;
  fs::remove_all(dir, ec);
}
