// Config loading: includes and override precedence, --set value parsing, declared keys, dump.
#include <cmath>

#include <catch2/catch.hpp>

#include "expect_error.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"

using namespace tessera;
using Catch::Contains;
using Catch::EndsWith;

namespace {
const std::string kData = TESSERA_TESTS_DIR "/config/data/";
}

TEST_CASE("include: included values are defaults, the including file overrides them", "[unit]") {
  Config c = Config::load(kData + "gpt/tiny.toml");
  ConfigSection m = c.section("model");
  REQUIRE(m.get_int("num_layers") == 2);             // tiny.toml overrides base.toml
  REQUIRE(m.get_int("hidden_size") == 768);          // only in base.toml
  REQUIRE(c.section("optimizer").get_float("lr") == Approx(3e-4));
  REQUIRE(c.section("training").get_int("micro_batch_size") == 4);
  REQUIRE_THAT(m.origin("num_layers"), EndsWith("gpt/tiny.toml"));
  REQUIRE_THAT(m.origin("hidden_size"), EndsWith("base.toml"));
  REQUIRE_THAT(m.origin("hidden_size"), !Contains(".."));  // shown normalised
  REQUIRE(c.source() == kData + "gpt/tiny.toml");
  REQUIRE(c.directory() == std::filesystem::path(kData + "gpt"));
  REQUIRE(c.section_names() == std::vector<std::string>{"model", "optimizer", "training"});
}

TEST_CASE("include: nested includes, each level overriding the one it includes", "[unit]") {
  Config c = Config::load(kData + "gpt/nested.toml");
  ConfigSection m = c.section("model");
  REQUIRE(m.get_int("hidden_size") == 64);  // nested.toml
  REQUIRE(m.get_int("num_layers") == 2);    // tiny.toml
  REQUIRE(m.get_int("num_attention_heads") == 12);  // base.toml
  REQUIRE_THAT(m.origin("hidden_size"), EndsWith("nested.toml"));
  REQUIRE_THAT(m.origin("num_layers"), EndsWith("tiny.toml"));
}

TEST_CASE("--set overrides every file and may add keys and sections", "[unit]") {
  Config c = Config::load(kData + "gpt/tiny.toml",
                          {"model.num_layers=24", "model.hidden_size = 1024", "logging.log_interval=5"});
  ConfigSection m = c.section("model");
  REQUIRE(m.get_int("num_layers") == 24);
  REQUIRE(m.get_int("hidden_size") == 1024);
  REQUIRE(m.origin("num_layers") == "--set");
  REQUIRE_THAT(m.origin("num_attention_heads"), EndsWith("base.toml"));
  REQUIRE(c.has_section("logging"));
  REQUIRE(c.section("logging").get_int("log_interval") == 5);
  REQUIRE(c.section("logging").origin("log_interval") == "--set");
}

TEST_CASE("--set values are parsed as TOML", "[unit]") {
  Config c = Config::from_string("[x]\n", "<test>",
                                 {"x.i=42", "x.neg=-7", "x.e=1e-3", "x.f=0.5", "x.t=true", "x.fa=false",
                                  "x.q=\"quoted text\"", "x.bare=rope", "x.path=/data/my corpus.bin",
                                  "x.ints=[1, 2, 3]", "x.strs=[\"a\", \"b\"]", "x.eq=a=b"});
  ConfigSection x = c.section("x");
  REQUIRE(x.get_int("i") == 42);
  REQUIRE(x.get_int("neg") == -7);
  REQUIRE(x.get_float("e") == Approx(1e-3));
  REQUIRE(x.get_float("f") == 0.5);
  REQUIRE(x.get_bool("t") == true);
  REQUIRE(x.get_bool("fa") == false);
  REQUIRE(x.get_string("q") == "quoted text");
  REQUIRE(x.get_string("bare") == "rope");
  REQUIRE(x.get_string("path") == "/data/my corpus.bin");
  REQUIRE(x.get_string("eq") == "a=b");
  REQUIRE(x.get_string_list("strs", {}) == std::vector<std::string>{"a", "b"});
  // 42 is an integer, not a string; 1e-3 is a float, not an integer.
  REQUIRE_THROWS_AS(x.get_string("i"), ConfigError);
  REQUIRE_THROWS_AS(x.get_int("e"), ConfigError);
  REQUIRE_THROWS_AS(x.get_string_list("ints", {}), ConfigError);
}

TEST_CASE("typed getters: fallbacks, inclusive ranges, integers accepted as floats", "[unit]") {
  Config c = Config::from_string("[t]\nlr = 1\nn = 8\nname = \"gpt\"\nfiles = [\"a\", \"b\"]\nlo = 0\n");
  ConfigSection t = c.section("t");
  REQUIRE(t.get_float("lr") == 1.0);
  REQUIRE(t.get_float("lr", 0.1, 0.0, 1.0) == 1.0);  // upper bound inclusive
  REQUIRE(t.get_int("lo", 5, 0, 10) == 0);           // lower bound inclusive
  REQUIRE(t.get_int("n", 1, 1) == 8);
  REQUIRE(t.get_int("absent", 3, 1, 10) == 3);
  REQUIRE(t.get_float("absent_f", 0.25) == 0.25);
  REQUIRE(t.get_bool("absent_b", true) == true);
  REQUIRE(t.get_string("absent_s", "dflt") == "dflt");
  REQUIRE(t.get_choice("name", "bert", {"gpt", "bert", "t5"}) == "gpt");
  REQUIRE(t.get_choice("absent_c", "bert", {"gpt", "bert"}) == "bert");
  REQUIRE(t.get_string_list("files", {}) == std::vector<std::string>{"a", "b"});
  REQUIRE(t.get_string_list("absent_l", {"x"}) == std::vector<std::string>{"x"});
  REQUIRE(t.has("n"));
  REQUIRE_FALSE(t.has("nope"));
  REQUIRE(t.keys() == std::vector<std::string>{"files", "lo", "lr", "n", "name"});
}

TEST_CASE("sections handed out share the config's declared keys", "[unit]") {
  Config c = Config::from_string("[model]\nnum_layers = 2\nhidden_size = 8\n");
  Config copy = c;  // copies share state
  ConfigSection given_to_plugin = copy.section("model");
  ConfigSection later_copy = given_to_plugin;
  REQUIRE(later_copy.get_int("num_layers") == 2);
  REQUIRE_THROWS_AS(c.check_no_unknown_keys(), ConfigError);  // hidden_size is still unknown
  given_to_plugin.declare("hidden_size");
  REQUIRE_NOTHROW(c.check_no_unknown_keys());
}

TEST_CASE("dump gives the resolved config, which loads back to the same values", "[unit]") {
  Config c = Config::load(kData + "gpt/nested.toml", {"optimizer.lr=0.01", "model.act=\"gelu\""});
  const std::string text = c.dump();
  REQUIRE_THAT(text, !Contains("include"));
  REQUIRE_THAT(text, Contains("[model]"));
  Config back = Config::from_string(text, "dump");
  for (const char* section : {"model", "optimizer", "training"}) {
    ConfigSection a = c.section(section), b = back.section(section);
    REQUIRE(a.keys() == b.keys());
  }
  REQUIRE(back.section("model").get_int("hidden_size") == 64);
  REQUIRE(back.section("model").get_int("num_layers") == 2);
  REQUIRE(back.section("model").get_int("num_attention_heads") == 12);
  REQUIRE(back.section("model").get_string("act") == "gelu");
  REQUIRE(back.section("optimizer").get_float("lr") == 0.01);
  REQUIRE(back.section("training").get_int("micro_batch_size") == 4);
  REQUIRE(back.dump() == text);
}

TEST_CASE("an empty config returns fallbacks", "[unit]") {
  Config c;
  REQUIRE(c.source() == "<empty>");
  REQUIRE(c.section("model").get_int("num_layers", 3) == 3);
  REQUIRE_NOTHROW(c.check_no_unknown_keys());
}

TEST_CASE("dump keeps awkward values exact", "[unit]") {
  const std::string text =
      "[odd]\n"
      "s = \"say \\\"hi\\\"\\n\\tC:\\\\path\"\n"
      "whole = 5.0\n"
      "tiny = 1e-5\n"
      "third = 0.3333333333333333\n"
      "big = inf\n"
      "when = 2024-05-01\n"
      "\"quoted key\" = 1\n"
      "nested = { a = [1, 2], b = { c = \"d\" } }\n"
      "mixed = [[1, 2], [\"x\"]]\n";
  Config c = Config::from_string(text, "odd.toml");
  const std::string dumped = c.dump();
  Config back = Config::from_string(dumped, "dump");
  ConfigSection a = c.section("odd"), b = back.section("odd");
  REQUIRE(b.keys() == a.keys());
  REQUIRE(b.get_string("s") == "say \"hi\"\n\tC:\\path");
  REQUIRE(b.get_float("whole") == 5.0);
  REQUIRE_THROWS_AS(b.get_int("whole"), ConfigError);  // still a float
  REQUIRE(b.get_float("tiny") == 1e-5);
  REQUIRE(b.get_float("third") == a.get_float("third"));
  REQUIRE(b.get_float("big") == a.get_float("big"));
  REQUIRE(std::isinf(b.get_float("big", 0.0)));  // the default range has no bounds
  REQUIRE(b.get_int("quoted key") == 1);
  REQUIRE(back.dump() == dumped);
  REQUIRE_THAT(dumped, Catch::Contains("tiny = 1e-05"));
  REQUIRE_THAT(dumped, Catch::Contains("when = 2024-05-01"));
  REQUIRE_THAT(dumped, Catch::Contains("nested = { a = [1, 2], b = { c = \"d\" } }"));
}

TEST_CASE("check_no_unknown_keys_in checks the named sections only", "[unit]") {
  const Config config = Config::from_string("[model]\nlayers = 2\ntypo = 1\n[training]\nanything = 3\n", "saved");
  config.section("model").get_int("layers", 1, 1, 10);
  REQUIRE_THROWS_WITH(config.check_no_unknown_keys_in({"model"}), Contains("typo"));
  config.section("model").get_int("typo", 0, 0, 10);
  CHECK_NOTHROW(config.check_no_unknown_keys_in({"model"}));  // [training] taken as it is
}

TEST_CASE("with_section_from: another config's section, some keys kept, every change reported", "[unit]") {
  const Config run = Config::from_string("[model]\nhidden_size = 32\nswiglu = true\nhidden_dropout = 0.3\n"
                                         "[training]\nlr = 1.0\n",
                                         "run.toml");
  const Config saved = Config::from_string("[model]\nhidden_size = 48\nnum_layers = 6\nhidden_dropout = 0.1\n"
                                           "name = \"a long name that toml_value_text would shorten in a message, "
                                           "and the whole of it is compared\"\n",
                                           "saved.toml");
  std::vector<std::string> changed;
  const Config merged = run.with_section_from(saved, "model", "ckpt/", {"hidden_dropout", "absent_key"}, changed);
  ConfigSection m = merged.section("model");
  CHECK(m.get_int("hidden_size", 0, 0, 100) == 48);
  CHECK(m.get_int("num_layers", 0, 0, 100) == 6);
  CHECK(!m.has("swiglu"));                                  // the saved section does not set it: unset
  CHECK(m.get_float("hidden_dropout", 0, 0, 1) == 0.3);     // kept: the run's
  CHECK(!m.has("absent_key"));                              // kept only where the run sets it
  CHECK(merged.section("training").get_float("lr", 0, 0, 10) == 1.0);  // other sections untouched
  CHECK(m.origin("hidden_size") == "ckpt/");
  CHECK(m.origin("hidden_dropout") == "run.toml");
  REQUIRE(changed.size() == 4);
  CHECK(changed[0] == "model.hidden_size: 32 → 48");
  CHECK(changed[1].rfind("model.name: unset → \"a long name", 0) == 0);
  CHECK(changed[2] == "model.num_layers: unset → 6");
  CHECK(changed[3] == "model.swiglu: true → unset");
  // The same values report nothing; a section neither has stays absent.
  changed.clear();
  merged.with_section_from(merged, "model", "again", {}, changed);
  CHECK(changed.empty());
  CHECK(!run.with_section_from(saved, "tokenizer", "ckpt/", {}, changed).section("tokenizer").has("plugin"));
  CHECK(changed.empty());
}

TEST_CASE("with_keys_from: the listed keys from another config's section, unset where it lacks them", "[unit]") {
  const Config run = Config::from_string("[parallel]\ntensor_model_parallel_size = 2\nsequence_parallel = true\n"
                                         "decoder_first_pipeline_num_layers = 3\n",
                                         "run.toml");
  const Config saved = Config::from_string("[parallel]\npipeline_model_parallel_size = 2\nbucket_size = 8\n"
                                           "num_layers_in_first_pipeline_stage = 1\n",
                                           "saved.toml");
  std::vector<std::string> changed;
  const Config merged = run.with_keys_from(
      saved, "parallel", "ckpt/",
      {"tensor_model_parallel_size", "pipeline_model_parallel_size", "decoder_first_pipeline_num_layers",
       "num_layers_in_first_pipeline_stage"},
      changed);
  ConfigSection p = merged.section("parallel");
  CHECK(!p.has("tensor_model_parallel_size"));  // taken: the saved section does not set it
  CHECK(p.get_int("pipeline_model_parallel_size", 0, 0, 100) == 2);
  CHECK(!p.has("decoder_first_pipeline_num_layers"));  // one name replaced by the other
  CHECK(p.get_int("num_layers_in_first_pipeline_stage", 0, 0, 100) == 1);
  CHECK(p.get_bool("sequence_parallel", false));  // not listed: the run's
  CHECK(!p.has("bucket_size"));                   // not listed: the saved value stays out
  CHECK(p.origin("pipeline_model_parallel_size") == "ckpt/");
  CHECK(p.origin("sequence_parallel") == "run.toml");
  REQUIRE(changed.size() == 4);
  CHECK(changed[0] == "parallel.decoder_first_pipeline_num_layers: 3 → unset");
  CHECK(changed[1] == "parallel.num_layers_in_first_pipeline_stage: unset → 1");
  CHECK(changed[2] == "parallel.pipeline_model_parallel_size: unset → 2");
  CHECK(changed[3] == "parallel.tensor_model_parallel_size: 2 → unset");
}
