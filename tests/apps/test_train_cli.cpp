// `tessera train` and `tessera generate` end to end through the binary, and the clear errors (with
// a non-zero exit code, never a crash) for bad configs, missing plugins, corrupt data and
// tokenizer files, and a missing saved model.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "test_util.hpp"

using tessera::test::TempDir;
namespace test = tessera::test;

namespace {

const std::string kTessera = TESSERA_BINARY_DIR "/bin/tessera";

struct Run {
  int status = 0;
  std::string output;
};

Run run_tessera(const std::string& args) {
  Run r;
  r.output = test::run_command(kTessera + " " + args + " 2>&1", &r.status);
  return r;
}

// A byte-tokenized corpus of Tessera's own sources and a config that trains on it.
struct Workspace {
  TempDir dir;
  std::string config;
  Workspace() {
    const Run p = run_tessera(fmt::format("preprocess --no-progress --tokenizer byte --input {}/core/src/nn --output-prefix {}",
                                      TESSERA_SOURCE_DIR, dir / "corpus"));
    REQUIRE(p.status == 0);
    config = dir / "run.toml";
    std::ofstream(config) << fmt::format(R"(
[model]
plugin = "gpt"
num_layers = 1
hidden_size = 32
num_attention_heads = 2
num_query_groups = 1
seq_length = 32
[tokenizer]
type = "byte"
[data]
plugin = "gpt_indexed"
data_path = "{}"
split = "80,20,0"
[training]
micro_batch_size = 2
global_batch_size = 4
train_iters = 12
eval_interval = 6
eval_iters = 1
[optimizer]
plugin = "adam"
lr = 3e-3
[checkpoint]
save = "{}"
)", dir / "corpus", dir / "model");
  }
};

}  // namespace

TEST_CASE("train then generate through the command line", "[unit]") {
  Workspace w;
  const Run t = run_tessera("train " + w.config + " --set training.train_iters=12");
  INFO(t.output);
  REQUIRE(t.status == 0);
  CHECK(t.output.find("iteration       12/      12") != std::string::npos);
  CHECK(t.output.find("validation loss at iteration 12") != std::string::npos);
  CHECK(t.output.find("run summary") != std::string::npos);
  REQUIRE(std::filesystem::exists(w.dir / "model/model.safetensors"));
  const Run g = run_tessera(fmt::format("generate --load {} --prompt 'Tensor ' --max-new-tokens 20 --seed 3", w.dir / "model"));
  INFO(g.output);
  REQUIRE(g.status == 0);
  CHECK(g.output.rfind("Tensor ", 0) == 0);
  CHECK(g.output.size() > std::string("Tensor \n").size());
  // Greedy decoding is deterministic.
  const std::string greedy = fmt::format("generate --load {} --prompt 'x' --max-new-tokens 10 --temperature 0", w.dir / "model");
  CHECK(run_tessera(greedy).output == run_tessera(greedy).output);
}

TEST_CASE("bad input is a clear error with a non-zero exit code", "[unit]") {
  Workspace w;
  SECTION("unknown config key names the key, the file and the allowed keys") {
    const Run r = run_tessera("train " + w.config + " --set model.num_layer=2");
    CHECK(r.status != 0);
    CHECK(r.output.find("num_layer") != std::string::npos);
    CHECK(r.output.find("num_layers") != std::string::npos);
  }
  SECTION("wrong type names the key and the file") {
    const Run r = run_tessera("train " + w.config + " --set model.hidden_size=wide");
    CHECK(r.status != 0);
    CHECK(r.output.find("model.hidden_size") != std::string::npos);
    CHECK(r.output.find("integer") != std::string::npos);
  }
  SECTION("missing plugin lists the available ones") {
    const Run r = run_tessera("train " + w.config + " --set model.plugin=gtp");
    CHECK(r.status != 0);
    CHECK(r.output.find("gtp") != std::string::npos);
    CHECK(r.output.find("gpt") != std::string::npos);
  }
  SECTION("truncated .idx names the file") {
    std::filesystem::resize_file(w.dir / "corpus.idx", 40);
    const Run r = run_tessera("train " + w.config);
    CHECK(r.status != 0);
    CHECK(r.output.find("corpus.idx") != std::string::npos);
  }
  SECTION("missing .idx names the file") {
    std::filesystem::remove(w.dir / "corpus.idx");
    const Run r = run_tessera("train " + w.config);
    CHECK(r.status != 0);
    CHECK(r.output.find("corpus.idx") != std::string::npos);
  }
  SECTION("a tokenizer file that does not parse names the file") {
    std::ofstream(w.dir / "vocab.json") << "{ not json";
    std::ofstream(w.dir / "merges.txt") << "#version: 0.2\n";
    const Run r = run_tessera(fmt::format("train {} --set tokenizer.type=gpt2_bpe --set tokenizer.vocab_file={} "
                                      "--set tokenizer.merges_file={}", w.config, w.dir / "vocab.json", w.dir / "merges.txt"));
    CHECK(r.status != 0);
    CHECK(r.output.find("vocab.json") != std::string::npos);
  }
  SECTION("generate without a saved model says what it expected") {
    const Run r = run_tessera("generate --load " + (w.dir / "nothing"));
    CHECK(r.status != 0);
    CHECK(r.output.find("model.safetensors") != std::string::npos);
  }
  SECTION("a config file that does not exist") {
    const Run r = run_tessera("train " + (w.dir / "missing.toml"));
    CHECK(r.status != 0);
    CHECK(r.output.find("missing.toml") != std::string::npos);
  }
}
