#include "sentence_dataset.hpp"

#include <algorithm>
#include <filesystem>
#include <span>

#include "mapping_cache.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"

namespace tessera::bert_t5_indexed {

namespace {

std::string skipped_line(const DocumentCounts& c, int min_num_sent) {
  std::vector<std::string> parts;
  if (c.too_few_sentences > 0)
    parts.push_back(fmt::format("{} with fewer than {} sentences{}", c.too_few_sentences, min_num_sent,
                                min_num_sent == 2 ? " (the binary head needs 2; model.bert_binary_head = false keeps them)" : ""));
  if (c.long_sentence > 0)
    parts.push_back(fmt::format("{} with a sentence over {} tokens (skipped as Megatron-LM does)", c.long_sentence,
                                kLongSentenceLen));
  if (c.empty > 0) parts.push_back(fmt::format("{} empty", c.empty));
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : ", ") + p;
  return s;
}

}  // namespace

SentenceDataset::SentenceDataset(std::shared_ptr<const IndexedDataset> data, const std::vector<std::int64_t>& doc_idx,
                                 const std::vector<std::int32_t>& sizes, const SplitOptions& o)
    : data_(std::move(data)), options_(o) {
  if (!data_) throw Error("SentenceDataset: no indexed dataset");
  const std::int64_t num_docs = static_cast<std::int64_t>(doc_idx.size()) - 1;
  if (o.doc_begin < 0 || o.doc_end < o.doc_begin || o.doc_end > num_docs)
    throw Error(fmt::format("{}: document range [{}, {}) outside [0, {})", data_->idx_path(), o.doc_begin, o.doc_end,
                            num_docs));
  const std::span<const std::int64_t> docs(doc_idx.data() + o.doc_begin, static_cast<std::size_t>(o.doc_end - o.doc_begin + 1));
  counts_ = count_documents(docs, sizes, o.min_num_sent);
  if (o.num_samples <= 0) return;  // nothing asked of this split: no mapping, no file

  const std::string where = fmt::format("{}: {} split of {} (documents [{}, {}))", o.plugin, o.split_name,
                                        data_->idx_path(), o.doc_begin, o.doc_end);
  const std::string skipped = skipped_line(counts_, o.min_num_sent);
  if (counts_.used() == 0)
    throw ConfigError(fmt::format("{}: no document can make a sample ({} documents: {}), but {} samples were asked of it",
                                  where, counts_.documents, skipped.empty() ? "none" : skipped, o.num_samples));
  if (!skipped.empty())
    log_warn("{}: {} of {} documents skipped: {}", where, counts_.documents - counts_.used(), counts_.documents, skipped);

  MappingCacheName name;
  name.data_prefix = data_->idx_path().substr(0, data_->idx_path().size() - 4);  // "<prefix>.idx"
  name.cache_dir = o.cache_dir;
  name.split = o.split_name;
  name.max_num_samples = o.num_samples;
  name.max_seq_length = o.max_target;
  name.short_seq_prob = o.short_seq_prob;
  name.seed = o.seed;
  name.min_num_sent = o.min_num_sent;
  name.doc_begin = o.doc_begin;
  name.doc_end = o.doc_end;
  cache_path_ = mapping_cache_path(name);
  if (!o.cache_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.cache_dir, ec);  // a failure shows as an unwritable cache below
  }

  MappingOptions mo;
  mo.max_seq_length = o.max_target;
  mo.short_seq_prob = o.short_seq_prob;
  mo.seed = static_cast<std::uint32_t>(o.seed);
  mo.min_num_sent = o.min_num_sent;
  mo.max_num_samples = o.num_samples;
  const std::int64_t first_sentence = docs.front(), end_sentence = docs.back();
  // A cached file must describe this split: enough rows, sentences inside it and each row inside
  // one document (a dataset replaced by files with an older time, cp -p, tar x, keeps its cache's
  // date: its rows then cross the new documents' boundaries), sane targets.
  auto check = [&](const SamplesMapping& m) -> std::string {
    if (m.size() < o.num_samples) return fmt::format("{} rows, {} samples wanted", m.size(), o.num_samples);
    for (std::int64_t i = 0; i < m.size(); ++i) {
      const auto [start, end, target] = m.row(i);
      if (start < first_sentence || end > end_sentence || end - start < o.min_num_sent || target < 2 ||
          target > o.max_target)
        return fmt::format("row {} = ({}, {}, {}) does not fit sentences [{}, {}) with targets up to {}", i, start, end,
                           target, first_sentence, end_sentence, o.max_target);
      const auto next_document = std::upper_bound(docs.begin(), docs.end(), static_cast<std::int64_t>(start));
      if (next_document != docs.end() && end > *next_document)
        return fmt::format("row {} = ({}, {}, {}) spans two documents (one starts at sentence {})", i, start, end,
                           target, *next_document);
    }
    return "";
  };
  auto build = [&] {
    log_info("{}: building the samples mapping for {} samples ({})", where, o.num_samples, cache_path_);
    try {
      return build_samples_mapping(docs, sizes, mo);
    } catch (const ConfigError& e) {
      throw ConfigError(fmt::format("{}: {}; lower training.train_iters, or training.eval_iters "
                                    "(validation asks (train_iters / eval_interval + 1) × eval_iters global batches)",
                                    where, e.what()));
    }
  };
  CachedMapping cached = load_or_build_mapping(cache_path_, data_->idx_path(), check, build);
  mapping_ = std::move(cached.mapping);
  from_cache_ = cached.from_cache;
}

std::int64_t SentenceDataset::read_sample(std::int64_t index, std::vector<std::vector<std::int32_t>>& sentences) const {
  if (index < 0 || index >= size())
    throw Error(fmt::format("{}: sample {} out of range [0, {})", data_->idx_path(), index, size()));
  const auto [start, end, target] = mapping_.row(index);
  sentences.resize(static_cast<std::size_t>(end - start));
  for (std::int64_t s = start; s < end; ++s) {
    auto& out = sentences[static_cast<std::size_t>(s - start)];
    out.resize(static_cast<std::size_t>(data_->sequence_length(s)));
    data_->read(s, 0, static_cast<std::int64_t>(out.size()), out.data());
    if (options_.vocab_size > 0)
      for (const std::int32_t t : out)
        if (t < 0 || t >= options_.vocab_size)
          throw FormatError(fmt::format("{}: token id {} in sentence {} is outside the tokenizer's vocabulary of {} ids "
                                        "(preprocessed with another tokenizer?)",
                                        data_->bin_path(), t, s, options_.vocab_size));
  }
  return target;
}

}  // namespace tessera::bert_t5_indexed
