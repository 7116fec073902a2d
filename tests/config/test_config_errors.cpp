// Config errors: each message names the key, the file and what was expected.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "expect_error.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"

using namespace tessera;
using Catch::Contains;

namespace {
const std::string kData = TESSERA_TESTS_DIR "/config/data/";
}

TEST_CASE("type errors name key, file, expected type and the value found", "[unit]") {
  Config c = Config::load(kData + "gpt/tiny.toml", {"model.num_layers=twelve", "model.flag=1"});
  ConfigSection m = c.section("model");
  std::string msg = message_of<ConfigError>([&] { m.get_int("num_layers"); });
  REQUIRE_THAT(msg, Contains("model.num_layers (from --set): expected an integer, got a string (\"twelve\")"));
  // Numbers TOML does not read stay strings: the message says why.
  Config n = Config::load(kData + "gpt/tiny.toml", {"optimizer.lr=.001", "training.seed=12345678901234567890"});
  msg = message_of<ConfigError>([&] { n.section("optimizer").get_float("lr", 0.0, 0.0, 1.0); });
  REQUIRE_THAT(msg, Contains("a TOML number needs a digit on both sides of its point"));
  msg = message_of<ConfigError>([&] { n.section("training").get_int("seed", 0, 0, 1 << 30); });
  REQUIRE_THAT(msg, Contains("beyond the 64-bit integers"));

  msg = message_of<ConfigError>([&] { m.get_string("hidden_size"); });
  REQUIRE_THAT(msg, Contains("model.hidden_size in "));
  REQUIRE_THAT(msg, Contains("base.toml"));
  REQUIRE_THAT(msg, Contains("expected a string, got an integer (768)"));

  msg = message_of<ConfigError>([&] { m.get_bool("flag", false); });
  REQUIRE_THAT(msg, Contains("model.flag"));
  REQUIRE_THAT(msg, Contains("expected a boolean"));

  Config f = Config::load(kData + "gpt/tiny.toml");
  msg = message_of<ConfigError>([&] { f.section("training").get_float("micro_batch_size", 0.0, 0.0, 1.0); });
  REQUIRE_THAT(msg, Contains("training.micro_batch_size in"));
  REQUIRE_THAT(msg, Contains("gpt/tiny.toml"));
  REQUIRE_THAT(msg, Contains("4 is out of range [0, 1]"));
}

TEST_CASE("range errors name key, file, value and the inclusive range", "[unit]") {
  Config c = Config::from_string("[optimizer]\nlr = 5\nwarmup = -1\n", "run.toml");
  ConfigSection o = c.section("optimizer");
  std::string msg = message_of<ConfigError>([&] { o.get_float("lr", 1e-3, 0.0, 1.0); });
  REQUIRE(msg == "optimizer.lr in run.toml: 5 is out of range [0, 1]");
  msg = message_of<ConfigError>([&] { o.get_int("warmup", 0, 0); });
  REQUIRE(msg == "optimizer.warmup in run.toml: -1 is out of range [0, inf]");
}

TEST_CASE("a missing required key names section, key and file", "[unit]") {
  Config c = Config::load(kData + "gpt/tiny.toml");
  std::string msg = message_of<ConfigError>([&] { c.section("model").get_int("seq_length"); });
  REQUIRE_THAT(msg, Contains("model.seq_length"));
  REQUIRE_THAT(msg, Contains("[model]"));
  REQUIRE_THAT(msg, Contains("gpt/tiny.toml"));
  msg = message_of<ConfigError>([&] { c.section("data").get_string("data_path"); });
  REQUIRE_THAT(msg, Contains("data.data_path"));
  REQUIRE_THAT(msg, Contains("[data]"));
}

TEST_CASE("get_choice lists the allowed values; get_string_list names the bad item", "[unit]") {
  Config c = Config::from_string("[model]\nposition_embedding_type = \"rop\"\nfiles = [\"a\", 3]\n", "m.toml");
  ConfigSection m = c.section("model");
  std::string msg = message_of<ConfigError>(
      [&] { m.get_choice("position_embedding_type", "learned", {"learned", "rope", "none"}); });
  REQUIRE_THAT(msg, Contains("model.position_embedding_type in m.toml"));
  REQUIRE_THAT(msg, Contains("'rop' is not one of: learned, rope, none"));
  REQUIRE_THAT(msg, Contains("did you mean 'rope'?"));
  msg = message_of<ConfigError>([&] { m.get_string_list("files", {}); });
  REQUIRE_THAT(msg, Contains("model.files in m.toml"));
  REQUIRE_THAT(msg, Contains("item 1 is an integer (3)"));
}

TEST_CASE("a TOML syntax error names file, line and column", "[unit]") {
  std::string msg = message_of<ConfigError>([&] { Config::load(kData + "broken.toml"); });
  REQUIRE_THAT(msg, Contains("broken.toml:3:"));
  REQUIRE_THAT(msg, Contains("TOML syntax error"));
  msg = message_of<ConfigError>([&] { Config::from_string("[a]\nx = 1\ny = [1,\n", "inline.toml"); });
  REQUIRE_THAT(msg, Contains("inline.toml:"));
}

TEST_CASE("include errors: cycles, missing files, bad include values, keys outside sections", "[unit]") {
  std::string msg = message_of<ConfigError>([&] { Config::load(kData + "cycle_a.toml"); });
  REQUIRE_THAT(msg, Contains("include cycle"));
  REQUIRE_THAT(msg, Contains("cycle_a.toml -> "));
  REQUIRE_THAT(msg, Contains("cycle_b.toml -> "));
  msg = message_of<ConfigError>([&] { Config::load(kData + "missing_include.toml"); });
  REQUIRE_THAT(msg, Contains("does_not_exist.toml"));
  REQUIRE_THAT(msg, Contains("included from"));
  REQUIRE_THAT(msg, Contains("missing_include.toml"));
  msg = message_of<ConfigError>([&] { Config::load(kData + "no_such_file.toml"); });
  REQUIRE_THAT(msg, Contains("no_such_file.toml"));
  msg = message_of<ConfigError>([&] { Config::from_string("include = 3\n", "i.toml"); });
  REQUIRE_THAT(msg, Contains("i.toml: include must be a file name"));
  msg = message_of<ConfigError>([&] { Config::from_string("seed = 3\n[model]\n", "s.toml"); });
  REQUIRE_THAT(msg, Contains("s.toml: key 'seed' is outside any section"));
  msg = message_of<ConfigError>([&] { Config::from_string("[[model]]\nplugin = \"gpt\"\n", "a.toml"); });
  REQUIRE_THAT(msg, Contains("a.toml: [[model]] is an array of tables") && Contains("write [model]"));
}

TEST_CASE("malformed --set is an error", "[unit]") {
  const auto set = [](const std::string& o) {
    return message_of<ConfigError>([&] { Config::from_string("[model]\n", "<t>", {o}); });
  };
  REQUIRE_THAT(set("model.num_layers"), Contains("no '='"));
  REQUIRE_THAT(set("num_layers=3"), Contains("names no section"));
  REQUIRE_THAT(set(".num_layers=3"), Contains("is not section.key"));
  REQUIRE_THAT(set("model.=3"), Contains("is not section.key"));
  REQUIRE_THAT(set("model.num_layers="), Contains("no value"));
  REQUIRE_THAT(set("model.x=[1, 2"), Contains("not a valid TOML value"));
  REQUIRE_THAT(set("model.x=\"open"), Contains("not a valid TOML value"));
}

TEST_CASE("unknown keys and sections are errors with suggestions", "[unit]") {
  Config c = Config::load(kData + "typos.toml", {"model.hiden=3"});
  ConfigSection m = c.section("model");
  m.get_int("num_layers", 12);
  m.get_int("hidden_size", 64);
  m.get_int("num_attention_heads", 1);
  c.section("training").get_int("micro_batch_size", 1);
  const std::string msg = message_of<ConfigError>([&] { c.check_no_unknown_keys(); });
  REQUIRE_THAT(msg, Contains("unknown key 'model.num_layer' in "));
  REQUIRE_THAT(msg, Contains("typos.toml"));
  REQUIRE_THAT(msg, Contains("[model] accepts: hidden_size, num_attention_heads, num_layers"));
  REQUIRE_THAT(msg, Contains("(did you mean 'num_layers'?)"));
  REQUIRE_THAT(msg, Contains("unknown key 'model.hiden' (from --set)"));
  REQUIRE_THAT(msg, Contains("unknown section [trainig] in "));
  REQUIRE_THAT(msg, Contains("known sections: model, training"));
  REQUIRE_THAT(msg, Contains("(did you mean 'training'?)"));
}

TEST_CASE("a fully declared config passes the unknown-key check", "[unit]") {
  Config c = Config::load(kData + "gpt/tiny.toml");
  for (const char* k : {"num_layers", "hidden_size", "num_attention_heads"}) c.section("model").declare(k);
  c.section("optimizer").get_float("lr", 1e-4, 0.0, 1.0);
  REQUIRE_THROWS_AS(c.check_no_unknown_keys(), ConfigError);  // [training] not asked for yet
  c.section("training").has("micro_batch_size");
  REQUIRE_NOTHROW(c.check_no_unknown_keys());
}

TEST_CASE("a config that is not a regular file, or too large, is an error, never a hang", "[unit]") {
  const std::string dir = std::filesystem::temp_directory_path() / ("tessera_cfg_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string fifo = dir + "/fifo.toml";
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  // Opening a FIFO for reading blocks until a writer comes: it must be refused before that.
  std::string msg = message_of<ConfigError>([&] { Config::load(fifo); });
  CHECK_THAT(msg, Contains("fifo.toml"));
  CHECK_THAT(msg, Contains("FIFO"));
  msg = message_of<ConfigError>([&] { Config::from_string("include = \"/dev/zero\"\n", dir + "/run.toml"); });
  CHECK_THAT(msg, Contains("/dev/zero"));
  CHECK_THAT(msg, Contains("character device, not a regular file"));
  {
    std::ofstream big(dir + "/big.toml");
    big << "[model]\n# " << std::string(17 << 20, 'x') << "\n";
  }
  msg = message_of<ConfigError>([&] { Config::load(dir + "/big.toml"); });
  CHECK_THAT(msg, Contains("more than the 16777216 bytes accepted"));
  std::filesystem::remove_all(dir);
}
