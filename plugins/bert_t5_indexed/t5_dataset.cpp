#include "t5_dataset.hpp"

#include <algorithm>
#include <cmath>

#include "masking.hpp"
#include "tessera/data/numpy_random.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"

namespace tessera::bert_t5_indexed {

FieldSpecs t5_fields(std::int64_t se, std::int64_t sd) {
  return {{"enc_tokens", DType::i32, {se}},      {"dec_tokens", DType::i32, {sd}},
          {"labels", DType::i32, {sd}},          {"loss_mask", DType::f32, {sd}},
          {"enc_padding_mask", DType::u8, {se}}, {"dec_padding_mask", DType::u8, {sd}}};
}

std::int64_t t5_max_spans(std::int64_t encoder_length, double masked_lm_prob) {
  // Each span holds at least one masked token, and the masked tokens stay within
  // masked_lm_prob × target ≤ masked_lm_prob × (encoder_length − 2).
  return std::max<std::int64_t>(0, static_cast<std::int64_t>(std::floor(masked_lm_prob * static_cast<double>(encoder_length - 2))));
}

std::int64_t build_t5_sample(const std::vector<std::vector<std::int32_t>>& sentences, std::int64_t target,
                             std::uint32_t seed, const T5SampleOptions& o, std::span<const std::uint8_t> continuation,
                             const T5Sample& out) {
  NumpyRandomState rng(seed);
  std::vector<std::int32_t> text;
  for (const auto& s : sentences) {
    const std::size_t room = static_cast<std::size_t>(target) - text.size();
    text.insert(text.end(), s.begin(), s.begin() + static_cast<std::ptrdiff_t>(std::min(room, s.size())));
    if (text.size() >= static_cast<std::size_t>(target)) break;
  }

  MaskingOptions mo;
  mo.masked_lm_prob = o.masked_lm_prob;
  mo.max_ngrams = 10;
  mo.geometric = true;
  mo.bert_style = false;
  mo.cls = o.ids.cls;
  mo.sep = o.ids.sep;
  mo.mask = o.ids.pad;  // never emitted: every masked token is inside a span, which a sentinel replaces
  mo.vocab_size = o.ids.vocab_size;
  std::vector<std::int32_t> masked_text = text;
  const Masking m = create_masked_lm_predictions(masked_text, continuation, mo, o.masked_lm_prob * static_cast<double>(target), rng);

  // Keep the spans whose decoder input fits: [BOS], then per span its sentinel and tokens.
  std::size_t kept = m.spans.size(), dec_len = 1 + m.positions.size() + kept;
  while (dec_len > static_cast<std::size_t>(o.decoder_length) && kept > 0) {
    dec_len -= m.spans[kept - 1].size() + 1;
    --kept;
  }
  if (kept > o.ids.sentinels.size())
    throw Error(fmt::format("T5 sample with {} masked spans, but the tokenizer has {} sentinels", kept, o.ids.sentinels.size()));

  std::vector<std::int32_t> enc, dec_in{o.ids.bos}, dec_out;
  std::size_t start = 0;
  for (std::size_t k = 0; k < kept; ++k) {
    const auto& span = m.spans[k];
    const std::int32_t sentinel = o.ids.sentinels[k];
    dec_in.push_back(sentinel);
    dec_out.push_back(sentinel);
    for (const std::int32_t i : span) {
      dec_in.push_back(text[static_cast<std::size_t>(i)]);
      dec_out.push_back(text[static_cast<std::size_t>(i)]);
    }
    enc.insert(enc.end(), text.begin() + static_cast<std::ptrdiff_t>(start), text.begin() + span.front());
    enc.push_back(sentinel);
    start = static_cast<std::size_t>(span.back()) + 1;
  }
  dec_out.push_back(o.ids.eos);
  enc.insert(enc.end(), text.begin() + static_cast<std::ptrdiff_t>(std::min(start, text.size())), text.end());

  const auto se = static_cast<std::size_t>(o.encoder_length), sd = static_cast<std::size_t>(o.decoder_length);
  if (enc.size() > se) throw Error(fmt::format("T5 encoder input of {} tokens does not fit {}", enc.size(), se));
  for (std::size_t i = 0; i < se; ++i) {
    out.enc_tokens[i] = i < enc.size() ? enc[i] : o.ids.pad;
    out.enc_padding_mask[i] = i < enc.size() ? 1 : 0;
  }
  for (std::size_t i = 0; i < sd; ++i) {
    const bool real = i < dec_in.size();
    out.dec_tokens[i] = real ? dec_in[i] : o.ids.pad;
    out.labels[i] = real ? dec_out[i] : -1;
    out.loss_mask[i] = real ? 1.0f : 0.0f;
    out.dec_padding_mask[i] = real ? 1 : 0;
  }
  return static_cast<std::int64_t>(m.spans.size() - kept);
}

T5Dataset::T5Dataset(std::shared_ptr<const IndexedDataset> data, const std::vector<std::int64_t>& doc_idx,
                     const std::vector<std::int32_t>& sizes, SplitOptions split, const T5SampleOptions& options,
                     std::shared_ptr<const std::vector<std::uint8_t>> continuation)
    : SentenceDataset(std::move(data), doc_idx, sizes,
                      [&] {
                        split.max_target = options.encoder_length - 2;  // Megatron's room for BOS and EOS
                        split.min_num_sent = 1;
                        split.vocab_size = options.ids.vocab_size;
                        return split;
                      }()),
      options_(options),
      continuation_(std::move(continuation)) {
  if (!continuation_ || static_cast<std::int64_t>(continuation_->size()) < options_.ids.vocab_size)
    throw Error("T5Dataset: the continuation-piece table does not cover the vocabulary");
}

void T5Dataset::sample(std::int64_t index, const SampleView& out) const {
  T5Sample s;
  s.enc_tokens = out.get<std::int32_t>("enc_tokens");
  s.dec_tokens = out.get<std::int32_t>("dec_tokens");
  s.labels = out.get<std::int32_t>("labels");
  s.loss_mask = out.get<float>("loss_mask");
  s.enc_padding_mask = out.get<std::uint8_t>("enc_padding_mask");
  s.dec_padding_mask = out.get<std::uint8_t>("dec_padding_mask");
  const auto se = static_cast<std::size_t>(options_.encoder_length), sd = static_cast<std::size_t>(options_.decoder_length);
  if (s.enc_tokens.size() != se || s.enc_padding_mask.size() != se || s.dec_tokens.size() != sd ||
      s.labels.size() != sd || s.loss_mask.size() != sd || s.dec_padding_mask.size() != sd)
    throw ShapeError(fmt::format("T5 sample fields do not hold the encoder length {} / decoder length {}", se, sd));
  sample(index, s);
}

void T5Dataset::sample(std::int64_t index, const T5Sample& out) const {
  thread_local std::vector<std::vector<std::int32_t>> sentences;
  const std::int64_t target = read_sample(index, sentences);
  if (build_t5_sample(sentences, target, rng_seed(index), options_, *continuation_, out) > 0 && shortened_++ == 0)
    log_warn("{}: sample {} needed a decoder input longer than decoder_seq_length {}; its last masked spans were left "
             "unmasked to fit (Megatron-LM stops with DecoderLengthExceededError). Further such samples are counted, "
             "not logged",
             options().plugin, index, options_.decoder_length);
}

}  // namespace tessera::bert_t5_indexed
