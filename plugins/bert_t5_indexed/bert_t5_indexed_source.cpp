// The data plugins "bert_indexed" and "t5_indexed": BERT (bert_dataset.hpp) and T5 (t5_dataset.hpp)
// samples from a sentence-level Megatron-LM indexed dataset, split into train/valid/test by
// document ranges ("969,30,1") as Megatron's BERT and T5 datasets split them. The factory reads and
// checks the [data] keys and the tokenizer's special tokens; open() reads the files.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <memory>

#include "bert_dataset.hpp"
#include "t5_dataset.hpp"
#include "tessera/config.hpp"
#include "tessera/data/document_split.hpp"
#include "tessera/dataset.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/plugin.hpp"
#include "tessera/tokenizer.hpp"
#include "vocabulary.hpp"

namespace tessera::bert_t5_indexed {

namespace {

enum class Kind { bert, t5 };

struct SourceOptions {
  std::string prefix, split, cache_dir;
  double masked_lm_prob = 0.15, short_seq_prob = 0.1;
};

class SentenceSource : public DataSource {
 public:
  SentenceSource(Kind kind, const ConfigSection& s, const DataRequest& r) : kind_(kind), request_(r) {
    o_.prefix = s.get_string("data_path");
    o_.split = s.get_string("split", "969,30,1");
    o_.masked_lm_prob = s.get_float("masked_lm_prob", 0.15, 0.0, 1.0);
    o_.short_seq_prob = s.get_float("short_seq_prob", 0.1, 0.0, 1.0);
    o_.cache_dir = s.get_string("data_cache_path", "");
    parse_document_split(o_.split, 0);  // a malformed split is a config error, found before any file is read
    if (!r.tokenizer)
      throw ConfigError(plugin() + " needs the run's tokenizer for its special tokens ([CLS], [MASK], sentinels …)");
    if (kind == Kind::bert) {
      // Megatron-LM has one flag (bert_binary_head) for the model and its data: by default the
      // samples follow the model's fields (sentence-order pairs when it reads is_random).
      const bool model_reads_pairs =
          r.model_fields.empty() || std::any_of(r.model_fields.begin(), r.model_fields.end(),
                                                [](const FieldSpec& f) { return f.name == "is_random"; });
      bert_.binary_head = s.get_bool("binary_head", model_reads_pairs);
      bert_.seq_length = r.seq_length;
      bert_.masked_lm_prob = o_.masked_lm_prob;
      if (r.seq_length < 5)
        throw ConfigError(fmt::format("{}: seq_length {} leaves no room for [CLS] A [SEP] B [SEP]; at least 5 is needed",
                                      plugin(), r.seq_length));
      bert_.ids = bert_token_ids(r.tokenizer, plugin());
    } else {
      if (r.decoder_seq_length < 1)
        throw ConfigError(fmt::format("{} needs a decoder length (the model's decoder_seq_length); the model gives {}",
                                      plugin(), r.decoder_seq_length));
      if (r.seq_length < 4)
        throw ConfigError(fmt::format("{}: the encoder seq_length {} is too short; at least 4 is needed", plugin(),
                                      r.seq_length));
      t5_.encoder_length = r.seq_length;
      t5_.decoder_length = r.decoder_seq_length;
      t5_.masked_lm_prob = o_.masked_lm_prob;
      t5_.ids = t5_token_ids(r.tokenizer, t5_max_spans(r.seq_length, o_.masked_lm_prob), plugin());
    }
  }

  FieldSpecs fields() const override {
    return kind_ == Kind::bert ? bert_fields(request_.seq_length)
                               : t5_fields(request_.seq_length, request_.decoder_seq_length);
  }

  void open() override {
    data_ = std::make_shared<const IndexedDataset>(o_.prefix);
    const std::vector<std::int64_t> doc_idx = data_->document_index();
    const std::vector<std::int32_t> sizes = data_->sizes();
    check_sentence_level(sizes);
    auto continuation = std::make_shared<const std::vector<std::uint8_t>>(continuation_pieces(*request_.tokenizer));
    const auto r = parse_document_split(o_.split, data_->num_documents());
    for (int s = 0; s < 3; ++s) {
      SplitOptions so;
      so.plugin = plugin();
      so.split_name = split_name(static_cast<Split>(s));
      so.cache_dir = o_.cache_dir;
      so.doc_begin = r[s];
      so.doc_end = r[s + 1];
      so.num_samples = request_.num_samples[s];
      so.short_seq_prob = o_.short_seq_prob;
      so.seed = request_.seed;
      const bool optional = s == 2 && request_.test_split_optional;
      if (r[s] == r[s + 1] && optional) so.num_samples = 0;
      if (r[s] == r[s + 1] && so.num_samples > 0)
        throw ConfigError(fmt::format("{}: split \"{}\" gives the {} split no documents (of {}), but {} samples were "
                                      "asked of it; change data.split",
                                      data_->idx_path(), o_.split, so.split_name, data_->num_documents(), so.num_samples));
      const auto build = [&] {
        if (kind_ == Kind::bert)
          splits_[s] = std::make_unique<BertDataset>(data_, doc_idx, sizes, so, bert_, continuation);
        else
          splits_[s] = std::make_unique<T5Dataset>(data_, doc_idx, sizes, so, t5_, continuation);
      };
      try {
        build();
      } catch (const ConfigError& e) {
        if (!optional) throw;
        log_warn("{}: the test split cannot supply samples ({}): no test evaluation at the end", plugin(), e.what());
        so.num_samples = 0;
        build();
      }
    }
    if (kind_ == Kind::t5 && 1 + 2 * t5_max_spans(t5_.encoder_length, t5_.masked_lm_prob) > t5_.decoder_length)
      log_info("{}: a sample may need up to {} decoder positions (1 + masked tokens + one sentinel per span), more "
               "than decoder_seq_length {}; the rare sample that does keeps its last spans unmasked",
               plugin(), 1 + 2 * t5_max_spans(t5_.encoder_length, t5_.masked_lm_prob), t5_.decoder_length);
  }

  const Dataset& split(Split s) const override {
    if (!data_) throw Error(plugin() + ": split() before open()");
    return *splits_[static_cast<int>(s)];
  }

  std::string describe() const override {
    if (!data_) return fmt::format("{} (not opened)", o_.prefix);
    auto docs = [&](int s) { return splits_[s]->options().doc_end - splits_[s]->options().doc_begin; };
    std::string text = fmt::format(
        "{} ({} documents, {} sentences, {} tokens); split \"{}\": train {} docs / {} samples, valid {} / {}, "
        "test {} / {}; masked_lm_prob {}, short_seq_prob {}",
        o_.prefix, data_->num_documents(), data_->num_sequences(), data_->total_tokens(), o_.split, docs(0),
        splits_[0]->size(), docs(1), splits_[1]->size(), docs(2), splits_[2]->size(), o_.masked_lm_prob,
        o_.short_seq_prob);
    if (kind_ == Kind::bert) text += fmt::format(", binary_head {}", bert_.binary_head);
    if (!splits_[0]->cache_path().empty())
      text += fmt::format("; train mapping {} ({})", splits_[0]->cache_path(),
                          splits_[0]->mapping_from_cache() ? "cached" : "built");
    return text;
  }

 private:
  std::string plugin() const {
    return kind_ == Kind::bert ? "data plugin 'bert_indexed'" : "data plugin 't5_indexed'";
  }

  // A document-level dataset (GPT's: one item per document) has no sentences to pair or to span.
  void check_sentence_level(const std::vector<std::int32_t>& sizes) const {
    if (data_->num_documents() == 0 || data_->num_sequences() != data_->num_documents()) return;
    const std::int64_t room = kind_ == Kind::bert ? bert_.seq_length - 3 : t5_.encoder_length - 2;
    std::int64_t longer = 0;
    for (const std::int32_t n : sizes) longer += n > room;
    const std::string shape = fmt::format(
        "{}: each of its {} documents is a single item, as in a document-level (GPT) dataset, and {} of them are longer "
        "than the {} tokens a sample holds",
        data_->idx_path(), data_->num_documents(), longer, room);
    if (kind_ == Kind::bert && bert_.binary_head)
      throw ConfigError(shape + fmt::format("; {} with the binary head needs documents of 2+ sentences: preprocess with "
                                            "`tessera preprocess --split-sentences`, or set model.bert_binary_head = false "
                                            "(the data follows it; data.binary_head = false overrides the data alone)",
                                            plugin()));
    if (2 * longer > data_->num_documents())
      log_warn("{}; each sample keeps only the start of a document. Preprocess with `tessera preprocess "
               "--split-sentences` for sentence-level data", shape);
  }

  Kind kind_;
  DataRequest request_;
  SourceOptions o_;
  BertSampleOptions bert_;
  T5SampleOptions t5_;
  std::shared_ptr<const IndexedDataset> data_;  // set by open()
  std::array<std::unique_ptr<SentenceDataset>, 3> splits_;
};

std::unique_ptr<DataSource> make_bert_indexed(const ConfigSection& s, const DataRequest& request) {
  return std::make_unique<SentenceSource>(Kind::bert, s, request);
}

std::unique_ptr<DataSource> make_t5_indexed(const ConfigSection& s, const DataRequest& request) {
  return std::make_unique<SentenceSource>(Kind::t5, s, request);
}

}  // namespace
}  // namespace tessera::bert_t5_indexed

TESSERA_PLUGIN(data, bert_indexed, tessera::bert_t5_indexed::make_bert_indexed)
TESSERA_PLUGIN(data, t5_indexed, tessera::bert_t5_indexed::make_t5_indexed)
