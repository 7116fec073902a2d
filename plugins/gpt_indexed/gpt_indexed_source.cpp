// The "gpt_indexed" data plugin: GPT samples (tokens, labels, loss_mask; gpt_dataset.hpp) from
// Megatron-LM indexed datasets (.bin + .idx), indexed as Megatron's GPTDataset does.
//   data_path = "prefix"                         split into train/valid/test by document ranges
//                                                ("969,30,1")
//   data_path = ["0.3", "a", "0.7", "b"]         each prefix split so, each split a weighted blend
//                                                (core's BlendedDataset, Megatron's BlendableDataset)
//   train_data_path / valid_data_path / test_data_path = a prefix or a weighted list: each split
//                                                from its own data (the whole of each prefix); split
//                                                does not apply
//   mock_data = true                             Megatron-Core's mock corpus (--mock-data;
//                                                token_documents.hpp), split as a prefix is
// fim_rate > 0 adds fill-in-the-middle (gpt_fim.hpp), checked against the tokenizer at start.
// The GPT indices and a blend's indices are cached as .npy files beside the data, or in
// data_cache_path (gpt_dataset.hpp, tessera/data/blended_dataset.hpp, tessera/data/index_cache.hpp).
#include <algorithm>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "gpt_dataset.hpp"
#include "gpt_fim.hpp"
#include "tessera/config.hpp"
#include "tessera/data/blended_dataset.hpp"
#include "tessera/data/data_blend.hpp"
#include "tessera/data/document_split.hpp"
#include "tessera/dataset.hpp"
#include "tessera/logging.hpp"
#include "tessera/plugin.hpp"
#include "tessera/tokenizer.hpp"

namespace tessera::gpt_indexed {

namespace {

const char* const kSplitKeys[3] = {"train_data_path", "valid_data_path", "test_data_path"};

class EmptyDataset : public Dataset {
 public:
  std::int64_t size() const override { return 0; }
  void sample(std::int64_t index, const SampleView&) const override {
    throw Error(fmt::format("data plugin 'gpt_indexed': sample {} of a split with no data path", index));
  }
};

std::string key_where(const ConfigSection& s, const std::string& key) {
  const std::string origin = s.origin(key);
  return origin == "--set" ? fmt::format("{}.{} (from --set)", s.name(), key)
                           : fmt::format("{}.{} in {}", s.name(), key, origin);
}

class GptIndexedSource : public DataSource {
 public:
  // Reads and checks the settings only: the files are opened by open().
  GptIndexedSource(const ConfigSection& s, const DataRequest& r) : request_(r) {
    options_.seq_length = r.seq_length;
    options_.seed = static_cast<std::uint32_t>(r.seed);
    options_.eod_token = r.eod_token;
    options_.eod_mask_loss = s.get_bool("eod_mask_loss", false);
    options_.reset_position_ids = s.get_bool("reset_position_ids", false);
    options_.reset_attention_mask = s.get_bool("reset_attention_mask", false);
    check_model_reads(s, r.model_fields);
    options_.vocab_size = r.vocab_size;
    options_.cache_indices = true;
    options_.cache_dir = s.get_string("data_cache_path", "");
    mock_ = s.get_bool("mock_data", false);
    if (mock_)
      read_mock(s);
    else
      read_paths(s);
    read_fim(s);
  }

  FieldSpecs fields() const override { return gpt_fields(options_); }

  void open() override {
    const DataRequest& r = request_;
    std::array<std::int64_t, 3> asked{r.num_samples[0], r.num_samples[1], r.num_samples[2]};
    if (mock_) {
      GptDatasetOptions o = options_;
      o.vocab_size = 0;  // its ids are known, and checked against the tokenizer by read_mock
      const auto docs = mock_documents(r.eod_token);
      // An optional test split, as for files: asked only when its documents make a sample.
      if (r.test_split_optional && asked[2] > 0 && split_tokens(*docs, 2) < 2) asked[2] = 0;
      auto splits = build_gpt_splits(docs, split_, asked, o);
      for (int s = 0; s < 3; ++s) splits_[s] = std::move(splits[s]);
      opened_ = true;
      return;
    }
    if (!per_split_) {
      // An optional test split is asked only when every blended dataset's split gives it documents
      // of at least the 2 tokens a sample needs (an input and its label).
      if (r.test_split_optional && asked[2] > 0)
        for (const std::string& prefix : blend_.prefixes)
          if (split_tokens(*indexed_documents(open_prefix(prefix)), 2) < 2) asked[2] = 0;
      std::vector<std::array<std::unique_ptr<GptDataset>, 3>> subs;
      for (std::size_t j = 0; j < blend_.prefixes.size(); ++j) {
        std::array<std::int64_t, 3> n{};
        for (int s = 0; s < 3; ++s)
          n[s] = blend_.weighted ? blend_samples_per_dataset(blend_.weights, asked[s])[j] : asked[s];
        subs.push_back(build_gpt_splits(open_prefix(blend_.prefixes[j]), split_, n, options_));
      }
      for (int s = 0; s < 3; ++s) {
        std::vector<std::shared_ptr<const Dataset>> parts;
        for (auto& sub : subs) parts.push_back(std::move(sub[s]));
        splits_[s] = combine(parts, blend_, asked[s], s);
      }
    } else {
      for (int s = 0; s < 3; ++s) {
        const DataBlend& b = split_blends_[s];
        if (b.prefixes.empty()) {
          if (r.num_samples[s] > 0 && !(s == 2 && r.test_split_optional))
            throw ConfigError(fmt::format("data plugin 'gpt_indexed': {} samples are asked of the {} split, but "
                                          "data.{} is not set (train_data_path is set, so split does not apply)",
                                          r.num_samples[s], split_name(static_cast<Split>(s)), kSplitKeys[s]));
          splits_[s] = std::make_shared<EmptyDataset>();
          continue;
        }
        const std::vector<std::int64_t> n = b.weighted ? blend_samples_per_dataset(b.weights, r.num_samples[s])
                                                       : std::vector<std::int64_t>{r.num_samples[s]};
        std::vector<std::shared_ptr<const Dataset>> parts;
        for (std::size_t j = 0; j < b.prefixes.size(); ++j) {
          auto data = open_prefix(b.prefixes[j]);
          GptDatasetOptions o = options_;
          o.num_samples = n[j];
          o.split_name = split_name(static_cast<Split>(s));
          try {
            parts.push_back(std::make_shared<GptDataset>(data, 0, data->num_sequences(), o));
          } catch (const ConfigError& e) {
            throw ConfigError(fmt::format("data.{}: {}", kSplitKeys[s], e.what()));
          }
        }
        splits_[s] = combine(parts, b, r.num_samples[s], s);
      }
    }
    opened_ = true;
  }

  const Dataset& split(Split s) const override {
    if (!opened_) throw Error("data plugin 'gpt_indexed': split() before open()");
    return *splits_[static_cast<int>(s)];
  }

  std::string describe() const override {
    if (!opened_) return "gpt_indexed (not opened)";
    std::string out;
    if (mock_ || (!per_split_ && !blend_.weighted)) {  // one set of documents, split
      auto gpt = [&](int s) { return static_cast<const GptDataset*>(splits_[s].get()); };
      auto docs = [&](int s) { return gpt(s)->doc_end() - gpt(s)->doc_begin(); };
      const std::string what =
          mock_ ? fmt::format("mock data (Megatron-Core's MockGPTDataset: {} documents 1, 2, …, eod of 1 … {} tokens)",
                              kMockDocuments, kMockMaxLength - 1)
                : fmt::format("{} ({} documents, {} tokens)", blend_.prefixes[0], data_.begin()->second->num_sequences(),
                              data_.begin()->second->total_tokens());
      out = fmt::format("{}; split \"{}\": train {} docs / {} samples, valid {} / {}, test {} / {}", what, split_, docs(0),
                        gpt(0)->size(), docs(1), gpt(1)->size(), docs(2), gpt(2)->size());
    } else {
      out = per_split_ ? "per-split data paths" : fmt::format("a blend of {} datasets, split \"{}\"", blend_.prefixes.size(), split_);
      for (int s = 0; s < 3; ++s) {
        const DataBlend& b = per_split_ ? split_blends_[s] : blend_;
        out += fmt::format("; {} {} samples", split_name(static_cast<Split>(s)), splits_[s]->size());
        if (b.prefixes.empty()) continue;
        const auto* blended = dynamic_cast<const BlendedDataset*>(splits_[s].get());
        std::vector<std::string> parts;
        for (std::size_t j = 0; j < b.prefixes.size(); ++j) {
          if (blended)
            parts.push_back(fmt::format("{} (weight {:.4g}): {} of {}", b.prefixes[j], b.weights[j],
                                        blended->indices().counts[j], blended->datasets()[j]->size()));
          else
            parts.push_back(fmt::format("{}: {} samples", b.prefixes[j], splits_[s]->size()));
        }
        out += fmt::format(" from {}", fmt::join(parts, ", "));
        if (!b.dropped.empty()) out += fmt::format(" (weight 0, not used: {})", fmt::join(b.dropped, ", "));
      }
    }
    if (options_.fim)
      out += fmt::format("; fill-in-the-middle: fim_rate {}, fim_spm_rate {}{}", fim_.rate, fim_.spm_rate,
                         fim_.split_sample.empty() ? std::string()
                                                   : fmt::format(", fim_split_sample \"{}\", fragment_fim_rate {}",
                                                                 fim_.split_sample, fim_.fragment_rate));
    if (options_.reset_position_ids || options_.reset_attention_mask)
      out += fmt::format("; after each eod (token {}) {}", options_.eod_token,
                         options_.reset_position_ids && options_.reset_attention_mask
                             ? "positions restart and tokens attend their own document only"
                         : options_.reset_position_ids ? "positions restart"
                                                       : "tokens attend their own document only");
    return out;
  }

 private:
  // Megatron-LM's --mock-data: Megatron-Core's mock corpus instead of files, split as a dataset is.
  void read_mock(const ConfigSection& s) {
    for (const char* key : {"data_path", "train_data_path", "valid_data_path", "test_data_path"})
      if (s.has(key))
        throw ConfigError(fmt::format("data.mock_data = true (in {}) makes up its documents, but {} is set too: give "
                                      "one or the other",
                                      s.origin("mock_data"), key_where(s, key)));
    // Ids 1 … 4094 and the eod: the model's vocabulary must hold them (GPT-2's does; byte's does not).
    if (request_.vocab_size > 0 && request_.vocab_size < kMockMaxLength - 1)
      throw ConfigError(fmt::format("data.mock_data = true (in {}) makes documents of the ids 1 … {}, past the "
                                    "tokenizer's {} ids: use a tokenizer with at least {} (gpt2_bpe, or null with "
                                    "vocab_size = {})",
                                    s.origin("mock_data"), kMockMaxLength - 2, request_.vocab_size, kMockMaxLength - 1,
                                    kMockMaxLength - 1));
    split_ = s.get_string("split", "969,30,1");
    parse_document_split(split_, 0);
  }

  void read_paths(const ConfigSection& s) {
    bool any = false;
    for (int k = 0; k < 3; ++k) {
      if (!s.has(kSplitKeys[k])) continue;
      split_blends_[k] = read_data_blend(s, kSplitKeys[k]);
      any = true;
    }
    per_split_ = any;
    if (per_split_) {
      if (s.has("data_path"))
        throw ConfigError(fmt::format("{}: data_path and train/valid/test_data_path are both set; use one or the other",
                                      key_where(s, "data_path")));
      if (s.has("split"))
        log_warn("data.split = \"{}\" does not apply: train/valid/test_data_path give each split its own data",
                 s.get_string("split"));
      return;
    }
    if (!s.has("data_path"))
      throw ConfigError(fmt::format("data.data_path is not set in {}: give a dataset prefix, a weighted list "
                                    "[\"0.3\", \"prefix/a\", \"0.7\", \"prefix/b\"], or train_data_path (and "
                                    "valid_data_path, test_data_path)",
                                    s.origin("data_path")));
    blend_ = read_data_blend(s, "data_path");
    split_ = s.get_string("split", "969,30,1");
    parse_document_split(split_, 0);  // a malformed split is a config error, found before any file is read
  }

  // The tokens split_ gives split s of docs, counted up to 2 (what one sample needs).
  std::int64_t split_tokens(const TokenDocuments& docs, int s) const {
    const auto ranges = parse_document_split(split_, docs.num_sequences());
    std::int64_t tokens = 0;
    for (std::int64_t d = ranges[s]; d < ranges[s + 1] && tokens < 2; ++d) tokens += docs.sequence_length(d);
    return tokens;
  }

  // A reset makes a field that a model must read, or its documents would silently attend each
  // other (or keep their positions): refuse a model that does not (GPT reads both).
  void check_model_reads(const ConfigSection& s, const FieldSpecs& model_fields) const {
    if (model_fields.empty()) return;  // no model (tools, tests)
    for (const auto& [key, field] : {std::pair{"reset_position_ids", "position_ids"},
                                     std::pair{"reset_attention_mask", "document_start"}}) {
      if (!s.get_bool(key, false)) continue;
      const bool read = std::any_of(model_fields.begin(), model_fields.end(),
                                    [&](const FieldSpec& f) { return f.name == field; });
      if (!read)
        throw ConfigError(fmt::format("{} = true makes the batch field {}, which the model plugin does not read; "
                                      "set it to false or use a model that reads it (gpt)",
                                      key_where(s, key), field));
    }
  }

  void read_fim(const ConfigSection& s) {
    fim_.rate = s.get_float("fim_rate", 0.0, 0.0, 1.0);
    fim_.spm_rate = s.get_float("fim_spm_rate", 0.5, 0.0, 1.0);
    fim_.fragment_rate = s.get_float("fragment_fim_rate", 0.5, 0.0, 1.0);
    fim_.split_sample = s.get_string("fim_split_sample", "");
    if (fim_.rate == 0.0) {  // FIM off: its other keys do nothing, which a typo'd fim_rate would hide
      for (const char* key : {"fim_spm_rate", "fragment_fim_rate", "fim_split_sample"})
        if (s.has(key))
          log_warn("{} has no effect: fill-in-the-middle is off (data.fim_rate = 0{})", key_where(s, key),
                   s.has("fim_rate") ? "" : ", its default");
      return;
    }
    const std::string where = key_where(s, "fim_rate");
    check_fim_options(fim_, where);
    if (!request_.tokenizer)
      throw ConfigError(fmt::format("{}: fill-in-the-middle needs the run's tokenizer, and none was given", where));
    const FimTokens tokens = find_fim_tokens(*request_.tokenizer, fim_, where);
    options_.fim = std::make_shared<const FimTransform>(*request_.tokenizer, tokens, fim_, request_.eod_token);
  }

  std::shared_ptr<const IndexedDataset> open_prefix(const std::string& prefix) {
    auto& d = data_[prefix];
    if (!d) d = std::make_shared<const IndexedDataset>(prefix);
    return d;
  }

  // One dataset as is; a weighted list as a blend of exactly `size` samples, its indices cached in
  // data_cache_path or beside the first prefix.
  std::shared_ptr<const Dataset> combine(std::vector<std::shared_ptr<const Dataset>> parts, const DataBlend& b,
                                         std::int64_t size, int split) const {
    if (!b.weighted) return parts[0];
    std::string dir = options_.cache_dir;
    if (dir.empty()) dir = std::filesystem::path(b.prefixes[0]).parent_path().string();
    if (dir.empty()) dir.push_back('.');  // not = ".": GCC 12 warns falsely there (-Wrestrict, PR 105329)
    const std::string stem = blending_cache_stem(dir, split_name(static_cast<Split>(split)), b.weights, b.prefixes,
                                                 size, options_.seed);
    return std::make_shared<BlendedDataset>(std::move(parts), b.weights, size, b.prefixes, stem);
  }

  DataRequest request_;
  GptDatasetOptions options_;
  FimOptions fim_;
  bool mock_ = false;  // data.mock_data
  bool per_split_ = false;
  DataBlend blend_;                // data_path
  std::string split_;              // with data_path
  std::array<DataBlend, 3> split_blends_;  // train/valid/test_data_path
  std::map<std::string, std::shared_ptr<const IndexedDataset>> data_;  // opened prefixes
  std::array<std::shared_ptr<const Dataset>, 3> splits_;
  bool opened_ = false;
};

std::unique_ptr<DataSource> make_gpt_indexed(const ConfigSection& s, const DataRequest& request) {
  return std::make_unique<GptIndexedSource>(s, request);
}

}  // namespace
}  // namespace tessera::gpt_indexed

TESSERA_PLUGIN(data, gpt_indexed, tessera::gpt_indexed::make_gpt_indexed)
