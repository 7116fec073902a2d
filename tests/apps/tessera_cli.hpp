// Running the built `tessera` binary from tests: an argument vector (no shell), stdout and stderr
// together, and a workspace with a byte-tokenized corpus of Tessera's own sources and a small config.
#pragma once
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tessera/subprocess.hpp"
#include "test_util.hpp"

namespace tessera::test {

inline const std::string kTesseraBinary = TESSERA_BINARY_DIR "/bin/tessera";

struct CliRun {
  ProcessResult result;
  const std::string& output() const { return result.output; }
  bool ok() const { return result.ok(); }
  bool clean_error() const { return result.exit_code == 1; }  // main's exit code for a tessera::Error
  bool has(const std::string& text) const { return result.output.find(text) != std::string::npos; }
};

inline CliRun tessera_cli(std::vector<std::string> args) {
  args.insert(args.begin(), kTesseraBinary);
  return {run_process(args, true)};
}

// A corpus and a config that trains a 1-layer GPT on it in a second or two.
struct CliWorkspace {
  TempDir dir;
  std::string config;
  explicit CliWorkspace(const std::string& extra_toml = "") {
    const CliRun p = tessera_cli({"preprocess", "--no-progress", "--tokenizer", "byte", "--input",
                                  TESSERA_SOURCE_DIR "/core/src/nn", "--output-prefix", dir / "corpus"});
    INFO(p.output());
    REQUIRE(p.ok());
    config = dir / "run.toml";
    std::ofstream(config) << fmt::format(R"(
[model]
plugin = "gpt"
num_layers = 2
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
train_iters = 6
[optimizer]
plugin = "adam"
lr = 3e-3
[checkpoint]
save = "{}"
{}
)", dir / "corpus", dir / "save", extra_toml);
  }
  std::string save() const { return dir / "save"; }
};

}  // namespace tessera::test
