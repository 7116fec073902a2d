#include "bert_dataset.hpp"

#include <algorithm>

#include "masking.hpp"
#include "tessera/data/numpy_random.hpp"
#include "tessera/error.hpp"

namespace tessera::bert_t5_indexed {

FieldSpecs bert_fields(std::int64_t s) {
  return {{"tokens", DType::i32, {s}},     {"types", DType::i32, {s}},       {"labels", DType::i32, {s}},
          {"loss_mask", DType::f32, {s}},  {"padding_mask", DType::u8, {s}}, {"is_random", DType::i32, {1}}};
}

namespace {

// A segment being truncated: tokens[lo, hi) of its sentences joined.
struct Segment {
  std::vector<std::int32_t> tokens;
  std::size_t lo = 0, hi = 0;
  std::size_t size() const { return hi - lo; }
};

void join(std::vector<std::vector<std::int32_t>>& sentences, std::size_t from, std::size_t to, Segment& seg) {
  seg.tokens.clear();
  for (std::size_t i = from; i < to; ++i) seg.tokens.insert(seg.tokens.end(), sentences[i].begin(), sentences[i].end());
  seg.lo = 0;
  seg.hi = seg.tokens.size();
}

}  // namespace

void build_bert_sample(std::vector<std::vector<std::int32_t>>& sentences, std::int64_t target, std::uint32_t seed,
                       const BertSampleOptions& o, std::span<const std::uint8_t> continuation, const BertSample& out) {
  NumpyRandomState rng(seed);
  Segment a, b;
  bool is_random = false;
  const std::size_t n = sentences.size();
  if (o.binary_head) {
    if (n < 2) throw Error(fmt::format("BERT sample with the binary head: {} sentence(s), at least 2 needed", n));
    const std::size_t a_end = n >= 3 ? static_cast<std::size_t>(rng.randint(1, static_cast<std::int64_t>(n))) : 1;
    join(sentences, 0, a_end, a);
    join(sentences, a_end, n, b);
    if (rng.random() < 0.5) {
      std::swap(a, b);
      is_random = true;
    }
  } else {
    join(sentences, 0, n, a);
  }

  // truncate_segments
  while (static_cast<std::int64_t>(a.size() + b.size()) > target) {
    Segment& seg = a.size() > b.size() ? a : b;
    if (rng.random() < 0.5) ++seg.lo;
    else --seg.hi;
  }

  std::vector<std::int32_t> tokens;
  tokens.reserve(a.size() + b.size() + 3);
  tokens.push_back(o.ids.cls);
  tokens.insert(tokens.end(), a.tokens.begin() + a.lo, a.tokens.begin() + a.hi);
  tokens.push_back(o.ids.sep);
  const std::size_t first_b = tokens.size();
  if (b.size() > 0) {
    tokens.insert(tokens.end(), b.tokens.begin() + b.lo, b.tokens.begin() + b.hi);
    tokens.push_back(o.ids.sep);
  }

  MaskingOptions mo;
  mo.masked_lm_prob = o.masked_lm_prob;
  mo.max_ngrams = 3;
  mo.cls = o.ids.cls;
  mo.sep = o.ids.sep;
  mo.mask = o.ids.mask;
  mo.vocab_size = o.ids.vocab_size;
  const Masking m = create_masked_lm_predictions(tokens, continuation, mo, o.masked_lm_prob * static_cast<double>(target), rng);

  const std::size_t s = static_cast<std::size_t>(o.seq_length);
  if (tokens.size() > s)
    throw Error(fmt::format("BERT sample of {} tokens does not fit seq_length {}", tokens.size(), s));
  for (std::size_t i = 0; i < s; ++i) {
    const bool real = i < tokens.size();
    out.tokens[i] = real ? tokens[i] : o.ids.pad;
    out.types[i] = real && i >= first_b ? 1 : 0;
    out.padding_mask[i] = real ? 1 : 0;
    out.labels[i] = -1;
    out.loss_mask[i] = 0.0f;
  }
  for (std::size_t k = 0; k < m.positions.size(); ++k) {
    out.labels[static_cast<std::size_t>(m.positions[k])] = m.labels[k];
    out.loss_mask[static_cast<std::size_t>(m.positions[k])] = 1.0f;
  }
  *out.is_random = is_random ? 1 : 0;
}

BertDataset::BertDataset(std::shared_ptr<const IndexedDataset> data, const std::vector<std::int64_t>& doc_idx,
                         const std::vector<std::int32_t>& sizes, SplitOptions split, const BertSampleOptions& options,
                         std::shared_ptr<const std::vector<std::uint8_t>> continuation)
    : SentenceDataset(std::move(data), doc_idx, sizes,
                      [&] {
                        split.max_target = options.seq_length - 3;  // [CLS] A [SEP] B [SEP]
                        split.min_num_sent = options.binary_head ? 2 : 1;
                        split.vocab_size = options.ids.vocab_size;
                        return split;
                      }()),
      options_(options),
      continuation_(std::move(continuation)) {
  if (!continuation_ || static_cast<std::int64_t>(continuation_->size()) < options_.ids.vocab_size)
    throw Error("BertDataset: the continuation-piece table does not cover the vocabulary");
}

void BertDataset::sample(std::int64_t index, const SampleView& out) const {
  BertSample s;
  s.tokens = out.get<std::int32_t>("tokens");
  s.types = out.get<std::int32_t>("types");
  s.labels = out.get<std::int32_t>("labels");
  s.loss_mask = out.get<float>("loss_mask");
  s.padding_mask = out.get<std::uint8_t>("padding_mask");
  const auto is_random = out.get<std::int32_t>("is_random");
  const auto n = static_cast<std::size_t>(options_.seq_length);
  if (s.tokens.size() != n || s.types.size() != n || s.labels.size() != n || s.loss_mask.size() != n ||
      s.padding_mask.size() != n || is_random.size() != 1)
    throw ShapeError(fmt::format("BERT sample fields do not hold seq_length {} values (and is_random 1)", n));
  s.is_random = is_random.data();
  sample(index, s);
}

void BertDataset::sample(std::int64_t index, const BertSample& out) const {
  thread_local std::vector<std::vector<std::int32_t>> sentences;  // one per loader thread
  const std::int64_t target = read_sample(index, sentences);
  build_bert_sample(sentences, target, rng_seed(index), options_, *continuation_, out);
}

}  // namespace tessera::bert_t5_indexed
