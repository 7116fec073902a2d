// The "bert_indexed" and "t5_indexed" data plugins (plugins/bert_t5_indexed): the samples mapping,
// BERT and T5 samples equal a plain Python transcription of Megatron-LM's code driven by numpy's
// RandomState(seed + idx); the masking's statistics; determinism; the mapping cache; bad input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "bert_dataset.hpp"
#include "data_source.hpp"
#include "expect_error.hpp"
#include "mapping_cache.hpp"
#include "masking.hpp"
#include "tessera/data/npy_file.hpp"
#include "tessera/data/numpy_random.hpp"
#include "t5_dataset.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/plugin.hpp"
#include "tessera/tokenizer.hpp"
#include "test_util.hpp"
#include "vocabulary.hpp"

using namespace tessera;
using namespace tessera::bert_t5_indexed;  // the plugin's code
using test::TempDir;
using json = nlohmann::json;

namespace {

// A WordPiece-shaped vocabulary: [PAD] [UNK] [CLS] [SEP] [MASK], words w5…w44, continuation pieces
// ##p45…##p64, [BOS] [EOS], then <extra_id_0…>. decode() joins as BERT's does, so a lone "##p"
// piece decodes with its "##".
constexpr std::int32_t kPad = 0, kCls = 2, kSep = 3, kMask = 4, kFirstWord = 5, kFirstPiece = 45, kBos = 65, kEos = 66;

class FakeWordPiece : public Tokenizer {
 public:
  explicit FakeWordPiece(int extra_ids = 30, bool with_mask = true) {
    vocab_ = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", with_mask ? "[MASK]" : "[unused0]"};
    for (int i = kFirstWord; i < kFirstPiece; ++i) vocab_.push_back(fmt::format("w{}", i));
    for (int i = kFirstPiece; i < kBos; ++i) vocab_.push_back(fmt::format("##p{}", i));
    vocab_.push_back("[BOS]");
    vocab_.push_back("[EOS]");
    for (int i = 0; i < extra_ids; ++i) vocab_.push_back(fmt::format("<extra_id_{}>", i));
    for (std::size_t i = 0; i < vocab_.size(); ++i) ids_[vocab_[i]] = static_cast<std::int32_t>(i);
  }
  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<std::int32_t> out;
    std::istringstream in{std::string(text)};
    for (std::string w; in >> w;) out.push_back(ids_.count(w) ? ids_.at(w) : 1);
    return out;
  }
  std::string decode(const std::vector<std::int32_t>& ids) const override {
    std::string s;
    for (const auto id : ids) {
      const std::string& piece = vocab_.at(static_cast<std::size_t>(id));
      if (!s.empty() && piece.rfind("##", 0) == 0) s += piece.substr(2);
      else s += (s.empty() ? "" : " ") + piece;
    }
    return s;
  }
  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(vocab_.size()); }
  std::int32_t eod() const override { return kSep; }
  std::optional<std::int32_t> special_token(std::string_view text) const override {
    const std::string t(text);
    if (t.empty() || (t[0] != '[' && t[0] != '<') || !ids_.count(t)) return std::nullopt;
    return ids_.at(t);
  }
  std::string name() const override { return "fake_wordpiece"; }
  const std::vector<std::string>& vocab() const { return vocab_; }

 private:
  std::vector<std::string> vocab_;
  std::map<std::string, std::int32_t> ids_;
};

struct CorpusShape {
  int documents = 300;
  int max_sentences = 8;  // per document, from 0 (an empty document) up
  int max_length = 20;    // tokens per sentence, from 1
  double one_sentence = 0.1;  // share of documents with exactly one sentence
  double long_sentence = 0.02;  // share of sentences of 513..600 tokens
  std::uint32_t seed = 1;
  double special_in_text = 0.005;  // share of text tokens that are [CLS] or [SEP]
};

struct Corpus {
  std::string prefix;
  std::vector<std::vector<std::int32_t>> sentences;
  std::vector<std::int64_t> doc_idx{0};
  std::vector<std::int32_t> sizes;
};

// A sentence-level dataset: words and "##" pieces (a sentence may even start with one), now and
// then a [CLS]/[SEP] inside the text, as real data can have.
Corpus write_corpus(const std::string& prefix, const CorpusShape& shape) {
  Corpus c;
  c.prefix = prefix;
  std::mt19937 rng(shape.seed);
  auto uniform = [&](int lo, int hi) { return lo + static_cast<int>(rng() % static_cast<std::uint32_t>(hi - lo + 1)); };
  auto chance = [&](double p) { return (rng() % 1000000) < p * 1000000; };
  IndexedDatasetWriter w(prefix, IndexDtype::u16);
  for (int d = 0; d < shape.documents; ++d) {
    const int n = chance(shape.one_sentence) ? 1 : uniform(0, shape.max_sentences);
    for (int s = 0; s < n; ++s) {
      const int len = chance(shape.long_sentence) ? uniform(513, 600) : uniform(1, shape.max_length);
      std::vector<std::int32_t> t;
      for (int k = 0; k < len; ++k) {
        if (chance(shape.special_in_text)) t.push_back(chance(0.5) ? kCls : kSep);
        else if ((k > 0 || chance(0.05)) && chance(0.3)) t.push_back(uniform(kFirstPiece, kBos - 1));
        else t.push_back(uniform(kFirstWord, kFirstPiece - 1));
      }
      w.add_sequence(t);
      c.sentences.push_back(t);
      c.sizes.push_back(len);
    }
    w.end_document();
    c.doc_idx.push_back(static_cast<std::int64_t>(c.sentences.size()));
  }
  w.finalize();
  return c;
}

json corpus_json(const Corpus& c, const FakeWordPiece& tok) {
  json j;
  j["sizes"] = c.sizes;
  j["doc_idx"] = c.doc_idx;
  j["sentences"] = c.sentences;
  j["vocab"] = tok.vocab();
  j["cls"] = kCls;
  j["sep"] = kSep;
  j["mask"] = kMask;
  j["pad"] = kPad;
  j["bos"] = kBos;
  j["eos"] = kEos;
  std::vector<int> sentinels;
  for (int i = kEos + 1; i < tok.vocab_size(); ++i) sentinels.push_back(i);
  j["sentinels"] = sentinels;
  return j;
}

json run_reference(const TempDir& dir, const json& in) {
  test::write_text(dir / "ref_in.json", in.dump());
  test::run_command({"/usr/bin/python3", TESSERA_DATA_TESTS_DIR "/megatron_bert_t5_reference.py", dir / "ref_in.json",
                     dir / "ref_out.json"});
  return json::parse(test::read_text(dir / "ref_out.json"));
}

std::vector<std::vector<std::int64_t>> rows_of(const SamplesMapping& m) {
  std::vector<std::vector<std::int64_t>> out;
  for (std::int64_t i = 0; i < m.size(); ++i) {
    const auto r = m.row(i);
    out.push_back({r[0], r[1], r[2]});
  }
  return out;
}

// One sample's fields in plain vectors.
struct BertOut {
  std::vector<std::int32_t> tokens, types, labels, is_random{0};
  std::vector<float> loss_mask;
  std::vector<std::uint8_t> padding_mask;
  explicit BertOut(std::int64_t s) : tokens(s), types(s), labels(s), loss_mask(s), padding_mask(s) {}
  BertSample view() { return {tokens, types, labels, loss_mask, padding_mask, is_random.data()}; }
  bool operator==(const BertOut&) const = default;
};
struct T5Out {
  std::vector<std::int32_t> enc, dec, labels;
  std::vector<float> loss_mask;
  std::vector<std::uint8_t> enc_mask, dec_mask;
  T5Out(std::int64_t se, std::int64_t sd) : enc(se), dec(sd), labels(sd), loss_mask(sd), enc_mask(se), dec_mask(sd) {}
  T5Sample view() { return {enc, dec, labels, loss_mask, enc_mask, dec_mask}; }
  bool operator==(const T5Out&) const = default;
};

template <typename T>
std::vector<std::int64_t> as_i64(const std::vector<T>& v) {
  return {v.begin(), v.end()};
}

SplitOptions split_options(const Corpus& c, std::int64_t num_samples, std::uint64_t seed, double ssp,
                           const std::string& cache_dir) {
  SplitOptions so;
  so.split_name = "train";
  so.cache_dir = cache_dir;
  so.doc_begin = 0;
  so.doc_end = static_cast<std::int64_t>(c.doc_idx.size()) - 1;
  so.num_samples = num_samples;
  so.short_seq_prob = ssp;
  so.seed = seed;
  return so;
}

std::shared_ptr<const std::vector<std::uint8_t>> pieces(const Tokenizer& t) {
  return std::make_shared<const std::vector<std::uint8_t>>(continuation_pieces(t));
}

BertSampleOptions bert_options(const FakeWordPiece& tok, std::int64_t seq, bool binary_head, double p = 0.15) {
  BertSampleOptions o;
  o.seq_length = seq;
  o.binary_head = binary_head;
  o.masked_lm_prob = p;
  o.ids = bert_token_ids(&tok, "test");
  return o;
}

T5SampleOptions t5_options(const FakeWordPiece& tok, std::int64_t se, std::int64_t sd, double p = 0.15) {
  T5SampleOptions o;
  o.encoder_length = se;
  o.decoder_length = sd;
  o.masked_lm_prob = p;
  o.ids = t5_token_ids(&tok, t5_max_spans(se, p), "test");
  return o;
}

}  // namespace

TEST_CASE("numpy RandomState draws used by the BERT/T5 samples are reproduced bit for bit", "[reference]") {
  const std::string out = test::run_command(
      {"/usr/bin/python3", "-c",
       "import numpy as np\n"
       "r = np.random.RandomState(77)\n"
       "pv = 1. / np.arange(1, 4); pv /= pv.sum(keepdims=True)\n"
       "v = []\n"
       "for i in range(3000):\n"
       "    v += [r.random(), r.randint(0, 37), r.geometric(0.2), r.geometric(0.5), r.choice(np.arange(1, 4), p=pv / pv.sum(keepdims=True)), r.randint(1, 2)]\n"
       "a = list(range(50)); r.shuffle(a); v += a\n"
       "print(' '.join(repr(float(x)) for x in v))\n"});
  std::istringstream in(out);
  std::vector<double> expected;
  for (double x; in >> x;) expected.push_back(x);
  NumpyRandomState r(77);
  std::vector<double> got;
  const double pv[3] = {1.0, 0.5, 1.0 / 3};
  const double s = pv[0] + (pv[1] + pv[2]);
  std::vector<double> cdf = {pv[0] / s, pv[0] / s + pv[1] / s, pv[0] / s + pv[1] / s + pv[2] / s};
  for (double& c : cdf) c /= cdf.back();
  for (int i = 0; i < 3000; ++i) {
    got.push_back(r.random());
    got.push_back(static_cast<double>(r.randint(0, 37)));
    got.push_back(static_cast<double>(r.geometric(0.2)));
    got.push_back(static_cast<double>(r.geometric(0.5)));
    got.push_back(static_cast<double>(r.choice(cdf) + 1));
    got.push_back(static_cast<double>(r.randint(1, 2)));  // no draw: a single value
  }
  std::vector<int> a(50);
  std::iota(a.begin(), a.end(), 0);
  r.shuffle(std::span<int>(a));
  for (int x : a) got.push_back(x);
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("draw " << i);
    REQUIRE(got[i] == expected[i]);
  }
}

TEST_CASE("samples mapping equals a Python transcription of Megatron's build_mapping", "[reference]") {
  TempDir dir;
  const FakeWordPiece tok;
  const Corpus c = write_corpus(dir / "corpus", {.documents = 150, .seed = 3});
  struct Case {
    std::int64_t doc_begin, doc_end, samples, max_target;
    double ssp;
    std::uint32_t seed;
    int min_num_sent;
  };
  const std::vector<Case> cases = {
      {0, 150, 100, 61, 0.1, 1234, 2},    // less than an epoch (the whole epoch is kept)
      {0, 150, 3000, 61, 0.1, 1234, 2},   // several epochs
      {0, 150, 500, 29, 0.1, 7, 1},       // no binary head: one-sentence documents count
      {20, 120, 400, 45, 0.0, 99, 2},     // a middle range, no short samples
      {0, 150, 700, 13, 1.0, 5, 1},       // every target random
      {10, 140, 800, 100, 0.33, 2023, 2}, // ratio round(1/0.33) = 3
  };
  for (const auto& k : cases) {
    json in = corpus_json(c, tok);
    in["mode"] = "mapping";
    in["doc_begin"] = k.doc_begin;
    in["doc_end"] = k.doc_end;
    in["num_samples"] = k.samples;
    in["max_seq_length"] = 0;
    in["max_target"] = k.max_target;
    in["short_seq_prob"] = k.ssp;
    in["seed"] = k.seed;
    in["min_num_sent"] = k.min_num_sent;
    const json ref = run_reference(dir, in);
    MappingOptions o{k.max_target, k.ssp, k.seed, k.min_num_sent, k.samples};
    const std::span<const std::int64_t> docs(c.doc_idx.data() + k.doc_begin, static_cast<std::size_t>(k.doc_end - k.doc_begin + 1));
    const SamplesMapping m = build_samples_mapping(docs, c.sizes, o);
    INFO("case docs [" << k.doc_begin << ", " << k.doc_end << ") samples " << k.samples << " ssp " << k.ssp);
    REQUIRE(m.size() >= k.samples);
    REQUIRE(rows_of(m) == ref["mapping"].get<std::vector<std::vector<std::int64_t>>>());
    // Every row respects the rules the reference shares with us: whole documents' sentences, enough of them.
    for (std::int64_t i = 0; i < m.size(); ++i) REQUIRE(m.row(i)[1] - m.row(i)[0] >= k.min_num_sent);
  }
}

TEST_CASE("BERT samples equal Megatron's build_training_sample on numpy's RandomState(seed + idx)", "[reference]") {
  TempDir dir;
  const FakeWordPiece tok;
  const Corpus c = write_corpus(dir / "corpus", {.documents = 200, .max_length = 25, .seed = 11});
  struct Case {
    std::int64_t seq;
    bool binary_head;
    double p, ssp;
    std::uint64_t seed;
  };
  for (const Case k : {Case{64, true, 0.15, 0.1, 1234}, Case{40, false, 0.15, 0.1, 42}, Case{96, true, 0.3, 0.5, 9},
                       Case{24, true, 0.15, 0.0, 4294967290ull}}) {  // the last: seed + idx wraps past 2^32
    const auto options = bert_options(tok, k.seq, k.binary_head, k.p);
    const BertDataset ds(std::make_shared<const IndexedDataset>(c.prefix), c.doc_idx, c.sizes,
                         split_options(c, 300, k.seed, k.ssp, dir.path.string()), options, pieces(tok));
    json in = corpus_json(c, tok);
    in["mode"] = "bert";
    in["doc_begin"] = 0;
    in["doc_end"] = static_cast<std::int64_t>(c.doc_idx.size()) - 1;
    in["num_samples"] = 300;
    in["max_seq_length"] = k.seq;
    in["short_seq_prob"] = k.ssp;
    in["seed"] = k.seed;
    in["binary_head"] = k.binary_head;
    in["masked_lm_prob"] = k.p;
    std::vector<std::int64_t> indices(static_cast<std::size_t>(ds.size()));
    std::iota(indices.begin(), indices.end(), 0);
    in["indices"] = indices;
    const json ref = run_reference(dir, in);
    REQUIRE(rows_of(ds.mapping()) == ref["mapping"].get<std::vector<std::vector<std::int64_t>>>());
    int swapped = 0, masked = 0;
    for (std::int64_t i = 0; i < ds.size(); ++i) {
      BertOut out(k.seq);
      ds.sample(i, out.view());
      const json& r = ref["samples"][static_cast<std::size_t>(i)];
      INFO("seq " << k.seq << " binary head " << k.binary_head << " sample " << i);
      REQUIRE(as_i64(out.tokens) == r["tokens"].get<std::vector<std::int64_t>>());
      REQUIRE(as_i64(out.types) == r["types"].get<std::vector<std::int64_t>>());
      REQUIRE(as_i64(out.labels) == r["labels"].get<std::vector<std::int64_t>>());
      REQUIRE(as_i64(out.loss_mask) == r["loss_mask"].get<std::vector<std::int64_t>>());
      REQUIRE(as_i64(out.padding_mask) == r["padding_mask"].get<std::vector<std::int64_t>>());
      REQUIRE(out.is_random[0] == r["is_random"][0].get<int>());
      swapped += out.is_random[0];
      masked += static_cast<int>(std::count(out.loss_mask.begin(), out.loss_mask.end(), 1.0f));
    }
    // The comparison covered both orders and real masking.
    if (k.binary_head) REQUIRE((swapped > 0 && swapped < ds.size()));
    else REQUIRE(swapped == 0);
    REQUIRE(masked > ds.size());
  }
}

TEST_CASE("T5 samples equal Megatron's span corruption on numpy's RandomState(seed + idx)", "[reference]") {
  TempDir dir;
  const FakeWordPiece tok;
  const Corpus c = write_corpus(dir / "corpus", {.documents = 200, .max_length = 30, .seed = 12});
  struct Case {
    std::int64_t se;
    double p, ssp;
    std::uint64_t seed;
  };
  for (const Case k : {Case{64, 0.15, 0.1, 1234}, Case{128, 0.15, 0.1, 3}, Case{96, 0.3, 0.0, 77}}) {
    const std::int64_t sd = 1 + 2 * t5_max_spans(k.se, k.p);  // room for every sample: nothing is shortened
    const auto options = t5_options(tok, k.se, sd, k.p);
    const T5Dataset ds(std::make_shared<const IndexedDataset>(c.prefix), c.doc_idx, c.sizes,
                       split_options(c, 250, k.seed, k.ssp, dir.path.string()), options, pieces(tok));
    json in = corpus_json(c, tok);
    in["mode"] = "t5";
    in["doc_begin"] = 0;
    in["doc_end"] = static_cast<std::int64_t>(c.doc_idx.size()) - 1;
    in["num_samples"] = 250;
    in["max_seq_length"] = k.se;
    in["max_seq_length_dec"] = sd;
    in["short_seq_prob"] = k.ssp;
    in["seed"] = k.seed;
    in["masked_lm_prob"] = k.p;
    std::vector<std::int64_t> indices(static_cast<std::size_t>(ds.size()));
    std::iota(indices.begin(), indices.end(), 0);
    in["indices"] = indices;
    const json ref = run_reference(dir, in);
    REQUIRE(rows_of(ds.mapping()) == ref["mapping"].get<std::vector<std::vector<std::int64_t>>>());
    for (std::int64_t i = 0; i < ds.size(); ++i) {
      T5Out out(k.se, sd);
      ds.sample(i, out.view());
      const json& r = ref["samples"][static_cast<std::size_t>(i)];
      INFO("encoder " << k.se << " sample " << i);
      REQUIRE(as_i64(out.enc) == r["enc_tokens"].get<std::vector<std::int64_t>>());
      REQUIRE(as_i64(out.dec) == r["dec_tokens"].get<std::vector<std::int64_t>>());
      REQUIRE(as_i64(out.labels) == r["labels"].get<std::vector<std::int64_t>>());
      REQUIRE(as_i64(out.loss_mask) == r["loss_mask"].get<std::vector<std::int64_t>>());
      REQUIRE(as_i64(out.enc_mask) == r["enc_padding_mask"].get<std::vector<std::int64_t>>());
      REQUIRE(as_i64(out.dec_mask) == r["dec_padding_mask"].get<std::vector<std::int64_t>>());
    }
    REQUIRE(ds.shortened_samples() == 0);
  }
}

TEST_CASE("BERT masking statistics: the 15% budget, 80/10/10, whole words, n-gram lengths", "[unit]") {
  const FakeWordPiece tok;
  const auto cont = continuation_pieces(tok);
  std::mt19937 gen(5);
  MaskingOptions mo;
  mo.cls = kCls;
  mo.sep = kSep;
  mo.mask = kMask;
  mo.vocab_size = tok.vocab_size();
  std::int64_t masked = 0, as_mask = 0, kept = 0, budget_total = 0, spans = 0, words_in_spans = 0;
  std::map<std::int64_t, std::int64_t> span_words;
  for (std::uint32_t seed = 0; seed < 1500; ++seed) {
    std::vector<std::int32_t> tokens{kCls};
    const int len = 200 + static_cast<int>(gen() % 300);  // long: the budget's last, shortened n-grams weigh little
    for (int i = 0; i < len; ++i)
      tokens.push_back(i > 0 && gen() % 3 == 0 ? kFirstPiece + static_cast<int>(gen() % 20) : kFirstWord + static_cast<int>(gen() % 40));
    tokens.push_back(kSep);
    const std::vector<std::int32_t> original = tokens;
    const double max_predictions = 0.15 * static_cast<double>(tokens.size() - 2);
    NumpyRandomState rng(seed);
    const Masking m = create_masked_lm_predictions(tokens, cont, mo, max_predictions, rng);
    const double budget = std::min(max_predictions, std::max(1.0, std::nearbyint(tokens.size() * 0.15)));
    REQUIRE(static_cast<double>(m.positions.size()) <= budget);
    budget_total += static_cast<std::int64_t>(std::floor(budget));
    masked += static_cast<std::int64_t>(m.positions.size());
    for (std::size_t k = 0; k < m.positions.size(); ++k) {
      const auto i = static_cast<std::size_t>(m.positions[k]);
      REQUIRE(m.labels[k] == original[i]);
      REQUIRE(original[i] != kCls);
      REQUIRE(original[i] != kSep);
      as_mask += tokens[i] == kMask;
      kept += tokens[i] == original[i];
      // Whole words: a masked continuation piece's word start is masked too.
      if (cont[static_cast<std::size_t>(original[i])] && i > 1)
        REQUIRE(std::find(m.positions.begin(), m.positions.end(), static_cast<std::int32_t>(i - 1)) != m.positions.end());
    }
    for (std::size_t i = 0; i < tokens.size(); ++i)
      if (std::find(m.positions.begin(), m.positions.end(), static_cast<std::int32_t>(i)) == m.positions.end())
        REQUIRE(tokens[i] == original[i]);
    for (const auto& span : m.spans) {
      std::int64_t words = 0;
      for (const auto i : span) words += !cont[static_cast<std::size_t>(original[static_cast<std::size_t>(i)])];
      ++span_words[words];
      words_in_spans += words;
      ++spans;
    }
  }
  // The budget is nearly always filled.
  REQUIRE(static_cast<double>(masked) / static_cast<double>(budget_total) > 0.93);
  const double mask_share = static_cast<double>(as_mask) / static_cast<double>(masked);
  const double kept_share = static_cast<double>(kept) / static_cast<double>(masked);
  REQUIRE(mask_share == Approx(0.8).margin(0.015));
  // Kept: 10% plus the 10% random draws that hit the original id (1 in 97).
  REQUIRE(kept_share == Approx(0.1 + 0.1 / 97).margin(0.012));
  REQUIRE(1.0 - mask_share - kept_share == Approx(0.1 - 0.1 / 97).margin(0.012));
  // n-grams of 1..3 words drawn with weights 6/11, 3/11, 2/11 (mean 18/11); the budget shortens some
  // and longer ones overlap masked words more often (skipped), so short ones gain a little.
  REQUIRE(span_words.rbegin()->first <= 3);
  REQUIRE(span_words[1] > span_words[2]);
  REQUIRE(span_words[2] > span_words[3]);
  const double share1 = static_cast<double>(span_words[1]) / static_cast<double>(spans);
  const double mean_words = static_cast<double>(words_in_spans) / static_cast<double>(spans);
  REQUIRE(share1 > 6.0 / 11);
  REQUIRE(share1 < 0.70);
  REQUIRE(mean_words < 18.0 / 11);
  REQUIRE(mean_words > 1.4);
}

TEST_CASE("T5 span corruption: sentinels in order, the text rebuilt from encoder and decoder, span lengths", "[unit]") {
  TempDir dir;
  const FakeWordPiece tok;
  // No [CLS]/[SEP] in the text: Megatron's masking skips them, so a word split around one is a span
  // that drops it (checked against the transcription above), and the text could not be rebuilt.
  const Corpus c = write_corpus(dir / "corpus", {.documents = 400, .max_sentences = 10, .max_length = 30,
                                                 .long_sentence = 0.0, .seed = 21, .special_in_text = 0.0});
  const std::int64_t se = 128, sd = 1 + 2 * t5_max_spans(se, 0.15);
  const T5Dataset ds(std::make_shared<const IndexedDataset>(c.prefix), c.doc_idx, c.sizes,
                     split_options(c, 1500, 1234, 0.1, dir.path.string()), t5_options(tok, se, sd), pieces(tok));
  const auto cont = continuation_pieces(tok);
  std::int64_t spans = 0, span_tokens = 0, masked = 0, budget = 0;
  for (std::int64_t i = 0; i < ds.size(); ++i) {
    T5Out out(se, sd);
    ds.sample(i, out.view());
    const auto [start, end, target] = ds.mapping().row(i);
    std::vector<std::int32_t> text;
    for (std::int64_t s = start; s < end; ++s) text.insert(text.end(), c.sentences[s].begin(), c.sentences[s].end());
    text.resize(std::min<std::size_t>(text.size(), static_cast<std::size_t>(target)));
    // Rebuild the text: each sentinel in the encoder is followed, in the labels, by its span.
    REQUIRE(out.dec[0] == kBos);
    const auto n_dec = static_cast<std::size_t>(std::count(out.dec_mask.begin(), out.dec_mask.end(), 1));
    REQUIRE(out.labels[n_dec - 1] == kEos);
    for (std::size_t k = 0; k + 1 < n_dec; ++k) REQUIRE(out.labels[k] == out.dec[k + 1]);  // labels = decoder shifted
    std::map<std::int32_t, std::vector<std::int32_t>> span_of;
    std::int32_t current = -1, expected_sentinel = kEos + 1;
    for (std::size_t k = 0; k + 1 < n_dec; ++k) {
      const std::int32_t t = out.labels[k];
      if (t > kEos) {
        REQUIRE(t == expected_sentinel++);  // <extra_id_0>, <extra_id_1>, … in order
        current = t;
        span_of[t];
      } else {
        span_of[current].push_back(t);
      }
    }
    std::vector<std::int32_t> rebuilt;
    std::int32_t next_sentinel = kEos + 1;
    for (std::size_t k = 0; k < out.enc.size() && out.enc_mask[k]; ++k) {
      if (out.enc[k] > kEos) {
        REQUIRE(out.enc[k] == next_sentinel++);
        rebuilt.insert(rebuilt.end(), span_of[out.enc[k]].begin(), span_of[out.enc[k]].end());
      } else {
        rebuilt.push_back(out.enc[k]);
      }
    }
    REQUIRE(next_sentinel == expected_sentinel);
    REQUIRE(rebuilt == text);
    for (const auto& [sentinel, tokens] : span_of) {
      REQUIRE(!tokens.empty());
      // Spans start on a word (but for a "##" piece opening the text: no word before it to join).
      REQUIRE((!cont[static_cast<std::size_t>(tokens.front())] || sentinel == out.enc[0]));
      ++spans;
      span_tokens += static_cast<std::int64_t>(tokens.size());
      masked += static_cast<std::int64_t>(tokens.size());
    }
    budget += static_cast<std::int64_t>(std::floor(std::min(0.15 * target, std::max(1.0, std::nearbyint(0.15 * text.size())))));
  }
  REQUIRE(static_cast<double>(masked) / static_cast<double>(budget) > 0.9);
  // Whole-word spans of min(Geometric(0.2), 10) words (mean 4.46), ~1.4 tokens a word here, shortened by the budget.
  const double mean = static_cast<double>(span_tokens) / static_cast<double>(spans);
  REQUIRE(mean > 3.0);
  REQUIRE(mean < 7.0);
}

TEST_CASE("a sample depends only on (seed, index): any order, any instance, cached or built", "[unit]") {
  TempDir dir;
  const FakeWordPiece tok;
  const Corpus c = write_corpus(dir / "corpus", {.documents = 120, .seed = 8});
  auto make = [&] {
    return BertDataset(std::make_shared<const IndexedDataset>(c.prefix), c.doc_idx, c.sizes,
                       split_options(c, 200, 1234, 0.1, ""), bert_options(tok, 48, true), pieces(tok));
  };
  const BertDataset a = make();
  const BertDataset b = make();  // reads a's cache
  REQUIRE(!a.mapping_from_cache());
  REQUIRE(b.mapping_from_cache());
  std::vector<BertOut> forward;
  for (std::int64_t i = 0; i < a.size(); ++i) {
    forward.emplace_back(48);
    a.sample(i, forward.back().view());
  }
  for (std::int64_t i = a.size() - 1; i >= 0; --i) {
    BertOut out(48);
    b.sample(i, out.view());
    REQUIRE(out == forward[static_cast<std::size_t>(i)]);
    a.sample(i, out.view());
    REQUIRE(out == forward[static_cast<std::size_t>(i)]);
  }
  // Another seed gives other samples.
  const BertDataset other(std::make_shared<const IndexedDataset>(c.prefix), c.doc_idx, c.sizes,
                          split_options(c, 200, 99, 0.1, ""), bert_options(tok, 48, true), pieces(tok));
  int differ = 0;
  for (std::int64_t i = 0; i < 50; ++i) {
    BertOut out(48);
    other.sample(i, out.view());
    differ += !(out == forward[static_cast<std::size_t>(i)]);
  }
  REQUIRE(differ > 40);
}

TEST_CASE("the samples mapping cache: Megatron-style name, reused, numpy-readable, rebuilt when corrupt or stale",
          "[unit]") {
  TempDir dir;
  const FakeWordPiece tok;
  const Corpus c = write_corpus(dir / "corpus", {.documents = 100, .seed = 4});
  auto make = [&](const std::string& cache_dir = "") {
    return std::make_unique<BertDataset>(std::make_shared<const IndexedDataset>(c.prefix), c.doc_idx, c.sizes,
                                         split_options(c, 150, 1234, 0.1, cache_dir), bert_options(tok, 64, true),
                                         pieces(tok));
  };
  const auto first = make();
  const std::string path = first->cache_path();
  REQUIRE(path == c.prefix + "_train_indexmap_150mns_61msl_0.10ssp_1234s_2minsent_0-100docs.npy");
  REQUIRE(std::filesystem::exists(path));
  REQUIRE(!first->mapping_from_cache());

  SECTION("reused: a second dataset reads the file (a permuted file shows in its rows)") {
    auto rows = rows_of(first->mapping());
    std::swap(rows[0], rows[1]);
    std::vector<std::uint32_t> flat;
    for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
    write_npy(path, flat.data(), NpyDtype::u4, {static_cast<std::int64_t>(rows.size()), 3});
    const auto second = make();
    REQUIRE(second->mapping_from_cache());
    REQUIRE(rows_of(second->mapping()) == rows);
  }
  SECTION("readable by numpy as Megatron's uint32 [n, 3] array") {
    const std::string out = test::run_command(
        {"/usr/bin/python3", "-c",
         "import sys, numpy as np; m = np.load(sys.argv[1], allow_pickle=True, mmap_mode='r'); "
         "print(m.dtype, m.shape[0], m.shape[1], ' '.join(map(str, m.reshape(-1))))",
         path});
    std::istringstream in(out);
    std::string dtype;
    std::int64_t n = 0, cols = 0;
    in >> dtype >> n >> cols;
    REQUIRE(dtype == "uint32");
    REQUIRE(n == first->size());
    REQUIRE(cols == 3);
    for (std::int64_t i = 0; i < n; ++i)
      for (int k = 0; k < 3; ++k) {
        std::int64_t v = -1;
        in >> v;
        REQUIRE(v == first->mapping().row(i)[k]);
      }
  }
  SECTION("a corrupt file is rebuilt, with the same rows") {
    for (const std::size_t keep : {std::size_t{0}, std::size_t{7}, std::size_t{100}}) {
      auto bytes = test::read_bytes(path);
      bytes.resize(std::min(keep, bytes.size()));
      test::write_bytes(path, bytes);
      const auto again = make();
      REQUIRE(!again->mapping_from_cache());
      REQUIRE(again->mapping() == first->mapping());
      REQUIRE(make()->mapping_from_cache());  // and written back whole
    }
    // Valid .npy, wrong content: rows outside the split.
    const std::vector<std::uint32_t> bad = {0, 100000, 61};
    write_npy(path, bad.data(), NpyDtype::u4, {1, 3});
    const auto again = make();
    REQUIRE(!again->mapping_from_cache());
    REQUIRE(again->mapping() == first->mapping());
  }
  SECTION("rows that cross a document boundary (another dataset's cache, files with older times) are rebuilt") {
    auto rows = rows_of(first->mapping());
    const auto next = std::upper_bound(c.doc_idx.begin(), c.doc_idx.end(), rows[0][0]);
    REQUIRE(next != c.doc_idx.end());
    rows[0][1] = *next + 1;  // one sentence into the next document
    std::vector<std::uint32_t> flat;
    for (const auto& r : rows)
      for (const std::int64_t v : r) flat.push_back(static_cast<std::uint32_t>(v));
    write_npy(path, flat.data(), NpyDtype::u4, {static_cast<std::int64_t>(rows.size()), 3});
    const auto again = make();
    REQUIRE(!again->mapping_from_cache());
    REQUIRE(again->mapping() == first->mapping());
  }
  SECTION("a cache older than the data's .idx is rebuilt") {
    std::filesystem::last_write_time(path, std::filesystem::last_write_time(c.prefix + ".idx") - std::chrono::hours(1));
    const auto again = make();
    REQUIRE(!again->mapping_from_cache());
    REQUIRE(again->mapping() == first->mapping());
  }
  SECTION("data.data_cache_path puts it elsewhere; a folder that cannot be written keeps it in memory") {
    const auto elsewhere = make(dir / "cache");
    REQUIRE(elsewhere->cache_path().starts_with(dir / "cache/corpus-"));
    REQUIRE(elsewhere->cache_path().ends_with("_train_indexmap_150mns_61msl_0.10ssp_1234s_2minsent_0-100docs.npy"));
    REQUIRE(std::filesystem::exists(elsewhere->cache_path()));
    test::write_text(dir / "a_file", "x");
    const auto in_memory = make(dir / "a_file/below");  // a file where the folder should be
    REQUIRE(!in_memory->mapping_from_cache());
    REQUIRE(in_memory->mapping() == first->mapping());
  }
  SECTION("processes (threads here) opening at once: one builds, the others wait and read its file") {
    const std::string cache = dir / "race";
    std::vector<std::unique_ptr<BertDataset>> made(4);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < made.size(); ++t) threads.emplace_back([&, t] { made[t] = make(cache); });
    for (auto& t : threads) t.join();
    int built = 0;
    for (const auto& d : made) {
      built += !d->mapping_from_cache();
      REQUIRE(d->mapping() == first->mapping());
    }
    REQUIRE(built == 1);
  }
  SECTION("the name follows Megatron's, with the min-sentences rule and an exact short_seq_prob") {
    MappingCacheName n{"/d/x", "", "valid", 10, 509, 0.1, 1234, 1, 3, 7};
    REQUIRE(mapping_cache_path(n) == "/d/x_valid_indexmap_10mns_509msl_0.10ssp_1234s_1minsent_3-7docs.npy");
    n.short_seq_prob = 0.054;  // "0.05" would name round(1/0.05) = 20, not 19
    REQUIRE(mapping_cache_path(n) == "/d/x_valid_indexmap_10mns_509msl_0.054ssp_1234s_1minsent_3-7docs.npy");
    n.doc_end = 9;  // another split of the documents: another file
    REQUIRE(mapping_cache_path(n) == "/d/x_valid_indexmap_10mns_509msl_0.054ssp_1234s_1minsent_3-9docs.npy");
  }
}

TEST_CASE("one-sentence documents under the binary head are skipped and counted, never a hang", "[unit]") {
  TempDir dir;
  const FakeWordPiece tok;
  const Corpus c = write_corpus(dir / "corpus", {.documents = 200, .one_sentence = 0.5, .long_sentence = 0.0, .seed = 6});
  std::int64_t one = 0, multi_docs = 0;
  for (std::size_t d = 0; d + 1 < c.doc_idx.size(); ++d) {
    one += c.doc_idx[d + 1] - c.doc_idx[d] == 1;
    multi_docs += c.doc_idx[d + 1] - c.doc_idx[d] >= 2;
  }
  REQUIRE(one > 50);
  const BertDataset ds(std::make_shared<const IndexedDataset>(c.prefix), c.doc_idx, c.sizes,
                       split_options(c, 5000, 1234, 0.1, ""), bert_options(tok, 64, true), pieces(tok));
  REQUIRE(ds.counts().too_few_sentences == one);
  REQUIRE(ds.counts().used() == multi_docs);
  REQUIRE(ds.size() >= 5000);
  for (std::int64_t i = 0; i < ds.size(); ++i) REQUIRE(ds.mapping().row(i)[1] - ds.mapping().row(i)[0] >= 2);
  // Without the binary head they are used.
  const BertDataset no_head(std::make_shared<const IndexedDataset>(c.prefix), c.doc_idx, c.sizes,
                            split_options(c, 100, 1234, 0.1, ""), bert_options(tok, 64, false), pieces(tok));
  REQUIRE(no_head.counts().too_few_sentences == 0);

  // Only one-sentence documents: a clear error at once, naming the file, the split and the key.
  const Corpus ones = write_corpus(dir / "ones", {.documents = 50, .one_sentence = 1.0, .seed = 2});
  const std::string msg = message_of<ConfigError>([&] {
    BertDataset(std::make_shared<const IndexedDataset>(ones.prefix), ones.doc_idx, ones.sizes,
                split_options(ones, 10, 1234, 0.1, ""), bert_options(tok, 64, true), pieces(tok));
  });
  REQUIRE_THAT(msg, Catch::Contains(ones.prefix + ".idx"));
  REQUIRE_THAT(msg, Catch::Contains("50 with fewer than 2 sentences"));
  REQUIRE_THAT(msg, Catch::Contains("model.bert_binary_head = false"));
}

namespace {

PluginPtr<DataSource> make_source(const std::string& plugin, const std::string& data_path, const Tokenizer* tok,
                                  std::int64_t seq, std::int64_t dec_seq, const std::string& extra = "",
                                  const FieldSpecs& model_fields = {}) {
  DataRequest r;
  r.seq_length = seq;
  r.decoder_seq_length = dec_seq;
  r.seed = 1234;
  r.num_samples[0] = 64;
  r.num_samples[1] = 8;
  r.tokenizer = tok;
  r.vocab_size = tok ? tok->vocab_size() : 0;
  r.eod_token = kSep;
  r.model_fields = model_fields;
  return test::make_data_source(plugin, fmt::format("data_path = '{}'\nsplit = \"90,10,0\"\n{}", data_path, extra), r,
                                "test config");
}

// Fills a SampleView over one sample's worth of each field and returns the buffers.
struct SampleBuffers {
  std::vector<std::vector<unsigned char>> memory;
  SampleView view;
  explicit SampleBuffers(const FieldSpecs& fields) {
    for (const auto& f : fields) {
      memory.emplace_back(static_cast<std::size_t>(shape_numel(f.sample_shape)) * dtype_size(f.dtype));
      view.add(f, memory.back().data());
    }
  }
};

// A cached mapping named <stem><first>-<end>docs.npy exists (the split's document range).
bool mapping_written(const std::string& stem) {
  const std::filesystem::path p(stem);
  for (const auto& e : std::filesystem::directory_iterator(p.parent_path())) {
    const std::string name = e.path().filename().string();
    if (name.starts_with(p.filename().string()) && name.ends_with("docs.npy")) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("the bert_indexed and t5_indexed plugins: the batch-field contract, samples through SampleView", "[unit]") {
  TempDir dir;
  const FakeWordPiece tok;
  const Corpus c = write_corpus(dir / "corpus", {.documents = 120, .seed = 9});
  {
    auto source = make_source("bert_indexed", c.prefix, &tok, 32, 0, "masked_lm_prob = 0.2\nshort_seq_prob = 0.05\n");
    const FieldSpecs expected = {{"tokens", DType::i32, {32}},    {"types", DType::i32, {32}},
                                 {"labels", DType::i32, {32}},    {"loss_mask", DType::f32, {32}},
                                 {"padding_mask", DType::u8, {32}}, {"is_random", DType::i32, {1}}};
    REQUIRE(source->fields() == expected);
    call_plugin(source, [](DataSource& d) { d.open(); });
    REQUIRE(source->split(Split::train).size() >= 64);
    REQUIRE(source->split(Split::valid).size() >= 8);
    REQUIRE(source->split(Split::test).size() == 0);
    SampleBuffers b(source->fields());
    source->split(Split::train).sample(3, b.view);
    const auto tokens = b.view.get<std::int32_t>("tokens");
    REQUIRE(tokens[0] == kCls);
    REQUIRE(std::count(tokens.begin(), tokens.end(), kSep) >= 2);
    REQUIRE_THAT(source->describe(), Catch::Contains("binary_head true"));
    REQUIRE(mapping_written(c.prefix + "_train_indexmap_64mns_29msl_0.05ssp_1234s_2minsent_"));
  }
  {
    auto source = make_source("t5_indexed", c.prefix, &tok, 48, 16);
    const FieldSpecs expected = {{"enc_tokens", DType::i32, {48}},     {"dec_tokens", DType::i32, {16}},
                                 {"labels", DType::i32, {16}},         {"loss_mask", DType::f32, {16}},
                                 {"enc_padding_mask", DType::u8, {48}}, {"dec_padding_mask", DType::u8, {16}}};
    REQUIRE(source->fields() == expected);
    call_plugin(source, [](DataSource& d) { d.open(); });
    SampleBuffers b(source->fields());
    source->split(Split::train).sample(0, b.view);
    REQUIRE(b.view.get<std::int32_t>("dec_tokens")[0] == kBos);
    REQUIRE(mapping_written(c.prefix + "_train_indexmap_64mns_46msl_0.10ssp_1234s_1minsent_"));
  }
}

TEST_CASE("bad input: missing [MASK], too few sentinels, GPT-shaped data, missing settings, foreign token ids",
          "[unit]") {
  TempDir dir;
  const Corpus c = write_corpus(dir / "corpus", {.documents = 60, .seed = 10});

  SECTION("a vocabulary without [MASK]") {
    const FakeWordPiece no_mask(30, false);
    const std::string msg = message_of<ConfigError>([&] { make_source("bert_indexed", c.prefix, &no_mask, 64, 0); });
    REQUIRE_THAT(msg, Catch::Contains("fake_wordpiece"));
    REQUIRE_THAT(msg, Catch::Contains("[MASK]"));
  }
  SECTION("too few <extra_id_N> for T5: the first missing one is named") {
    const FakeWordPiece few(3);
    // 0.15 × (64 − 2) → up to 9 spans
    const std::string msg = message_of<ConfigError>([&] { make_source("t5_indexed", c.prefix, &few, 64, 32); });
    REQUIRE_THAT(msg, Catch::Contains("fake_wordpiece"));
    REQUIRE_THAT(msg, Catch::Contains("<extra_id_3> is missing"));
    REQUIRE_THAT(msg, Catch::Contains("9 masked spans"));
    const FakeWordPiece enough(9);
    make_source("t5_indexed", c.prefix, &enough, 64, 32);  // 9 is enough
  }
  SECTION("GPT-shaped data (one item per document) under the binary head: an error naming the file") {
    IndexedDatasetWriter w(dir / "gpt", IndexDtype::u16);
    for (int d = 0; d < 30; ++d) w.add_document(std::vector<std::int32_t>(100, kFirstWord + d % 30));
    w.finalize();
    const FakeWordPiece tok;
    auto source = make_source("bert_indexed", dir / "gpt", &tok, 64, 0);
    const std::string msg = message_of<ConfigError>([&] { source->open(); });
    REQUIRE_THAT(msg, Catch::Contains(dir / "gpt.idx"));
    REQUIRE_THAT(msg, Catch::Contains("document-level (GPT) dataset"));
    REQUIRE_THAT(msg, Catch::Contains("--split-sentences"));
    // Without the binary head it loads (with a warning), each sample the start of a document.
    auto plain = make_source("bert_indexed", dir / "gpt", &tok, 64, 0, "binary_head = false\n");
    plain->open();
    REQUIRE(plain->split(Split::train).size() >= 64);
    // The default follows the model (Megatron-LM's one bert_binary_head flag): for a model that reads
    // no is_random, single segments without data.binary_head, so these documents load; for one that
    // reads it, sentence pairs, which they cannot give.
    const FieldSpecs without_pairs = {{"tokens", DType::i32, {64}}, {"labels", DType::i32, {64}},
                                      {"loss_mask", DType::f32, {64}}, {"padding_mask", DType::u8, {64}}};
    auto follows = make_source("bert_indexed", dir / "gpt", &tok, 64, 0, "", without_pairs);
    follows->open();
    REQUIRE_THAT(follows->describe(), Catch::Contains("binary_head false"));
    FieldSpecs with_pairs = without_pairs;
    with_pairs.push_back({"types", DType::i32, {64}});
    with_pairs.push_back({"is_random", DType::i32, {1}});
    auto pairs = make_source("bert_indexed", dir / "gpt", &tok, 64, 0, "", with_pairs);
    REQUIRE_THAT(message_of<ConfigError>([&] { pairs->open(); }), Catch::Contains("data.binary_head = false"));
  }
  SECTION("t5 without a decoder length, no tokenizer, an out-of-range key, a bad split") {
    const FakeWordPiece tok;
    REQUIRE_THAT(message_of<ConfigError>([&] { make_source("t5_indexed", c.prefix, &tok, 64, 0); }),
                 Catch::Contains("decoder_seq_length"));
    REQUIRE_THAT(message_of<ConfigError>([&] { make_source("bert_indexed", c.prefix, nullptr, 64, 0); }),
                 Catch::Contains("tokenizer"));
    REQUIRE_THAT(message_of<ConfigError>([&] { make_source("bert_indexed", c.prefix, &tok, 64, 0, "masked_lm_prob = 1.5\n"); }),
                 Catch::Contains("masked_lm_prob"));
    REQUIRE_THAT(message_of<ConfigError>([&] { make_source("t5_indexed", c.prefix, &tok, 64, 16, "binary_head = true\n"); }),
                 Catch::Contains("binary_head"));  // a BERT-only key is unknown to t5_indexed
    REQUIRE_THAT(message_of<ConfigError>([&] { make_source("bert_indexed", c.prefix, &tok, 64, 0, "split = \"a,b\"\n"); }),
                 Catch::Contains("split"));
  }
  SECTION("token ids past the tokenizer's vocabulary: a FormatError naming the .bin") {
    IndexedDatasetWriter w(dir / "big", IndexDtype::u16);
    for (int d = 0; d < 20; ++d) {
      w.add_sequence(std::vector<std::int32_t>{kFirstWord, kFirstWord + 1});
      w.add_sequence(std::vector<std::int32_t>{kFirstWord, 5000});
      w.end_document();
    }
    w.finalize();
    const FakeWordPiece tok;
    auto source = make_source("bert_indexed", dir / "big", &tok, 64, 0);
    source->open();
    SampleBuffers b(source->fields());
    const std::string msg = message_of<FormatError>([&] { source->split(Split::train).sample(0, b.view); });
    REQUIRE_THAT(msg, Catch::Contains(dir / "big.bin"));
    REQUIRE_THAT(msg, Catch::Contains("5000"));
  }
  SECTION("a decoder too short for a sample: its last spans stay unmasked, the sample stays consistent") {
    const FakeWordPiece tok;
    const Corpus big = write_corpus(dir / "long", {.documents = 100, .max_length = 40, .long_sentence = 0.0, .seed = 3});
    const T5Dataset ds(std::make_shared<const IndexedDataset>(big.prefix), big.doc_idx, big.sizes,
                       split_options(big, 100, 1234, 0.0, ""), t5_options(tok, 128, 12), pieces(tok));
    for (std::int64_t i = 0; i < ds.size(); ++i) {
      T5Out out(128, 12);
      ds.sample(i, out.view());
      const auto n_dec = std::count(out.dec_mask.begin(), out.dec_mask.end(), 1);
      REQUIRE(out.labels[static_cast<std::size_t>(n_dec - 1)] == kEos);
      const auto sentinels_in_enc = std::count_if(out.enc.begin(), out.enc.end(), [](std::int32_t t) { return t > kEos; });
      const auto sentinels_in_dec = std::count_if(out.dec.begin(), out.dec.end(), [](std::int32_t t) { return t > kEos; });
      REQUIRE(sentinels_in_enc == sentinels_in_dec);
    }
    REQUIRE(ds.shortened_samples() > 0);
  }
}
