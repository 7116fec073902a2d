// The sentencepiece tokenizer plugin against Google's SentencePiece in Python (Debian's
// python3-sentencepiece, sentencepiece_reference.py): two models it trains on Debian's Apache-2.0
// text (BPE with byte fallback as Llama 2's, unigram with <unk>) encode every test text to the same ids
// and decode them to the same text; Llama2Tokenizer's bos; special pieces; the errors; and end to
// end: `tessera preprocess --tokenizer-type Llama2Tokenizer`, train, the saved copy of the model,
// generate.
#include <filesystem>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "expect_error.hpp"
#include "tessera/config.hpp"
#include "tessera/data/indexed_dataset.hpp"
#include "tessera/error.hpp"
#include "tessera/train/components.hpp"
#include "make_tokenizer.hpp"
#include "tessera_cli.hpp"
#include "test_util.hpp"

using namespace tessera;
using json = nlohmann::json;
using Catch::Contains;

namespace {

const std::vector<std::string> kTexts = {
    "Licensed under the Apache License, Version 2.0",
    "",
    "  leading and  double  spaces ",
    "Übersetzung — naïve café: 日本語 🚀",
    "line one\nline two\ttab",
    "</s> is text here, <s> too",
    "WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.",
    "Copyright [yyyy] [name of copyright owner]\n\n   Licensed under the Apache License"};

// The models and reference.json, made once per test run.
const test::TempDir& reference_dir() {
  static const test::TempDir dir;
  static const bool made = [] {
    test::write_text(dir / "texts.json", json(kTexts).dump());
    test::run_command({"/usr/bin/python3", TESSERA_TOKENIZER_TESTS_DIR "/sentencepiece_reference.py", dir / "models",
                       dir / "texts.json"});
    return true;
  }();
  (void)made;
  return dir;
}

std::string model(const std::string& name) { return reference_dir() / ("models/" + name + ".model"); }

PluginPtr<Tokenizer> make(const std::string& keys) { return test::make_tokenizer_with_keys("sentencepiece", keys, "t.toml"); }

// Each reference case's text encodes to its ids and they decode to its text; returns how many.
int check_reference_cases(const Tokenizer& tok, const json& cases) {
  int checked = 0;
  for (const json& c : cases) {
    INFO(c.at("text").get<std::string>());
    const auto ids = tok.encode(c.at("text").get<std::string>());
    CHECK(ids == c.at("ids").get<std::vector<std::int32_t>>());
    CHECK(tok.decode(ids) == c.at("decoded").get<std::string>());
    ++checked;
  }
  return checked;
}

// The licence's paragraphs as documents: folder/a_000.txt, a_001.txt, …; returns how many.
int write_licence_paragraphs(const std::filesystem::path& folder) {
  std::filesystem::create_directories(folder);
  const std::string licence = test::read_text("/usr/share/common-licenses/Apache-2.0");
  int files = 0;
  for (std::size_t pos = 0; pos < licence.size();) {
    std::size_t end = licence.find("\n\n", pos);
    end = end == std::string::npos ? licence.size() : end + 2;
    test::write_text(folder / fmt::format("a_{:03}.txt", files++), licence.substr(pos, end - pos));
    pos = end;
  }
  return files;
}

}  // namespace

TEST_CASE("sentencepiece: BPE with byte fallback and unigram models encode and decode as SentencePiece", "[reference]") {
  const json reference = json::parse(test::read_text(reference_dir() / "models/reference.json"));
  for (const std::string name : {"bpe", "unigram"}) {
    INFO(name);
    const json& r = reference.at(name);
    const auto tok = make(fmt::format("tokenizer_model = '{}'\n", model(name)));
    CHECK(tok->vocab_size() == r.at("vocab_size").get<std::int64_t>());
    CHECK(tok->eod() == r.at("eos").get<std::int32_t>());
    CHECK(tok->special_token("</s>") == r.at("eos").get<std::int32_t>());
    CHECK(tok->special_token("<s>") == r.at("bos").get<std::int32_t>());
    CHECK(!tok->special_token("<|endoftext|>").has_value());
    CHECK(tok->name() == "sentencepiece");
    CHECK(tok->file_keys() == std::vector<std::string>{"tokenizer_model"});
    CHECK(check_reference_cases(*tok, r.at("cases")) == static_cast<int>(kTexts.size()));
    // Llama2Tokenizer: the bos id first, then the same pieces.
    const auto llama = make(fmt::format("tokenizer_model = '{}'\nadd_bos = true\n", model(name)));
    const json& first = r.at("cases").at(0);
    std::vector<std::int32_t> with_bos = {r.at("bos").get<std::int32_t>()};
    for (std::int32_t id : first.at("ids").get<std::vector<std::int32_t>>()) with_bos.push_back(id);
    CHECK(llama->encode(first.at("text").get<std::string>()) == with_bos);
  }
  // The byte-fallback model keeps text outside its pieces; the unigram one turns it into <unk>.
  const json& bpe_cases = reference.at("bpe").at("cases");
  CHECK(bpe_cases.at(3).at("decoded") == kTexts[3]);
  CHECK(reference.at("unigram").at("cases").at(3).at("decoded") != kTexts[3]);
}

TEST_CASE("sentencepiece: bad keys, files and ids are clear errors", "[reference]") {
  CHECK_THAT(message_of<ConfigError>([] { make(""); }), Contains("needs tokenizer.tokenizer_model (in t.toml)"));
  CHECK_THAT(message_of<ConfigError>([] { make("tokenizer_model = '/nonexistent/tokenizer.model'\n"); }),
             Contains("/nonexistent/tokenizer.model") && Contains("is not a file"));
  const test::TempDir dir;
  test::write_text(dir / "not.model", "this is not a protobuf model");
  CHECK_THAT(message_of<FormatError>([&] { make(fmt::format("tokenizer_model = '{}'\n", dir / "not.model")); }),
             Contains(dir / "not.model") && Contains("not a SentencePiece model"));
  CHECK_THAT(message_of<ConfigError>([] { make(fmt::format("tokenizer_model = '{}'\nvocab_file = 'x'\n", model("bpe"))); }),
             Contains("vocab_file"));
  const auto tok = make(fmt::format("tokenizer_model = '{}'\n", model("bpe")));
  CHECK_THAT(message_of<Error>([&] { tok->decode({1, 400}); }), Contains("cannot decode id 400 (the model's ids are 0 … 399)"));
  CHECK_THAT(message_of<Error>([&] { tok->decode({-1}); }), Contains("cannot decode id -1"));
}

TEST_CASE("sentencepiece end to end: Llama2Tokenizer data, training, the saved model's copy, generate", "[reference]") {
  const test::TempDir dir;
  std::filesystem::copy_file(model("bpe"), dir / "tokenizer.model");
  // The licence's paragraphs as documents, and one with text outside the model's pieces.
  const int files = write_licence_paragraphs(dir / "src");
  REQUIRE(files > 20);
  test::write_text(dir / "src/b.txt", "Übersetzung — naïve café\n");
  const auto p = test::tessera_cli({"preprocess", "--no-progress", "--input", dir / "src", "--tokenizer-type",
                                    "Llama2Tokenizer", "--tokenizer-model", dir / "tokenizer.model", "--output-prefix",
                                    dir / "corpus", "--workers", "2"});
  INFO(p.output);
  REQUIRE(p.ok());
  CHECK(p.has("tokenizer sentencepiece (vocab 400, EOD 2)"));
  // Each document: bos, its pieces, eos (the end of document), as Megatron-LM's Llama2Tokenizer data.
  const auto llama = make(fmt::format("tokenizer_model = '{}'\nadd_bos = true\n", dir / "tokenizer.model"));
  IndexedDataset ds(dir / "corpus");
  REQUIRE(ds.num_documents() == files + 1);
  auto expected = llama->encode("Übersetzung — naïve café\n");
  expected.push_back(2);
  CHECK(ds.sequence_int32(files) == expected);  // b.txt sorts last
  CHECK(ds.sequence_int32(0).front() == 1);
  test::write_text(dir / "run.toml",
                   test::small_gpt_run_toml(fmt::format("plugin = \"sentencepiece\"\ntokenizer_model = \"{}\"\nadd_bos = true",
                                                        dir / "tokenizer.model"),
                                            dir / "corpus", dir / "save"));
  const auto t = test::tessera_cli({"train", dir / "run.toml", "--set", "training.train_iters=2", "--set",
                                    "training.eval_interval=2"});
  INFO(t.output);
  REQUIRE(t.ok());
  // The saved model carries its own copy of the SentencePiece model and works without the original.
  CHECK(test::read_text(dir / "save/tokenizer/tokenizer.model") == test::read_text(dir / "tokenizer.model"));
  std::filesystem::remove(dir / "tokenizer.model");
  const auto g = test::tessera_cli({"generate", "--load", dir / "save", "--prompt", "Licensed under", "--max-new-tokens", "4"});
  INFO(g.output);
  CHECK(g.ok());
  CHECK(g.has("Licensed under"));
}

TEST_CASE("sentencepiece with Megatron-LM's special tokens (SentencePieceTokenizer) encodes and decodes as Megatron",
          "[reference]") {
  using Role = Tokenizer::Role;
  const json reference = json::parse(test::read_text(reference_dir() / "models/reference.json")).at("megatron");
  for (const std::string name : {"bpe", "unigram", "specials"}) {
    INFO(name);
    const json& r = reference.at(name);
    const auto tok = make(fmt::format("tokenizer_model = '{}'\nadded_special_tokens = true\nvocab_extra_ids = 12\n",
                                      model(name)));
    CHECK(tok->vocab_size() == r.at("vocab_size").get<std::int64_t>());
    CHECK(tok->eod() == r.at("eod").get<std::int32_t>());  // <EOD>, not the model's eos
    for (const auto& [role, key] : {std::pair{Role::cls, "cls"}, std::pair{Role::sep, "sep"},
                                    std::pair{Role::mask, "mask"}, std::pair{Role::pad, "pad"},
                                    std::pair{Role::bos, "bos"}, std::pair{Role::eos, "eos"}}) {
      INFO(key);
      CHECK(tok->role(role) == r.at(key).get<std::int32_t>());
    }
    CHECK(tok->special_token("<CLS>") == r.at("cls").get<std::int32_t>());
    const auto sentinels = r.at("sentinels").get<std::vector<std::int32_t>>();
    REQUIRE(sentinels.size() == 12);
    for (std::size_t n = 0; n < sentinels.size(); ++n) CHECK(tok->special_token(fmt::format("<extra_id_{}>", n)) == sentinels[n]);
    CHECK(!tok->special_token("<extra_id_12>").has_value());
    CHECK(check_reference_cases(*tok, r.at("cases")) > static_cast<int>(kTexts.size()));  // and the special texts
  }
  // The model's own pieces serve where it has them: the specials model's pad and <MASK>.
  CHECK(reference.at("specials").at("pad") == 3);
  CHECK(reference.at("specials").at("mask") == 4);
  CHECK(reference.at("bpe").at("pad") == 404);  // no pad piece: <PAD> added
  // Without the key the WordPiece names of the roles are not found, and BERT's data says what to set.
  const auto plain = make(fmt::format("tokenizer_model = '{}'\n", model("bpe")));
  CHECK(!plain->role(Role::cls).has_value());
  CHECK_THAT(message_of<ConfigError>([] { make(fmt::format("tokenizer_model = '{}'\nvocab_extra_ids = 3\n", model("bpe"))); }),
             Contains("tokenizer.vocab_extra_ids = 3 (in t.toml)") && Contains("added_special_tokens = true"));
  const auto tok = make(fmt::format("tokenizer_model = '{}'\nadded_special_tokens = true\n", model("bpe")));
  CHECK(tok->decode({400}) == " <CLS> ");
  CHECK_THAT(message_of<Error>([&] { tok->decode({405}); }), Contains("cannot decode id 405"));
}

TEST_CASE("sentencepiece end to end: SentencePieceTokenizer sentences train BERT and T5", "[reference]") {
  const test::TempDir dir;
  const std::string tokenizer_model = model("bpe");
  REQUIRE(write_licence_paragraphs(dir / "src") > 20);
  const auto p = test::tessera_cli({"preprocess", "--no-progress", "--input", dir / "src",
                                    "--tokenizer-type", "SentencePieceTokenizer", "--tokenizer-model", tokenizer_model,
                                    "--vocab-extra-ids", "100", "--split-sentences", "--output-prefix",
                                    dir / "sentences", "--workers", "1"});
  INFO(p.output);
  REQUIRE(p.ok());
  CHECK(p.has("tokenizer sentencepiece (vocab 505, no EOD appended)"));  // 400 pieces + 5 added + 100 sentinels
  const auto run = [&](const std::string& model_keys, const std::string& data_plugin, const std::string& name) {
    test::write_text(dir / (name + ".toml"), fmt::format(R"(
[model]
{}
num_layers = 2
hidden_size = 32
num_attention_heads = 4
seq_length = 32
[tokenizer]
plugin = "sentencepiece"
tokenizer_model = "{}"
added_special_tokens = true
vocab_extra_ids = 100
[data]
plugin = "{}"
data_path = "{}"
split = "90,10,0"
[training]
micro_batch_size = 2
global_batch_size = 4
train_iters = 2
eval_interval = 2
eval_iters = 1
[optimizer]
plugin = "adam"
lr = 3e-3
)",
                                                         model_keys, tokenizer_model, data_plugin, dir / "sentences"));
    return test::tessera_cli({"train", dir / (name + ".toml")});
  };
  const auto bert = run("plugin = \"bert\"", "bert_indexed", "bert");
  INFO(bert.output);
  CHECK(bert.ok());
  CHECK(bert.has("iteration        2/       2"));
  const auto t5 = run("plugin = \"t5\"\ndecoder_seq_length = 16", "t5_indexed", "t5");
  INFO(t5.output);
  CHECK(t5.ok());
  CHECK(t5.has("iteration        2/       2"));
}
