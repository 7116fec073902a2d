// Fuzzes the GPT-2 byte-level BPE loader: vocab.json/encoder.json and merges.txt/vocab.bpe. One fuzz
// input is a vocab and a merges file joined by a separator line (kSeparator); an input without the
// separator is a merges file for the first seed's vocab (the 256 byte entries make a vocab far larger
// than its merges, so most mutations of a pair land in the JSON: these inputs fuzz the merges and
// the encoder behind them). Seeds are small valid byte-level vocabularies (the 256 byte symbols, a
// few merges, <|endoftext|> and another special token), with and without their vocab. Parsing = load the tokenizer from the two files (every other input parses them with special
// tokens on), encode a short text of ASCII, Unicode, invalid UTF-8 and special-token text, and decode
// the ids: the text must come back (a loader that accepts a file must make a tokenizer that works).
//
// The second case fuzzes the bert_wordpiece plugin's vocab.txt loader, through the plugin as a config
// loads it: a vocab that loads must give a tokenizer whose ids lie in its vocabulary, that decodes
// them, and that has the special tokens the BERT and T5 data need.
#include <unistd.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "fuzz_harness.hpp"
#include "gpt2_bpe_tokenizer.hpp"  // the gpt2_bpe plugin's tokenizer library
#include "tessera/config.hpp"
#include "tessera/train/components.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using tessera::fuzz::Bytes;

namespace {

const std::string kSeparator = "\n--tessera-fuzz-merges--\n";
const std::string kText =
    "Hello world, the theory thereof! don't  stop\t\n  <|endoftext|>x<|fim|> caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac "
    "\xf0\x9f\x91\x8d \xff\xfe\xc3 12345 <|endoftext";

struct Folder {
  fs::path path = fs::temp_directory_path() / ("tessera_fuzz_tokenizer_" + std::to_string(::getpid()));
  Folder() { fs::create_directories(path); }
  ~Folder() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string byte_symbol(int b) {
  static const auto b2u = gpt2_byte_to_unicode();
  const char32_t cp = b2u[static_cast<std::size_t>(b)];
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// A valid byte-level vocab: the 256 byte symbols, then each merge's result, then the specials.
Bytes seed(const std::vector<std::pair<std::string, std::string>>& merges, const std::vector<std::string>& specials,
           const std::string& header = "#version: 0.2\n") {
  nlohmann::ordered_json vocab;
  int id = 0;
  for (int b = 0; b < 256; ++b) vocab[byte_symbol(b)] = id++;
  std::string merges_text = header;
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = id++;
    merges_text += a + " " + b + "\n";
  }
  for (const auto& s : specials) vocab[s] = id++;
  return vocab.dump() + kSeparator + merges_text;
}

void parse(const Folder& dir, const Bytes& default_vocab, const Bytes& input) {
  const std::size_t cut = input.find(kSeparator);
  const fs::path vocab = dir.path / "vocab.json", merges = dir.path / "merges.txt";
  fuzz::write_file_bytes(vocab, cut == Bytes::npos ? default_vocab : input.substr(0, cut));
  fuzz::write_file_bytes(merges, cut == Bytes::npos ? input : input.substr(cut + kSeparator.size()));
  const bool special = input.size() % 2 == 0;
  const Gpt2BpeTokenizer tok(vocab.string(), merges.string(), special);
  const std::vector<std::int32_t> ids = tok.encode(kText);
  for (const std::int32_t id : ids)
    if (id < 0 || id >= tok.vocab_size()) throw std::logic_error("encode gave an id outside the vocab");
  if (tok.decode(ids) != kText) throw std::logic_error("decode(encode(text)) != text");
  if (tok.encode("").size() != 0) throw std::logic_error("encode(\"\") is not empty");
}

const std::string kBertText = "Hello, World! Theory thereof; CAF\xc3\x89 na\xc3\xafve \xce\x9f\xce\x94\xce\x9f\xce\xa3 "
                              "\xe6\x97\xa5\xe6\x9c\xac \xed\x95\x9c\xea\xb5\xad \x01\xff\xfe [MASK] <extra_id_0> [SEP "
                              "helloworldhello ##s " + std::string(210, 'a') + " " + std::string(200, 'h');

void parse_bert(const Folder& dir, const Bytes& input) {
  const fs::path vocab = dir.path / "vocab.txt";
  fuzz::write_file_bytes(vocab, input);
  const Config config = Config::from_string(
      fmt::format("[tokenizer]\nplugin = \"bert_wordpiece\"\nvocab_file = '{}'\nlower_case = {}\nvocab_extra_ids = {}\n"
                  "parse_special_tokens = {}\n",
                  vocab.string(), input.size() % 2 == 0, input.size() % 3, input.size() % 5 == 0));
  const auto tok = build_tokenizer(config);
  const std::vector<std::int32_t> ids = tok->encode(kBertText);
  for (const std::int32_t id : ids)
    if (id < 0 || id >= tok->vocab_size()) throw std::logic_error("encode gave an id outside the vocab");
  (void)tok->decode(ids);
  for (const char* special : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[BOS]", "[EOS]"})
    if (!tok->special_token(special)) throw std::logic_error(std::string("a vocab that loads has no ") + special);
  if (!tok->encode("").empty()) throw std::logic_error("encode(\"\") is not empty");
}

}  // namespace

TEST_CASE("fuzz: BERT WordPiece vocab.txt loader (the bert_wordpiece plugin)", "[fuzz]") {
  const Folder dir;
  fuzz::FuzzTarget t;
  t.name = "tokenizer_bert";
  const std::string specials = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
  t.seeds = {
      specials + "hello\n##s\nworld\nthe\n##ory\n##of\n,\n!\n;\ncafe\nna\n##ive\n\xe6\x97\xa5\n\xe6\x9c\xac\na\n##a\nh\n##h\n",
      "  [PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\n[BOS]\r\n[EOS]\r\n<extra_id_0>\r\nHello\r\n##,\r\nWorld",
      specials + "\xce\xbf\n##\xce\xb4\n##\xce\xbf\xcf\x82\n\xe1\x84\x92\n##\xe1\x85\xa1\n##\xe1\x86\xab\n\n[unused0]\n##\n",
  };
  t.parse = [&](const Bytes& input) { parse_bert(dir, input); };
  t.iterations = 2000;
  tessera::fuzz::run_fuzz(t);
}

TEST_CASE("fuzz: GPT-2 BPE vocab.json + merges.txt loader", "[fuzz]") {
  const Folder dir;
  const std::string G = byte_symbol(' ');  // "Ġ"
  fuzz::FuzzTarget t;
  t.name = "tokenizer";
  t.seeds = {
      seed({{G, "t"}, {"h", "e"}, {G + "t", "he"}, {"t", "h"}, {G, "w"}, {"o", "r"}, {G + "w", "or"}},
           {"<|endoftext|>", "<|fim|>"}),
      seed({{"l", "l"}, {"e", "ll"}, {"H", "ell"}, {"Hell", "o"}, {G, "s"}, {byte_symbol(0xC3), byte_symbol(0xA9)}},
           {"<|endoftext|>"}, ""),
      seed({{"1", "2"}, {"12", "3"}, {"4", "5"}, {"123", "45"}, {"'", "t"}, {G, G}, {G + G, G}}, {"<|endoftext|>", "<|x|>"},
           "#version: 0.2\r\n"),
  };
  // Merges alone, for the first seed's vocab: as they are, in reverse order (other ranks), repeated.
  const Bytes vocab0 = t.seeds[0].substr(0, t.seeds[0].find(kSeparator));
  const Bytes merges0 = t.seeds[0].substr(t.seeds[0].find(kSeparator) + kSeparator.size());
  std::vector<std::string> lines;
  for (std::size_t pos = merges0.find('\n') + 1; pos < merges0.size();) {  // after the #version line
    const std::size_t end = merges0.find('\n', pos);
    lines.push_back(merges0.substr(pos, end - pos + 1));
    pos = end + 1;
  }
  Bytes reversed;
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) reversed += *it;
  t.seeds.push_back(merges0);
  t.seeds.push_back(reversed);
  t.seeds.push_back(merges0 + reversed + reversed);
  t.parse = [&](const Bytes& input) { parse(dir, vocab0, input); };
  t.iterations = 3000;
  tessera::fuzz::run_fuzz(t);
}
