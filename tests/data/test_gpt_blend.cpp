// Blended datasets (core/include/tessera/data/{data_blend,blending_indices,blended_dataset}.hpp and
// the gpt_indexed plugin's weighted data_path / train_data_path…): the blending indices equal a
// Python transcription of Megatron-LM's build_blending_indices (megatron_blending_reference.py);
// every prefix of a blend holds each dataset within one sample of its share; per-dataset counts in
// describe(); bad weighted lists; and a training run on a blend through the `tessera` binary.
#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "../apps/tessera_cli.hpp"
#include "data_source.hpp"
#include "expect_error.hpp"
#include "test_util.hpp"
#include "tessera/config.hpp"
#include "tessera/data/blended_dataset.hpp"
#include "tessera/data/blending_indices.hpp"
#include "tessera/data/data_blend.hpp"
#include "tessera/data/indexed_dataset.hpp"
#include "tessera/data/numpy_default_rng.hpp"
#include "tessera/error.hpp"
#include "tessera/plugin.hpp"

using namespace tessera;
using test::TempDir;

namespace {

std::vector<std::int64_t> parse_line(const std::string& line) {
  std::vector<std::int64_t> v;
  std::istringstream in(line);
  for (std::int64_t x; in >> x;) v.push_back(x);
  return v;
}

std::vector<double> normalized(std::vector<double> w) { return normalize_blend_weights(w, "test"); }

// A dataset whose sample i writes (id, i) into the field "which" (i64[2]).
class Tagged : public Dataset {
 public:
  Tagged(std::int64_t id, std::int64_t size) : id_(id), size_(size) {}
  std::int64_t size() const override { return size_; }
  void sample(std::int64_t index, const SampleView& out) const override {
    auto v = out.get<std::int64_t>("which");
    v[0] = id_;
    v[1] = index;
  }

 private:
  std::int64_t id_, size_;
};

}  // namespace

TEST_CASE("blending indices equal Megatron-LM's build_blending_indices (Python transcription)", "[reference]") {
  const std::vector<std::vector<double>> weight_sets = {
      {0.3, 0.7}, {1, 1}, {1, 2, 3}, {0.05, 0.9, 0.05}, {5, 1, 1, 1, 0.5}, {1}, {0.999, 0.001}, {2, 7, 1, 3, 3, 9, 4},
      // 8 and more: numpy.sum adds pairwise, and the last bit of the normalised weights breaks ties
      {3, 1, 1, 2, 0.7, 0.2, 0.1, 0.3}, {0.1, 0.15, 3, 2, 3, 0.25, 0.1, 0.7, 0.1, 0.3, 0.25, 0.05, 0.2, 0.05}};
  for (const auto& w : weight_sets) {
    for (std::int64_t size : {1, 2, 17, 1000, 5003}) {
      CAPTURE(w, size);
      std::vector<std::string> argv = {"/usr/bin/python3", TESSERA_DATA_TESTS_DIR "/megatron_blending_reference.py",
                                       std::to_string(size)};
      for (double x : w) argv.push_back(fmt::format("{}", x));
      std::istringstream out(test::run_command(argv));
      std::string l1, l2, l3;
      std::getline(out, l1);
      std::getline(out, l2);
      std::getline(out, l3);
      const auto nw = normalized(w);
      const BlendingIndices b = build_blending_indices(nw, size);
      const std::vector<std::int64_t> di(b.dataset_index.begin(), b.dataset_index.end());
      REQUIRE(di == parse_line(l1));
      REQUIRE(b.dataset_sample_index == parse_line(l2));
      REQUIRE(blend_samples_per_dataset(nw, size) == parse_line(l3));
    }
  }
}

// Megatron's error is w·max(i, 1) − count with i the samples already placed: after sample i each
// count is within one of w·max(i, 1), which trails the prefix's share w·(i + 1) by w < 1.
TEST_CASE("every prefix of a blend holds each dataset within one sample of Megatron's target", "[unit]") {
  std::mt19937 gen(3);
  for (int trial = 0; trial < 60; ++trial) {
    const int k = 1 + static_cast<int>(gen() % 6);
    std::vector<double> w(static_cast<std::size_t>(k));
    for (double& x : w) x = 0.01 + static_cast<double>(gen() % 1000) / 100.0;
    const auto nw = normalized(w);
    const std::int64_t n = 3000;
    const BlendingIndices b = build_blending_indices(nw, n);
    std::vector<std::int64_t> count(static_cast<std::size_t>(k), 0);
    double worst = 0, worst_share = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const auto j = static_cast<std::size_t>(b.dataset_index[static_cast<std::size_t>(i)]);
      REQUIRE(b.dataset_sample_index[static_cast<std::size_t>(i)] == count[j]);  // each dataset read in order
      ++count[j];
      for (int d = 0; d < k; ++d) {
        const double c = static_cast<double>(count[static_cast<std::size_t>(d)]), wd = nw[static_cast<std::size_t>(d)];
        worst = std::max(worst, std::abs(c - wd * std::max(static_cast<double>(i), 1.0)));
        worst_share = std::max(worst_share, std::abs(c - wd * static_cast<double>(i + 1)) - wd);
      }
    }
    CAPTURE(w);
    REQUIRE(worst <= 1.0 + 1e-9);
    REQUIRE(worst_share <= 1.0 + 1e-9);  // |count − w·n| ≤ 1 + w over every prefix of n samples
    REQUIRE(count == b.counts);
    // Megatron's margin covers what the blend takes.
    const auto asked = blend_samples_per_dataset(nw, n);
    for (int d = 0; d < k; ++d) REQUIRE(b.counts[static_cast<std::size_t>(d)] <= asked[static_cast<std::size_t>(d)]);
  }
}

TEST_CASE("BlendedDataset reads sample i from dataset_index[i] at dataset_sample_index[i]", "[unit]") {
  const std::vector<double> w = normalized({1, 3});
  std::vector<std::shared_ptr<const Dataset>> parts = {std::make_shared<Tagged>(0, 30), std::make_shared<Tagged>(1, 80)};
  const BlendedDataset blend(parts, w, 100, {"a", "b"});
  REQUIRE(blend.size() == 100);
  REQUIRE(blend.indices().counts == std::vector<std::int64_t>{25, 75});
  std::int64_t buf[2];
  SampleView view;
  view.add({"which", DType::i64, {2}}, buf);
  for (std::int64_t i = 0; i < 100; ++i) {
    blend.sample(i, view);
    REQUIRE(buf[0] == blend.indices().dataset_index[static_cast<std::size_t>(i)]);
    REQUIRE(buf[1] == blend.indices().dataset_sample_index[static_cast<std::size_t>(i)]);
  }
  // A dataset too small for its share is an error naming it.
  std::vector<std::shared_ptr<const Dataset>> small = {std::make_shared<Tagged>(0, 10), std::make_shared<Tagged>(1, 80)};
  CHECK_THAT(message_of<Error>([&] { BlendedDataset(small, w, 100, {"a", "b"}); }),
             Catch::Contains("takes 25 from dataset 0 (a)") && Catch::Contains("which has only 10"));
}

TEST_CASE("weighted data paths: parsing and bad input naming the key and the file", "[unit]") {
  auto read = [](const std::string& value) {
    static std::vector<std::unique_ptr<Config>> keep;
    keep.push_back(std::make_unique<Config>(Config::from_string("[data]\ndata_path = " + value + "\n", "blend.toml")));
    return read_data_blend(keep.back()->section("data"), "data_path");
  };
  const DataBlend one = read("\"data/a\"");
  REQUIRE(!one.weighted);
  REQUIRE(one.prefixes == std::vector<std::string>{"data/a"});
  const DataBlend two = read("[\"0.3\", \"a\", \"0.7\", \"b\"]");
  REQUIRE(two.weighted);
  REQUIRE(two.prefixes == std::vector<std::string>{"a", "b"});
  REQUIRE(two.weights[0] == Approx(0.3));
  REQUIRE(two.weights[1] == Approx(0.7));
  const DataBlend unnormalized = read("[\"2\", \"a\", \"6\", \"b\", \"0\", \"c\"]");
  REQUIRE(unnormalized.prefixes == std::vector<std::string>{"a", "b"});
  REQUIRE(unnormalized.weights[0] == Approx(0.25));
  REQUIRE(unnormalized.dropped == std::vector<std::string>{"c"});
  auto error = [&](const std::string& value) { return message_of<ConfigError>([&] { read(value); }); };
  for (const std::string bad : {"[\"x\", \"a\"]", "[\"0.5a\", \"a\"]", "[\"\", \"a\"]"}) {
    CAPTURE(bad);
    const std::string m = error(bad);
    CHECK_THAT(m, Catch::Contains("data.data_path in blend.toml") && Catch::Contains("is not a number"));
  }
  CHECK_THAT(error("[\"-1\", \"a\", \"2\", \"b\"]"), Catch::Contains("data.data_path in blend.toml") && Catch::Contains("negative"));
  CHECK_THAT(error("[\"0\", \"a\", \"0\", \"b\"]"), Catch::Contains("data.data_path in blend.toml") && Catch::Contains("sum to 0"));
  CHECK_THAT(error("[\"0.3\", \"a\", \"0.7\"]"), Catch::Contains("data.data_path in blend.toml") && Catch::Contains("3 item(s) (an odd number)"));
  CHECK_THAT(error("[]"), Catch::Contains("0 item(s)"));
  CHECK_THAT(error("[\"inf\", \"a\"]"), Catch::Contains("not finite"));
  CHECK_THAT(error("[\"1\", \"\"]"), Catch::Contains("empty dataset prefix"));
}

namespace {

// A dataset whose every token is `token` (documents of 5..40 tokens), so a sample tells its source.
std::string write_constant(const TempDir& dir, const std::string& name, std::int32_t token, int documents) {
  IndexedDatasetWriter w(dir / name, IndexDtype::u16);
  for (int d = 0; d < documents; ++d) w.add_document(std::vector<std::int32_t>(static_cast<std::size_t>(5 + d % 36), token));
  w.finalize();
  return dir / name;
}

PluginPtr<DataSource> gpt_indexed_source(const std::string& data_toml, const DataRequest& r,
                                         const std::string& file = "blend.toml") {
  return test::make_data_source("gpt_indexed", data_toml, r, file);
}

PluginPtr<DataSource> make_source(const std::string& data_toml, std::int64_t train, std::int64_t valid,
                                  std::int64_t test = 0, bool test_optional = false) {
  DataRequest r;
  r.seq_length = 16;
  r.seed = 1234;
  r.num_samples[0] = train;
  r.num_samples[1] = valid;
  r.num_samples[2] = test;
  r.test_split_optional = test_optional;
  r.eod_token = 0;
  r.vocab_size = 10;
  return gpt_indexed_source(data_toml, r);
}

// The token of each of the first n samples of a split (all its tokens are equal).
std::vector<std::int32_t> sources_of(const Dataset& ds, std::int64_t n) {
  std::vector<std::int32_t> t(16), l(16);
  std::vector<float> m(16);
  SampleView v;
  v.add({"tokens", DType::i32, {16}}, t.data());
  v.add({"labels", DType::i32, {16}}, l.data());
  v.add({"loss_mask", DType::f32, {16}}, m.data());
  std::vector<std::int32_t> out;
  for (std::int64_t i = 0; i < n; ++i) {
    ds.sample(i, v);
    out.push_back(t[0]);
  }
  return out;
}

}  // namespace

TEST_CASE("the gpt_indexed plugin blends data_path, and takes per-split data paths", "[unit]") {
  TempDir dir;
  const std::string a = write_constant(dir, "a", 1, 200), b = write_constant(dir, "b", 2, 300), c = write_constant(dir, "c", 3, 50);
  SECTION("data_path = a weighted list: every split blended, counts in describe()") {
    auto s = make_source(fmt::format("data_path = [\"0.25\", \"{}\", \"0.75\", \"{}\"]\nsplit = \"90,10,0\"\n", a, b), 400, 40);
    call_plugin(s, [](DataSource& d) { d.open(); });
    const Dataset& train = s->split(Split::train);
    REQUIRE(train.size() == 400);
    REQUIRE(s->split(Split::valid).size() == 40);
    const auto src = sources_of(train, 400);
    REQUIRE(std::count(src.begin(), src.end(), 1) == 100);
    REQUIRE(std::count(src.begin(), src.end(), 2) == 300);
    const BlendingIndices expected = build_blending_indices(std::vector<double>{0.25, 0.75}, 400);
    for (std::size_t i = 0; i < 400; ++i) REQUIRE(src[i] == expected.dataset_index[i] + 1);
    const std::string d = s->describe();
    INFO(d);
    CHECK_THAT(d, Catch::Contains("a blend of 2 datasets, split \"90,10,0\""));
    CHECK_THAT(d, Catch::Contains(fmt::format("train 400 samples from {} (weight 0.25): 100 of ", a)));
    CHECK_THAT(d, Catch::Contains(fmt::format("{} (weight 0.75): 300 of ", b)));
    CHECK_THAT(d, Catch::Contains(fmt::format("valid 40 samples from {} (weight 0.25): 10 of ", a)));
  }
  SECTION("train_data_path / valid_data_path: each split its own data; split does not apply") {
    auto s = make_source(fmt::format("train_data_path = [\"1\", \"{}\", \"1\", \"{}\"]\nvalid_data_path = \"{}\"\n"
                                     "split = \"1,0,0\"\n", a, b, c),
                         100, 20);
    call_plugin(s, [](DataSource& d) { d.open(); });
    const auto train = sources_of(s->split(Split::train), 100);
    REQUIRE(std::count(train.begin(), train.end(), 1) == 50);
    REQUIRE(std::count(train.begin(), train.end(), 2) == 50);
    const auto valid = sources_of(s->split(Split::valid), 20);
    REQUIRE(std::count(valid.begin(), valid.end(), 3) == 20);
    REQUIRE(s->split(Split::test).size() == 0);
    CHECK_THAT(s->describe(), Catch::Contains("per-split data paths"));
    // One dataset is not wrapped: the split keeps its last epoch's samples, as without blends.
    CHECK_THAT(s->describe(), Catch::Contains(fmt::format("samples from {}: ", c)));
  }
  SECTION("bad input") {
    CHECK_THAT(message_of<ConfigError>([&] { make_source(fmt::format("data_path = [\"x\", \"{}\"]\n", a), 10, 0); }),
               Catch::Contains("data.data_path in blend.toml") && Catch::Contains("not a number"));
    CHECK_THAT(message_of<ConfigError>([&] { make_source(fmt::format("train_data_path = [\"0.5\", \"{}\", \"1\"]\n", a), 10, 0); }),
               Catch::Contains("data.train_data_path in blend.toml") && Catch::Contains("odd"));
    CHECK_THAT(message_of<ConfigError>([&] { make_source(fmt::format("data_path = \"{}\"\ntrain_data_path = \"{}\"\n", a, b), 10, 0); }),
               Catch::Contains("both set"));
    CHECK_THAT(message_of<ConfigError>([&] { make_source("split = \"1,0,0\"\n", 10, 0); }),
               Catch::Contains("data.data_path is not set in blend.toml"));
    auto s = make_source(fmt::format("train_data_path = \"{}\"\n", a), 10, 5);
    CHECK_THAT(message_of<ConfigError>([&] { call_plugin(s, [](DataSource& d) { d.open(); }); }),
               Catch::Contains("5 samples are asked of the valid split") && Catch::Contains("data.valid_data_path is not set"));
  }
}

TEST_CASE("tessera train on a blend of two datasets", "[unit]") {
  test::CliWorkspace w;
  const test::CliRun p = test::tessera_cli({"preprocess", "--no-progress", "--tokenizer", "byte", "--input",
                                            TESSERA_SOURCE_DIR "/core/src/data", "--output-prefix", w.dir / "second"});
  INFO(p.output);
  REQUIRE(p.ok());
  const std::string blend = fmt::format("data.data_path=[\"0.3\",\"{}\",\"0.7\",\"{}\"]", w.dir / "corpus", w.dir / "second");
  const test::CliRun t = test::tessera_cli({"train", w.config, "--set", blend});
  INFO(t.output);
  REQUIRE(t.ok());
  CHECK(t.has("a blend of 2 datasets"));
  CHECK(t.has("train 24 samples from"));  // 6 iterations × 4
  CHECK(t.has("iteration        6/       6"));
  CHECK(t.has("validation loss at iteration 6"));
}

TEST_CASE("an optional test split too small for one sample is left empty; asked for, it is an error", "[unit]") {
  TempDir dir;
  // 20 documents of 30 tokens, then one of `last` tokens: split "20,0,1" gives the test split that one.
  const auto source = [&](int last, bool optional) {
    IndexedDatasetWriter w(dir / fmt::format("d{}", last), IndexDtype::u16);
    for (int d = 0; d < 20; ++d) w.add_document(std::vector<std::int32_t>(30, 1));
    w.add_document(std::vector<std::int32_t>(static_cast<std::size_t>(last), 2));
    w.finalize();
    auto s = make_source(fmt::format("data_path = \"{}\"\nsplit = \"20,0,1\"\n", dir / fmt::format("d{}", last)), 40, 0,
                         4, optional);
    call_plugin(s, [](DataSource& d) { d.open(); });
    return s;
  };
  // One token makes no sample (an input and its label): the training run's end-of-run test
  // evaluation is skipped, not the run.
  auto one = source(1, true);
  CHECK(one->split(Split::train).size() >= 40);
  CHECK(one->split(Split::test).size() == 0);
  CHECK(source(2, true)->split(Split::test).size() >= 4);
  // `tessera evaluate --split test` asks for it: an error naming the documents.
  CHECK_THAT(message_of<Error>([&] { source(1, false); }), Catch::Contains("hold 1 token(s)"));
}

TEST_CASE("data.reset_* need a model that reads the field they add, or documents would attend each other", "[unit]") {
  const FieldSpecs gpt_core{{"tokens", DType::i32, {16}}, {"labels", DType::i32, {16}}, {"loss_mask", DType::f32, {16}}};
  const auto build = [&](const std::string& keys, const FieldSpecs& model_fields) {
    DataRequest r;
    r.seq_length = 16;
    r.model_fields = model_fields;
    return gpt_indexed_source("data_path = \"unread\"\n" + keys, r, "resets.toml");
  };
  CHECK_THAT(message_of<ConfigError>([&] { build("reset_attention_mask = true", gpt_core); }),
             Catch::Contains("data.reset_attention_mask in resets.toml") && Catch::Contains("document_start") &&
                 Catch::Contains("does not read"));
  CHECK_THAT(message_of<ConfigError>([&] { build("reset_position_ids = true", gpt_core); }),
             Catch::Contains("data.reset_position_ids") && Catch::Contains("position_ids"));
  FieldSpecs gpt = gpt_core;
  gpt.push_back({"position_ids", DType::i32, {16}, true});
  gpt.push_back({"document_start", DType::i32, {16}, true});
  const auto source = build("reset_attention_mask = true\nreset_position_ids = true", gpt);
  const FieldSpecs fields = source->fields();
  REQUIRE(fields.size() == 5);
  CHECK(fields[3].name == "position_ids");
  CHECK(fields[4].name == "document_start");
  CHECK_NOTHROW(check_batch_fields(gpt, "model plugin 'gpt'", fields, "data plugin 'gpt_indexed'"));
}

TEST_CASE("data.mock_data: Megatron-Core's mock corpus, its lengths numpy's default_rng(0), split as a dataset",
          "[reference]") {
  // The lengths, from numpy itself.
  const std::string lengths = test::run_command(
      {"/usr/bin/python3", "-c",
       "import numpy as np; v = np.random.default_rng(0).integers(1, 4096, size=100000, dtype=np.int32); "
       "print(len(v), int(v.sum()), ' '.join(map(str, v[:20])), ' '.join(map(str, v[-5:])))"});
  std::istringstream in(lengths);
  std::int64_t count = 0, total = 0;
  in >> count >> total;
  std::vector<std::int32_t> head(25);
  for (auto& x : head) in >> x;
  NumpyDefaultRng rng(0);
  const std::vector<std::int32_t> ours = rng.integers_int32(1, 4096, 100000);
  REQUIRE(count == 100000);
  CHECK(std::accumulate(ours.begin(), ours.end(), std::int64_t{0}) == total);
  CHECK(std::equal(head.begin(), head.begin() + 20, ours.begin()));
  CHECK(std::equal(head.begin() + 20, head.end(), ours.end() - 5));

  // The plugin: samples are windows of the documents 1, 2, …, L − 1, eod in doc_idx order.
  const auto source = [&](const std::string& keys, std::int64_t vocab) {
    DataRequest r;
    r.seq_length = 64;
    r.seed = 1234;
    r.num_samples[0] = 200;
    r.num_samples[1] = 20;
    r.eod_token = 50256;
    r.vocab_size = vocab;
    return gpt_indexed_source("mock_data = true\n" + keys, r, "mock.toml");
  };
  auto mock = source("", 50257);
  call_plugin(mock, [](DataSource& d) { d.open(); });
  CHECK(mock->describe().find("mock data") != std::string::npos);
  const Dataset& train = mock->split(Split::train);
  REQUIRE(train.size() >= 200);
  std::vector<std::int32_t> t(64), l(64);
  std::vector<float> m(64);
  SampleView v;
  v.add({"tokens", DType::i32, {64}}, t.data());
  v.add({"labels", DType::i32, {64}}, l.data());
  v.add({"loss_mask", DType::f32, {64}}, m.data());
  int eods = 0;
  for (std::int64_t i = 0; i < 50; ++i) {
    train.sample(i, v);
    for (int k = 0; k < 64; ++k) {
      const std::int32_t next = l[k];
      // Within a document each id is one more than the one before; after the eod one starts at 1.
      if (t[k] == 50256) {
        CHECK(next == 1);
        ++eods;
      } else {
        CHECK((next == t[k] + 1 || next == 50256));
      }
    }
  }
  CHECK(eods > 0);
  // The split applies to its 100000 documents ("969,30,1": 96900 for training).
  CHECK(mock->describe().find("train 96900 docs") != std::string::npos);
  // An optional test split that gets no documents ("99,1,0") is left empty, as for files.
  {
    DataRequest r;
    r.seq_length = 64;
    r.num_samples[0] = 10;
    r.num_samples[2] = 8;
    r.test_split_optional = true;
    r.eod_token = 50256;
    r.vocab_size = 50257;
    auto no_test = gpt_indexed_source("mock_data = true\nsplit = \"99,1,0\"\n", r, "mock.toml");
    call_plugin(no_test, [](DataSource& d) { d.open(); });
    CHECK(no_test->split(Split::test).size() == 0);
  }
  // Refused: a tokenizer too small for its ids, and data paths beside it.
  CHECK_THAT(message_of<ConfigError>([&] { source("", 257); }),
             Catch::Contains("data.mock_data = true") && Catch::Contains("ids 1 … 4094"));
  CHECK_THAT(message_of<ConfigError>([&] { source("data_path = \"x\"", 50257); }),
             Catch::Contains("data.data_path") && Catch::Contains("give one or the other"));
}
