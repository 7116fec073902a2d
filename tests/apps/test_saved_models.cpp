// `tessera generate --load` on every kind of saved model, and the saved models' independence from
// where they were trained: tokenizer files travel with them. Weights that do not match their config,
// or that are not finite, are errors rather than garbage with exit code 0.
#include <catch2/catch.hpp>

#include "tessera/io/safetensors.hpp"
#include "tessera_cli.hpp"

namespace fs = std::filesystem;
using tessera::test::CliRun;
using tessera::test::CliWorkspace;
using tessera::test::tessera_cli;

namespace {

// Sampled with a fixed seed: the same weights give the same text, other weights (almost surely) not.
std::vector<std::string> sample(const std::string& load) {
  return {"generate", "--load", load, "--prompt", "Tensor ", "--max-new-tokens", "40", "--temperature", "1",
          "--top-k", "0", "--top-p", "1", "--seed", "3"};
}

std::string replace_line(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("generate loads final weights, a checkpoint folder and a save folder alike", "[unit]") {
  CliWorkspace w("save_interval = 3");
  REQUIRE(tessera_cli({"train", w.config}).ok());
  const CliRun final_weights = tessera_cli(sample(w.save()));
  INFO(final_weights.output);
  REQUIRE(final_weights.ok());
  const CliRun checkpoint = tessera_cli(sample(w.save() + "/iter_0000006"));
  INFO(checkpoint.output);
  REQUIRE(checkpoint.ok());
  CHECK(checkpoint.output == final_weights.output);  // the same weights, the same greedy text
  CHECK(tessera_cli(sample(w.save() + "/iter_0000003")).output != final_weights.output);
  // The key/value cache (the default) and a full forward per token sample the same text, greedy
  // and at temperature 1 (docs/generation.md).
  std::vector<std::string> uncached = sample(w.save());
  uncached.push_back("--no-kv-cache");
  CHECK(tessera_cli(uncached).output == final_weights.output);
  std::vector<std::string> greedy = sample(w.save());
  greedy[8] = "0";  // --temperature 0
  const CliRun greedy_cached = tessera_cli(greedy);
  greedy.push_back("--no-kv-cache");
  CHECK(tessera_cli(greedy).output == greedy_cached.output);
  // Without final weights, the save folder means its latest checkpoint.
  fs::remove(w.save() + "/model.safetensors");
  CHECK(tessera_cli(sample(w.save())).output == final_weights.output);
}

TEST_CASE("a saved model needs neither the training folder nor the tokenizer files it was trained with",
          "[unit][reference]") {
  CliWorkspace w;
  const std::string vocab_dir = TESSERA_GPT2_VOCAB_DIR;
  for (const char* f : {"encoder.json", "vocab.bpe"}) fs::copy_file(vocab_dir + "/" + f, w.dir / f);
  const std::string tok = R"([tokenizer]
plugin = "gpt2_bpe"
vocab_file = ")" + (w.dir / "encoder.json") + R"("
merges_file = ")" + (w.dir / "vocab.bpe") + "\"\n";
  tessera::test::write_text(w.config, replace_line(tessera::test::read_text(w.config), "[tokenizer]\nplugin = \"byte\"\n", tok));
  REQUIRE(tessera_cli({"preprocess", "--no-progress", "--tokenizer", "gpt2_bpe", "--vocab-file", w.dir / "encoder.json",
                       "--merges-file", w.dir / "vocab.bpe", "--input", TESSERA_SOURCE_DIR "/core/src/nn",
                       "--output-prefix", w.dir / "corpus"})
              .ok());
  const CliRun t = tessera_cli({"train", w.config, "--set", "checkpoint.save_interval=6"});
  INFO(t.output);
  REQUIRE(t.ok());
  const CliRun before = tessera_cli(sample(w.save()));
  REQUIRE(before.ok());
  // Move the saved model away and delete everything else it came from.
  tessera::test::TempDir elsewhere;
  fs::rename(w.save(), elsewhere / "model");
  for (const char* f : {"encoder.json", "vocab.bpe", "corpus.bin", "corpus.idx", "run.toml"}) fs::remove(w.dir / f);
  CHECK(fs::exists(elsewhere / "model/tokenizer/encoder.json"));
  CHECK(tessera::test::read_text(elsewhere / "model/config.toml").find("vocab_file = \"tokenizer/encoder.json\"") !=
        std::string::npos);
  const CliRun after = tessera_cli(sample(elsewhere / "model"));
  INFO(after.output);
  CHECK(after.ok());
  CHECK(after.output == before.output);
  const CliRun from_checkpoint = tessera_cli(sample(elsewhere / "model/iter_0000006"));
  INFO(from_checkpoint.output);
  CHECK(from_checkpoint.output == before.output);
}

TEST_CASE("generate refuses weights its config does not describe, non-finite weights and unknown keys", "[unit]") {
  CliWorkspace w;
  REQUIRE(tessera_cli({"train", w.config}).ok());
  const std::string config = w.save() + "/config.toml", weights = w.save() + "/model.safetensors";
  const std::string original = tessera::test::read_text(config);
  SECTION("a 1-layer config on 2-layer weights") {
    tessera::test::write_text(config, replace_line(original, "num_layers = 2", "num_layers = 1"));
    const CliRun r = tessera_cli(sample(w.save()));
    INFO(r.output);
    CHECK(r.clean_error());
    CHECK(r.has("layers.1"));
    CHECK(r.has("not used by the model"));
  }
  SECTION("a 3-layer config on 2-layer weights") {
    tessera::test::write_text(config, replace_line(original, "num_layers = 2", "num_layers = 3"));
    const CliRun r = tessera_cli(sample(w.save()));
    CHECK(r.clean_error());
    CHECK(r.has("no tensor 'layers.2"));
  }
  SECTION("an unknown [model] key") {
    tessera::test::write_text(config, replace_line(original, "num_layers = 2", "num_layers = 2\nnum_layer = 1"));
    const CliRun r = tessera_cli(sample(w.save()));
    CHECK(r.clean_error());
    CHECK(r.has("num_layer"));
    CHECK(r.has("config.toml"));
  }
  SECTION("NaN in the weights") {
    tessera::SafetensorsFile f = tessera::load_safetensors(weights);
    tessera::NamedTensors tensors;
    for (auto& [name, t] : f.tensors) tensors.emplace_back(name, t);
    f.tensors.at("layers.0.mlp.fc1.weight").data<float>()[5] = std::numeric_limits<float>::quiet_NaN();
    tessera::save_safetensors(weights, tensors, f.metadata);
    const CliRun r = tessera_cli(sample(w.save()));
    INFO(r.output);
    CHECK(r.clean_error());
    CHECK(r.has("layers.0.mlp.fc1.weight"));
    CHECK(r.has("non-finite"));
  }
}
