// GPT sample indexing: the three index arrays equal a numpy reimplementation of Megatron-LM's
// (same seed → same samples), sample windows equal the document stream, split strings, and the
// time to index ~1M documents.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <sstream>
#include <numeric>
#include <random>

#include "expect_error.hpp"
#include "test_util.hpp"
#include "gpt_dataset.hpp"
#include "tessera/data/numpy_random.hpp"
#include "tessera/data/document_split.hpp"
#include "tessera/train/components.hpp"
#include "tessera/error.hpp"

using namespace tessera;
using namespace tessera::gpt_indexed;  // the plugin's code (plugins/gpt_indexed)
using test::TempDir;

namespace {

std::vector<std::int64_t> read_i64(const std::string& path) {
  auto b = test::read_bytes(path);
  std::vector<std::int64_t> v(b.size() / 8);
  std::memcpy(v.data(), b.data(), v.size() * 8);
  return v;
}

std::vector<std::int32_t> random_sizes(std::size_t n, std::uint32_t seed, int max_len, int min_len = 0) {
  std::mt19937 rng(seed);
  std::vector<std::int32_t> s(n);
  for (auto& x : s) x = min_len + static_cast<std::int32_t>(rng() % static_cast<std::uint32_t>(max_len - min_len + 1));
  return s;
}

}  // namespace

// 100 documents of 20 tokens each (document d holds the token d + 1).
std::shared_ptr<const IndexedDataset> hundred_documents(const TempDir& dir) {
  IndexedDatasetWriter w(dir / "c", IndexDtype::u16);
  for (int d = 0; d < 100; ++d) w.add_document(std::vector<std::int32_t>(20, d + 1));
  w.finalize();
  return std::make_shared<const IndexedDataset>(dir / "c");
}

TEST_CASE("numpy RandomState shuffle is reproduced bit for bit", "[reference]") {
  // np.random.RandomState(1234): first three uint32 outputs (checked with numpy 1.24).
  NumpyRandomState r(1234);
  REQUIRE(r.next32() == 822569775u);
  REQUIRE(r.next32() == 2137449171u);
  REQUIRE(r.next32() == 2671936806u);
  const std::string out = test::run_command(
      {"/usr/bin/python3", "-c",
       "import numpy as np; a = np.arange(1000); np.random.RandomState(7).shuffle(a); print(' '.join(map(str, a)))"});
  std::vector<std::int64_t> expected;
  std::istringstream in(out);
  for (std::int64_t v; in >> v;) expected.push_back(v);
  std::vector<std::int64_t> a(1000);
  std::iota(a.begin(), a.end(), 0);
  NumpyRandomState(7).shuffle(std::span<std::int64_t>(a));
  REQUIRE(a == expected);
}

TEST_CASE("GPT indices equal Megatron-LM's (numpy reimplementation)", "[reference]") {
  struct Case {
    std::size_t docs;
    int max_len;
    std::int64_t begin, end, samples, seq;
    std::uint32_t seed;
  };
  const std::vector<Case> cases = {
      {200, 300, 0, 200, 50, 128, 1234},        // one epoch
      {200, 300, 0, 200, 2000, 64, 1234},       // several epochs
      {300, 100, 30, 270, 700, 32, 7},          // a middle range, another seed
      {500, 50, 0, 500, 1, 2048, 99},           // seq longer than many documents
      {100, 20, 0, 100, 3000, 5, 2023},         // many epochs, tiny seq
      {64, 1000, 10, 60, 0, 100, 5},            // no samples asked
  };
  // One case where the last epoch is < 80% of an epoch (separate shuffle), one where it is not.
  bool saw_separate = false, saw_joint_multi = false;
  auto run = [&](const std::vector<std::int32_t>& sizes, std::int64_t begin, std::int64_t end, std::int64_t samples,
                 std::int64_t seq, std::uint32_t seed) {
    TempDir dir;
    test::write_bytes(dir / "sizes", std::vector<unsigned char>(reinterpret_cast<const unsigned char*>(sizes.data()),
                                                               reinterpret_cast<const unsigned char*>(sizes.data() + sizes.size())));
    const std::string out = test::run_command(
        {"/usr/bin/python3", TESSERA_DATA_TESTS_DIR "/megatron_gpt_indices.py", dir / "sizes", std::to_string(begin),
         std::to_string(end), std::to_string(samples), std::to_string(seq), std::to_string(seed), dir / "ref"});
    std::int64_t epochs = 0;
    int separate = 0;
    std::istringstream(out) >> epochs >> separate;
    const GptIndices ix = build_gpt_indices(sizes, begin, end, samples, seq, seed);
    INFO("begin " << begin << " end " << end << " samples " << samples << " seq " << seq << " seed " << seed);
    REQUIRE(ix.num_epochs == epochs);
    REQUIRE(ix.separate_last_epoch == (separate != 0));
    const auto doc_ref = read_i64(dir / "ref.doc");
    REQUIRE(std::vector<std::int64_t>(ix.doc_idx.begin(), ix.doc_idx.end()) == doc_ref);
    REQUIRE(ix.sample_idx == read_i64(dir / "ref.sample"));
    REQUIRE(ix.shuffle_idx == read_i64(dir / "ref.shuffle"));
    REQUIRE(ix.num_samples() >= samples);
    saw_separate |= ix.separate_last_epoch;
    saw_joint_multi |= ix.num_epochs > 1 && !ix.separate_last_epoch;
  };
  for (const auto& c : cases) run(random_sizes(c.docs, static_cast<std::uint32_t>(c.docs), c.max_len), c.begin, c.end,
                                  c.samples, c.seq, c.seed);
  // Chosen to land the last epoch on both sides of the 80% rule: 100 docs × 10 tokens, seq 10.
  const std::vector<std::int32_t> tens(100, 10);
  // 99 samples per epoch; int(0.8 · 99) = 79: 78 samples from the last epoch → separate, 79 → joint.
  run(tens, 0, 100, 99 + 50, 10, 3);
  REQUIRE(saw_separate);
  run(tens, 0, 100, 99 + 90, 10, 3);
  REQUIRE(saw_joint_multi);
  // A range of one token (a small split of a small corpus) asked for no sample: one epoch, an empty
  // shuffle, as Megatron. Asked for samples, a clear error (Megatron fails an assertion); no token
  // at all is one too.
  const std::vector<std::int32_t> one_token = {5, 1, 7};
  run(one_token, 1, 2, 0, 8, 11);
  REQUIRE_THROWS_WITH(build_gpt_indices(one_token, 1, 2, 3, 4, 11), Catch::Contains("at least 2 are needed"));
  REQUIRE_THROWS_WITH(build_gpt_indices(std::vector<std::int32_t>{3, 0, 4}, 1, 2, 0, 8, 11),
                      Catch::Contains("hold 0 token(s)"));
  const std::vector<std::pair<std::int64_t, bool>> boundary = {{99 + 78, true}, {99 + 79, false}};
  for (const auto& [samples, separate] : boundary) {
    run(tens, 0, 100, samples, 10, 3);
    REQUIRE(build_gpt_indices(tens, 0, 100, samples, 10, 3).separate_last_epoch == separate);
  }
}

TEST_CASE("GPT samples are seq+1 windows of the shuffled document stream", "[unit]") {
  TempDir dir;
  const std::string prefix = dir / "corpus";
  const std::int32_t eod = 0;
  std::mt19937 rng(5);
  std::vector<std::vector<std::int32_t>> docs;
  {
    IndexedDatasetWriter w(prefix, IndexDtype::u16);
    for (int d = 0; d < 40; ++d) {
      std::vector<std::int32_t> t(1 + rng() % 25);
      for (auto& x : t) x = 1 + static_cast<std::int32_t>(rng() % 1000);
      t.push_back(eod);
      w.add_document(t);
      docs.push_back(t);
    }
    w.finalize();
  }
  auto data = std::make_shared<const IndexedDataset>(prefix);
  GptDatasetOptions o;
  o.seq_length = 16;
  o.seed = 11;
  o.num_samples = 150;
  o.eod_token = eod;
  o.eod_mask_loss = true;
  GptDataset ds(data, 5, 35, o);
  REQUIRE(ds.size() >= 150);
  REQUIRE(ds.seq_length() == 16);
  // Concatenate the documents in doc_idx order: sample j starts at token j·seq of that stream.
  std::vector<std::int32_t> stream;
  for (std::int32_t d : ds.indices().doc_idx) {
    REQUIRE(d >= 5);
    REQUIRE(d < 35);
    stream.insert(stream.end(), docs[static_cast<std::size_t>(d)].begin(), docs[static_cast<std::size_t>(d)].end());
  }
  std::vector<std::int32_t> tokens(16), labels(16);
  std::vector<float> mask(16);
  std::vector<bool> seen(static_cast<std::size_t>(ds.size()));
  for (std::int64_t i = 0; i < ds.size(); ++i) {
    ds.sample(i, tokens.data(), labels.data(), mask.data());
    const auto j = ds.indices().shuffle_idx[static_cast<std::size_t>(i)];
    seen[static_cast<std::size_t>(j)] = true;
    for (int k = 0; k < 16; ++k) {
      REQUIRE(tokens[k] == stream[static_cast<std::size_t>(j * 16 + k)]);
      REQUIRE(labels[k] == stream[static_cast<std::size_t>(j * 16 + k + 1)]);
      REQUIRE(mask[k] == (tokens[k] == eod ? 0.0f : 1.0f));
    }
  }
  REQUIRE(std::all_of(seen.begin(), seen.end(), [](bool b) { return b; }));
  REQUIRE_THROWS_AS(ds.sample(ds.size(), tokens.data(), labels.data(), mask.data()), Error);

  // Through the Dataset interface, as the trainer reads it (named fields, one row per sample).
  const Batch batch = make_batch(ds, gpt_fields(16), 3, 4);
  REQUIRE(batch.get("tokens").shape() == Shape{4, 16});
  REQUIRE(batch.get("loss_mask").dtype() == DType::f32);
  for (std::int64_t i = 0; i < 4; ++i) {
    ds.sample(3 + i, tokens.data(), labels.data(), mask.data());
    for (int k = 0; k < 16; ++k) {
      REQUIRE(batch.get("tokens").data<std::int32_t>()[i * 16 + k] == tokens[k]);
      REQUIRE(batch.get("labels").data<std::int32_t>()[i * 16 + k] == labels[k]);
      REQUIRE(batch.get("loss_mask").data<float>()[i * 16 + k] == mask[k]);
    }
  }
  // A sample view without a field the dataset writes, or with another dtype, names the field.
  SampleView partial;
  partial.add(gpt_fields(16)[0], tokens.data());
  CHECK(message_of<Error>([&] { ds.sample(0, partial); }).find("'labels'") != std::string::npos);
  SampleView wrong;
  wrong.add({"tokens", DType::f32, {16}}, mask.data());
  CHECK(message_of<Error>([&] { ds.sample(0, wrong); }).find("tokens f32[16]") != std::string::npos);
  CHECK(message_of<Error>([&] { (void)batch.get("token_types"); }).find("'token_types'") != std::string::npos);
}

namespace {

// Megatron-LM's get_ltor_masks_and_position_ids for one row, transcribed: a lower-triangular mask
// whose rows after each eod at i lose the keys up to i, and positions reduced after each eod.
struct MegatronRow {
  std::vector<std::vector<bool>> attend;  // [query][key]
  std::vector<std::int32_t> position_ids;
};
MegatronRow megatron_masks_and_positions(const std::vector<std::int32_t>& data, std::int32_t eod) {
  const auto T = static_cast<std::int32_t>(data.size());
  MegatronRow r;
  r.attend.assign(data.size(), std::vector<bool>(data.size(), false));
  for (std::int32_t i = 0; i < T; ++i)
    for (std::int32_t j = 0; j <= i; ++j) r.attend[i][j] = true;
  r.position_ids.resize(data.size());
  std::iota(r.position_ids.begin(), r.position_ids.end(), 0);
  std::int32_t prev_index = 0;
  for (std::int32_t i = 0; i < T; ++i) {
    if (data[i] != eod) continue;
    for (std::int32_t q = i + 1; q < T; ++q)
      for (std::int32_t k = 0; k <= i; ++k) r.attend[q][k] = false;
    for (std::int32_t q = i + 1; q < T; ++q) r.position_ids[q] -= i + 1 - prev_index;
    prev_index = i + 1;
  }
  return r;
}

}  // namespace

TEST_CASE("reset_attention_mask and reset_position_ids give Megatron's documents and positions", "[unit]") {
  TempDir dir;
  const std::string prefix = dir / "corpus";
  const std::int32_t eod = 3;
  {
    std::mt19937 rng(17);
    IndexedDatasetWriter w(prefix, IndexDtype::u16);
    for (int d = 0; d < 60; ++d) {
      std::vector<std::int32_t> t(rng() % 12);  // documents of 1 … 12 tokens with the eod, some empty
      for (auto& x : t) x = 4 + static_cast<std::int32_t>(rng() % 50);
      if (d % 7 != 3) t.push_back(eod);         // most end with an eod, a few run into the next
      if (!t.empty()) w.add_document(t);
    }
    w.finalize();
  }
  auto data = std::make_shared<const IndexedDataset>(prefix);
  GptDatasetOptions o;
  o.seq_length = 24;
  o.num_samples = 40;
  o.eod_token = eod;
  for (const auto& [reset_positions, reset_attention] : {std::pair{true, true}, {true, false}, {false, true}}) {
    o.reset_position_ids = reset_positions;
    o.reset_attention_mask = reset_attention;
    const FieldSpecs fields = gpt_fields(o);
    REQUIRE(fields.size() == 3u + reset_positions + reset_attention);
    GptDataset ds(data, 0, data->num_sequences(), o);
    const Batch batch = make_batch(ds, fields, 0, ds.size());
    CHECK(batch.has("position_ids") == reset_positions);
    CHECK(batch.has("document_start") == reset_attention);
    std::int64_t documents_seen = 0;
    for (std::int64_t i = 0; i < ds.size(); ++i) {
      const std::int32_t* tokens = batch.get("tokens").data<std::int32_t>() + i * 24;
      const MegatronRow m = megatron_masks_and_positions(std::vector<std::int32_t>(tokens, tokens + 24), eod);
      for (int t = 0; t < 24; ++t) {
        if (reset_positions) REQUIRE(batch.get("position_ids").data<std::int32_t>()[i * 24 + t] == m.position_ids[t]);
        if (!reset_attention) continue;
        const std::int32_t first = batch.get("document_start").data<std::int32_t>()[i * 24 + t];
        for (int j = 0; j < 24; ++j) REQUIRE((first <= j && j <= t) == m.attend[t][j]);
        documents_seen += first == t && t > 0;
      }
    }
    if (reset_attention) CHECK(documents_seen > 20);  // the corpus has documents starting inside samples
  }
  // document_starts alone: eods at 0 and at the end, two in a row.
  const std::vector<std::int32_t> tokens = {eod, 5, 6, eod, eod, 7, eod};
  std::vector<std::int32_t> first(tokens.size());
  document_starts(tokens.data(), static_cast<std::int64_t>(tokens.size()), eod, first.data());
  CHECK(first == std::vector<std::int32_t>{0, 1, 1, 1, 4, 5, 5});
}

TEST_CASE("split strings give Megatron's contiguous document ranges", "[unit]") {
  using A = std::array<std::int64_t, 4>;
  REQUIRE(parse_document_split("969,30,1", 1000) == A{0, 969, 999, 1000});
  REQUIRE(parse_document_split("98/2/0", 1000) == A{0, 980, 1000, 1000});
  REQUIRE(parse_document_split("1", 37) == A{0, 37, 37, 37});
  REQUIRE(parse_document_split("100,0,0", 0) == A{0, 0, 0, 0});
  // Python's round is half-to-even: 2.5 → 2 twice, then the excess (−1) moves the ends: [0,3,5,5].
  REQUIRE(parse_document_split("1,1", 5) == A{0, 3, 5, 5});
  // 969,30,1 on 10 documents: 9.69→10, 0.3→0, 0.01→0 → [0,10,10,10].
  REQUIRE(parse_document_split("969, 30, 1", 10) == A{0, 10, 10, 10});
  REQUIRE(parse_document_split("1,1,1", 2) == A{0, 0, 1, 2});
  for (const char* bad : {"", "a,b", "1,-1", "0,0,0", "1,2,3,4", "1,,2", "1.5x", "nan", ",", "inf", "1,-inf",
                          "1e400", "1,nan,1", "0,0", "-0,0,0", "1e308,1e308,0", "1e308,1e308,1e308"})
    REQUIRE_THROWS_AS(parse_document_split(bad, 100), ConfigError);
  // Each weight finite, the sum not: this gave every document to train.
  std::string msg = message_of<ConfigError>([] { parse_document_split("1e308,1e308,0", 100); });
  CHECK(msg.find("data.split") != std::string::npos);
  CHECK(msg.find("1e308,1e308,0") != std::string::npos);
  CHECK(msg.find("sum") != std::string::npos);
  msg = message_of<ConfigError>([] { parse_document_split("1,nan,1", 100); });
  CHECK(msg.find("data.split") != std::string::npos);
  CHECK(msg.find("\"nan\"") != std::string::npos);
  CHECK(message_of<ConfigError>([] { parse_document_split("1,inf", 100); }).find("out of range") != std::string::npos);
  CHECK(message_of<ConfigError>([] { parse_document_split("5,-2", 100); }).find("negative") != std::string::npos);
  CHECK(message_of<ConfigError>([] { parse_document_split("0,0,0", 100); }).find("sum to zero") != std::string::npos);
  // Large but finite sums still split.
  REQUIRE(parse_document_split("1e307,1e307,0", 10) == A{0, 5, 10, 10});
  try {
    parse_document_split("1,x", 10);
  } catch (const ConfigError& e) {
    REQUIRE(std::string(e.what()).find("\"x\" is not a number") != std::string::npos);
  }
}

TEST_CASE("split datasets: documents per split, and a clear error for an empty split asked for samples", "[unit]") {
  TempDir dir;
  auto data = hundred_documents(dir);
  GptDatasetOptions o;
  o.seq_length = 8;
  auto splits = build_gpt_splits(data, "90,10,0", {100, 10, 0}, o);
  REQUIRE(splits[0]->doc_begin() == 0);
  REQUIRE(splits[0]->doc_end() == 90);
  REQUIRE(splits[1]->doc_begin() == 90);
  REQUIRE(splits[1]->doc_end() == 100);
  REQUIRE(splits[2]->size() == 0);
  REQUIRE(splits[0]->size() >= 100);
  // Every token of a validation sample comes from documents 90..99 (token value = doc + 1).
  std::vector<std::int32_t> w(9);
  for (std::int64_t i = 0; i < splits[1]->size(); ++i) {
    splits[1]->window(i, w.data());
    for (auto t : w) REQUIRE(t >= 91);
  }
  try {
    build_gpt_splits(data, "90,10,0", {100, 10, 5}, o);
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    INFO(msg);
    REQUIRE(msg.find("test split no documents") != std::string::npos);
    REQUIRE(msg.find("c.idx") != std::string::npos);
  }
}

TEST_CASE("index building on ~1M documents is fast", "[unit][bench]") {
  const auto sizes = random_sizes(1'000'000, 1, 2000, 1);  // ~1e9 tokens per epoch
  const std::int64_t tokens = std::accumulate(sizes.begin(), sizes.end(), std::int64_t{0});
  const std::int64_t samples = tokens * 2 / 2048 + 1000;  // into a third, short epoch → separate shuffle
  const auto t0 = std::chrono::steady_clock::now();
  const GptIndices ix = build_gpt_indices(sizes, 0, static_cast<std::int64_t>(sizes.size()), samples, 2048, 1234);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("index building: 1M documents, %.2e tokens/epoch, %lld epochs, %lld samples: %.3f s\n",
              static_cast<double>(tokens), static_cast<long long>(ix.num_epochs),
              static_cast<long long>(ix.num_samples()), s);
  REQUIRE(ix.num_epochs == 3);
  REQUIRE(ix.separate_last_epoch);
  REQUIRE(s < 10.0);
}

TEST_CASE("token ids past the tokenizer's vocabulary are a FormatError naming the data", "[unit]") {
  TempDir dir;
  {
    // Documents 0..9 are byte ids; document 7 holds a GPT-2 id (300) that the byte tokenizer lacks.
    IndexedDatasetWriter w(dir / "gpt2data", IndexDtype::u16);
    for (int d = 0; d < 10; ++d) {
      std::vector<std::int32_t> t(70000, 'a');  // longer than one 65536-token read
      if (d == 7) t[69999] = 300;
      t.push_back(256);
      w.add_document(t);
    }
    w.finalize();
  }
  auto data = std::make_shared<const IndexedDataset>(dir / "gpt2data");
  GptDatasetOptions o;
  o.seq_length = 8;
  o.vocab_size = 257;
  const std::string msg = message_of<FormatError>([&] { build_gpt_splits(data, "90,10,0", {10, 1, 0}, o); });
  CHECK(msg.find("gpt2data.bin") != std::string::npos);
  CHECK(msg.find("300") != std::string::npos);
  CHECK(msg.find("another tokenizer") != std::string::npos);
  // Only the documents a split uses are checked: 0..6 are all byte ids.
  CHECK_NOTHROW(GptDataset(data, 0, 7, o));
  // The tokenizer the data was made with, or no vocabulary given: no error.
  o.vocab_size = 50257;
  CHECK_NOTHROW(build_gpt_splits(data, "90,10,0", {10, 1, 0}, o));
  o.vocab_size = 0;
  CHECK_NOTHROW(build_gpt_splits(data, "90,10,0", {10, 1, 0}, o));
}

TEST_CASE("epoch count: Megatron's loop in closed form, and any sample count answers at once", "[unit]") {
  auto loop = [](std::int64_t tpe, std::int64_t seq, std::int64_t n) {  // Megatron's _num_epochs
    std::int64_t epochs = 0, total = 0;
    while (true) {
      ++epochs;
      total += tpe;
      if ((total - 1) / seq >= n) return epochs;
    }
  };
  std::mt19937_64 rng(3);
  for (int k = 0; k < 20000; ++k) {
    const std::int64_t tpe = 2 + static_cast<std::int64_t>(rng() % 5000), seq = 1 + static_cast<std::int64_t>(rng() % 3000);
    const std::int64_t n = static_cast<std::int64_t>(rng() % 20000);
    INFO(tpe << " " << seq << " " << n);
    REQUIRE(gpt_num_epochs(tpe, seq, n) == loop(tpe, seq, n));
  }
  REQUIRE(gpt_num_epochs(10, 10, 0) == 1);
  REQUIRE(gpt_num_epochs(11, 10, 1) == 1);  // (11 − 1) // 10 = 1
  REQUIRE(gpt_num_epochs(10, 10, 1) == 2);
  // train_iters = 2^62 − 1 looped for ever here (the token total overflowed before reaching it).
  const std::int64_t big = (std::int64_t{1} << 62) - 1;
  REQUIRE(gpt_num_epochs(1000, 1, big) == big / 1000 + 1);
  REQUIRE_THROWS_AS(gpt_num_epochs(2, 1024, big), ConfigError);  // > 2^63 epochs
}

TEST_CASE("more samples than the indices can hold is a ConfigError naming training.train_iters, at once", "[unit]") {
  TempDir dir;
  auto data = hundred_documents(dir);
  GptDatasetOptions o;
  o.seq_length = 8;
  const std::int64_t big = (std::int64_t{1} << 62) - 1;
  for (std::int64_t samples : {big, std::int64_t{1'000'000'000'000'000}, std::int64_t{8'000'000'000'000'000},
                               std::numeric_limits<std::int64_t>::max()}) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string msg = message_of<ConfigError>([&] { build_gpt_splits(data, "90,10,0", {samples, 10, 0}, o); });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO(msg);
    CHECK(s < 1.0);
    CHECK(msg.find("c.idx") != std::string::npos);
    CHECK(msg.find("train split") != std::string::npos);
    CHECK(msg.find("training.train_iters") != std::string::npos);
    CHECK(msg.find(std::to_string(samples) + " samples") != std::string::npos);
    CHECK(msg.find("epoch") != std::string::npos);
    CHECK(msg.find("GiB") != std::string::npos);
  }
  CHECK(message_of<ConfigError>([&] { build_gpt_splits(data, "90,10,0", {100, big, 0}, o); })
            .find("training.eval_iters") != std::string::npos);
  CHECK_THROWS_AS(build_gpt_indices(data->sizes(), 0, 100, big, 8, 1), ConfigError);
  // A huge seq_length with few samples is bounded the same way.
  CHECK_THROWS_AS(build_gpt_indices(data->sizes(), 0, 100, 3, std::int64_t{1} << 61, 1), ConfigError);
  // Just under the cap's scale nothing changes: normal sizes build as before.
  CHECK(build_gpt_indices(data->sizes(), 0, 100, 100'000, 8, 1).num_samples() >= 100'000);
}
