// Running the built `tessera` binary from tests: an argument vector (no shell), stdout and stderr
// together, and a workspace with a byte-tokenized corpus of Tessera's own sources and a small config.
#pragma once
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "test_util.hpp"

namespace tessera::test {

inline const std::string kTesseraBinary = TESSERA_BINARY_DIR "/bin/tessera";

struct CliRun {
  int status = 0;      // the exit code, or -1 when a signal ended it (a crash is never a clean exit)
  std::string output;  // stdout and stderr
  bool ok() const { return status == 0; }
  bool exited_with(int code) const { return status == code; }
  // main returns 1 for a tessera::Error; CLI11 returns 105 for an option that fails its check.
  bool clean_error() const { return status == 1; }
  bool has(const std::string& text) const { return output.find(text) != std::string::npos; }
};

inline CliRun tessera_cli(std::vector<std::string> args) {
  args.insert(args.begin(), kTesseraBinary);
  CliRun r;
  r.output = run_command(args, &r.status, true);
  return r;
}

// `args` split at spaces (no shell: nothing in them is interpreted); tessera_cli for arguments that
// contain spaces.
inline CliRun run_tessera(const std::string& args) {
  std::vector<std::string> argv;
  std::istringstream words(args);
  for (std::string w; words >> w;) argv.push_back(w);
  return tessera_cli(argv);
}

// A config that trains a small GPT (2 layers, hidden 32, MQA, seq 32) for 6 iterations on `data_path`
// with the tokenizer `tokenizer_keys` ("plugin = \"byte\""), saving to `save`; `extra_toml` is
// appended (whole sections).
inline std::string small_gpt_run_toml(const std::string& tokenizer_keys, const std::string& data_path,
                                      const std::string& save, const std::string& extra_toml = "") {
  return fmt::format(R"(
[model]
plugin = "gpt"
num_layers = 2
hidden_size = 32
num_attention_heads = 2
num_query_groups = 1
seq_length = 32
[tokenizer]
{}
[data]
plugin = "gpt_indexed"
data_path = "{}"
split = "80,20,0"
[training]
micro_batch_size = 2
global_batch_size = 4
train_iters = 6
eval_interval = 6
eval_iters = 1
[optimizer]
plugin = "adam"
lr = 3e-3
[checkpoint]
save = "{}"
{}
)", tokenizer_keys, data_path, save, extra_toml);
}

// A corpus and a config that trains a small GPT on it in a second or two.
struct CliWorkspace {
  TempDir dir;
  std::string config;
  explicit CliWorkspace(const std::string& extra_toml = "") {
    const CliRun p = tessera_cli({"preprocess", "--no-progress", "--tokenizer", "byte", "--input",
                                  TESSERA_SOURCE_DIR "/core/src/nn", "--output-prefix", dir / "corpus"});
    INFO(p.output);
    REQUIRE(p.ok());
    config = dir / "run.toml";
    std::ofstream(config) << small_gpt_run_toml("plugin = \"byte\"", dir / "corpus", dir / "save", extra_toml);
  }
  std::string save() const { return dir / "save"; }
};

}  // namespace tessera::test
