#include "gpt_dataset.hpp"

#include <algorithm>
#include <limits>
#include <vector>

#include "tessera/data/document_split.hpp"
#include "tessera/data/index_cache.hpp"
#include "tessera/data/index_cache_name.hpp"
#include "tessera/data/npy_file.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"

namespace tessera::gpt_indexed {

namespace {
// Ids past the vocabulary would otherwise go unnoticed when they land in the padded rows of the
// embedding, and be an op error mid-run when they do not; one linear scan at open is cheap.
void check_token_range(const TokenDocuments& data, std::int64_t begin, std::int64_t end, std::int64_t vocab) {
  std::vector<std::int32_t> buf(std::size_t{1} << 16);
  for (std::int64_t s = begin; s < end; ++s) {
    const std::int64_t len = data.sequence_length(s);
    for (std::int64_t off = 0; off < len; off += static_cast<std::int64_t>(buf.size())) {
      const std::int64_t n = std::min<std::int64_t>(len - off, static_cast<std::int64_t>(buf.size()));
      data.read(s, off, n, buf.data());
      const auto [lo, hi] = std::minmax_element(buf.begin(), buf.begin() + n);
      if (*lo < 0 || *hi >= vocab)
        throw FormatError(fmt::format("{}: token id {} in sequence {} is outside the tokenizer's vocabulary of {} ids "
                                      "(preprocessed with another tokenizer?)",
                                      data.tokens_name(), *lo < 0 ? *lo : *hi, s, vocab));
    }
  }
}
}  // namespace

GptDataset::GptDataset(std::shared_ptr<const TokenDocuments> data, std::int64_t doc_begin, std::int64_t doc_end,
                       const GptDatasetOptions& options)
    : data_(std::move(data)), doc_begin_(doc_begin), doc_end_(doc_end), options_(options) {
  if (!data_) throw Error("GptDataset: no indexed dataset");
  if (doc_begin < 0 || doc_end < doc_begin || doc_end > data_->num_sequences())
    throw Error(fmt::format("{}: document range [{}, {}) outside [0, {})", data_->name(), doc_begin, doc_end,
                            data_->num_sequences()));
  if (doc_begin == doc_end) {
    if (options.num_samples > 0)
      throw ConfigError(fmt::format("{}: {} samples wanted from an empty document range", data_->name(),
                                    options.num_samples));
    return;
  }
  if (options.vocab_size > 0) check_token_range(*data_, doc_begin, doc_end, options.vocab_size);
  const std::vector<std::int32_t> sizes = data_->sizes();
  try {
    if (options.cache_indices && !data_->cache_prefix().empty())
      load_or_build_indices(sizes);
    else
      indices_ = build_gpt_indices(sizes, doc_begin, doc_end, options.num_samples, options.seq_length, options.seed);
  } catch (const ConfigError& e) {  // too many samples asked for: keep the type, a setting is wrong
    throw ConfigError(fmt::format("{}: {}", data_->name(), e.what()));
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", data_->name(), e.what()));
  }
}

std::array<std::string, 3> gpt_index_cache_paths(const std::string& data_prefix, const GptDatasetOptions& o,
                                                 std::int64_t doc_begin, std::int64_t doc_end) {
  const std::string base = fmt::format("{}_{}_indexmap_{}ns_{}sl_{}s", index_cache_stem(data_prefix, o.cache_dir),
                                       o.split_name, o.num_samples, o.seq_length, o.seed);
  std::array<std::string, 3> out;
  const char* kinds[3] = {"doc_idx", "sample_idx", "shuffle_idx"};
  for (int k = 0; k < 3; ++k) out[k] = fmt::format("{}_{}_{}-{}docs.npy", base, kinds[k], doc_begin, doc_end);
  return out;
}

void GptDataset::load_or_build_indices(const std::vector<std::int32_t>& sizes) {
  const GptDatasetOptions& o = options_;
  // Sized (and checked) first: a wrong setting is the same clear error with or without a cache.
  const GptIndexPlan plan = plan_gpt_indices(sizes, doc_begin_, doc_end_, o.num_samples, o.seq_length);
  const std::string& idx = data_->name();
  const auto paths = gpt_index_cache_paths(data_->cache_prefix(), o, doc_begin_, doc_end_);
  cache_paths_.assign(paths.begin(), paths.end());
  const IndexCacheFiles files{fmt::format("GPT indices of the {} split of {} (documents [{}, {}), {} samples)",
                                          o.split_name, idx, doc_begin_, doc_end_, o.num_samples),
                              cache_paths_, idx};
  auto load = [&](std::vector<MappedNpy>& f) -> std::string {
    const char* names[3] = {"doc_idx", "sample_idx", "shuffle_idx"};
    for (int k = 0; k < 3; ++k) {
      const NpyDtype t = f[static_cast<std::size_t>(k)].dtype();
      if (t != NpyDtype::i4 && t != NpyDtype::u4 && t != NpyDtype::i8)
        return fmt::format("{} has element type {}, not int32, uint32 or int64", names[k], npy_descr(t));
    }
    if (f[0].shape().size() != 1 || f[1].shape().size() != 2 || f[1].shape()[1] != 2 || f[2].shape().size() != 1)
      return "the shapes are not doc_idx [n], sample_idx [n, 2], shuffle_idx [n]";
    GptIndices x;
    x.tokens_per_epoch = plan.tokens_per_epoch;
    x.num_epochs = plan.num_epochs;
    x.separate_last_epoch = plan.separate_last_epoch;
    for (std::int64_t i = 0; i < f[0].numel(); ++i)
      if (f[0].at(i) < doc_begin_ || f[0].at(i) >= doc_end_)
        return fmt::format("doc_idx[{}] = {} is outside documents [{}, {})", i, f[0].at(i), doc_begin_, doc_end_);
    x.doc_idx = f[0].to_vector<std::int32_t>();
    x.sample_idx = f[1].to_vector<std::int64_t>();
    x.shuffle_idx = f[2].to_vector<std::int64_t>();
    std::string problem = check_gpt_indices(x, plan, sizes, doc_begin_, doc_end_);
    if (problem.empty()) indices_ = std::move(x);
    return problem;
  };
  // Written with Megatron's types: doc_idx int32; sample_idx int32 while its entries fit, else int64;
  // shuffle_idx uint32 below 2^32 − 1 samples, else int64.
  std::vector<std::int32_t> sample32;
  std::vector<std::uint32_t> shuffle32;
  auto build = [&]() -> std::vector<NpyArrayRef> {
    log_info("{}: building them", files.what);
    indices_ = build_gpt_indices(sizes, doc_begin_, doc_end_, o.num_samples, o.seq_length, o.seed);
    const auto& x = indices_;
    std::vector<NpyArrayRef> out(3);
    out[0] = {NpyDtype::i4, {static_cast<std::int64_t>(x.doc_idx.size())}, x.doc_idx.data()};
    const std::int64_t rows = static_cast<std::int64_t>(x.sample_idx.size() / 2);
    if (std::all_of(x.sample_idx.begin(), x.sample_idx.end(),
                    [](std::int64_t v) { return v <= std::numeric_limits<std::int32_t>::max(); })) {
      sample32.assign(x.sample_idx.begin(), x.sample_idx.end());
      out[1] = {NpyDtype::i4, {rows, 2}, sample32.data()};
    } else {
      out[1] = {NpyDtype::i8, {rows, 2}, x.sample_idx.data()};
    }
    if (x.num_samples() < std::int64_t{std::numeric_limits<std::uint32_t>::max()} - 1) {
      shuffle32.assign(x.shuffle_idx.begin(), x.shuffle_idx.end());
      out[2] = {NpyDtype::u4, {x.num_samples()}, shuffle32.data()};
    } else {
      out[2] = {NpyDtype::i8, {x.num_samples()}, x.shuffle_idx.data()};
    }
    return out;
  };
  const IndexCacheResult r = load_or_build_index(files, load, build);
  from_cache_ = r.from_cache;
  written_ = r.written;
}

void GptDataset::window(std::int64_t index, std::int32_t* out) const {
  if (index < 0 || index >= size())
    throw Error(fmt::format("{}: sample {} out of range [0, {})", data_->name(), index, size()));
  const auto& sidx = indices_.sample_idx;
  const auto& doc_idx = indices_.doc_idx;
  const auto i = static_cast<std::size_t>(indices_.shuffle_idx[static_cast<std::size_t>(index)]);
  const std::int64_t doc_f = sidx[2 * i], off_f = sidx[2 * i + 1];
  const std::int64_t doc_l = sidx[2 * i + 2], off_l = sidx[2 * i + 3];
  if (doc_f == doc_l) {
    data_->read(doc_idx[static_cast<std::size_t>(doc_f)], off_f, off_l - off_f + 1, out);
    return;
  }
  std::int64_t n = 0;
  for (std::int64_t p = doc_f; p <= doc_l; ++p) {
    const std::int64_t seq = doc_idx[static_cast<std::size_t>(p)];
    const std::int64_t begin = p == doc_f ? off_f : 0;
    const std::int64_t end = p == doc_l ? off_l + 1 : data_->sequence_length(seq);
    data_->read(seq, begin, end - begin, out + n);
    n += end - begin;
  }
}

void GptDataset::sample_window(std::int64_t index, std::vector<std::int32_t>& out) const {
  out.resize(static_cast<std::size_t>(options_.seq_length + 1));
  window(index, out.data());
  if (options_.fim) {
    NumpyRandomState rng(fim_sample_seed(options_.seed, index));
    options_.fim->apply(out, rng);
  }
}

FieldSpecs gpt_fields(std::int64_t seq_length) {
  return {{"tokens", DType::i32, {seq_length}}, {"labels", DType::i32, {seq_length}},
          {"loss_mask", DType::f32, {seq_length}}};
}

FieldSpecs gpt_fields(const GptDatasetOptions& options) {
  FieldSpecs f = gpt_fields(options.seq_length);
  if (options.reset_position_ids) f.push_back({"position_ids", DType::i32, {options.seq_length}});
  if (options.reset_attention_mask) f.push_back({"document_start", DType::i32, {options.seq_length}});
  return f;
}

void document_starts(const std::int32_t* tokens, std::int64_t n, std::int32_t eod, std::int32_t* first) {
  std::int32_t start = 0;
  for (std::int64_t t = 0; t < n; ++t) {
    first[t] = start;
    if (tokens[t] == eod) start = static_cast<std::int32_t>(t + 1);
  }
}

void GptDataset::sample(std::int64_t index, const SampleView& out) const {
  const auto tokens = out.get<std::int32_t>("tokens"), labels = out.get<std::int32_t>("labels");
  const auto mask = out.get<float>("loss_mask");
  const auto T = static_cast<std::size_t>(options_.seq_length);
  if (tokens.size() != T || labels.size() != T || mask.size() != T)
    throw ShapeError(fmt::format("GPT sample fields hold {}, {} and {} values, the dataset's samples {}", tokens.size(),
                                 labels.size(), mask.size(), T));
  sample(index, tokens.data(), labels.data(), mask.data());
  if (!options_.reset_position_ids && !options_.reset_attention_mask) return;
  thread_local std::vector<std::int32_t> first;
  first.resize(T);
  document_starts(tokens.data(), options_.seq_length, options_.eod_token, first.data());
  if (options_.reset_attention_mask) {
    const auto starts = out.get<std::int32_t>("document_start");
    if (starts.size() != T)
      throw ShapeError(fmt::format("GPT field document_start holds {} values, the dataset's samples {}", starts.size(), T));
    std::copy(first.begin(), first.end(), starts.begin());
  }
  if (options_.reset_position_ids) {
    const auto positions = out.get<std::int32_t>("position_ids");
    if (positions.size() != T)
      throw ShapeError(fmt::format("GPT field position_ids holds {} values, the dataset's samples {}", positions.size(), T));
    for (std::size_t t = 0; t < T; ++t) positions[t] = static_cast<std::int32_t>(t) - first[t];
  }
}

void GptDataset::sample(std::int64_t index, std::int32_t* tokens, std::int32_t* labels, float* loss_mask) const {
  const std::int64_t s = options_.seq_length;
  thread_local std::vector<std::int32_t> w;  // one buffer per loader thread, not one per sample
  sample_window(index, w);
  for (std::int64_t k = 0; k < s; ++k) {
    tokens[k] = w[static_cast<std::size_t>(k)];
    labels[k] = w[static_cast<std::size_t>(k + 1)];
    loss_mask[k] = options_.eod_mask_loss && tokens[k] == options_.eod_token ? 0.0f : 1.0f;
  }
}

std::array<std::unique_ptr<GptDataset>, 3> build_gpt_splits(std::shared_ptr<const TokenDocuments> data,
                                                            const std::string& split,
                                                            const std::array<std::int64_t, 3>& num_samples,
                                                            const GptDatasetOptions& options) {
  if (!data) throw Error("build_gpt_splits: no documents");
  const auto r = parse_document_split(split, data->num_sequences());
  std::array<std::unique_ptr<GptDataset>, 3> out;
  for (int s = 0; s < 3; ++s) {
    if (r[s] == r[s + 1] && num_samples[s] > 0)
      throw ConfigError(fmt::format("{}: split \"{}\" gives the {} split no documents (of {}), but {} samples "
                                    "were asked of it; change the split or ask for 0 {} samples",
                                    data->name(), split, split_name(static_cast<Split>(s)),
                                    data->num_sequences(), num_samples[s], split_name(static_cast<Split>(s))));
    GptDatasetOptions o = options;
    o.num_samples = num_samples[s];
    o.split_name = split_name(static_cast<Split>(s));
    try {
      out[s] = std::make_unique<GptDataset>(data, r[s], r[s + 1], o);
    } catch (const ConfigError& e) {
      // The trainer asks train_iters × global_batch_size training samples and, as Megatron-LM,
      // (train_iters / eval_interval + 1) × eval_iters × global_batch_size validation samples: name the setting.
      throw ConfigError(fmt::format("{} split: {}; lower {}", split_name(static_cast<Split>(s)), e.what(),
                                    s == 0   ? "training.train_iters (× training.global_batch_size samples)"
                                    : s == 1 ? "training.eval_iters ((train_iters / eval_interval + 1) × eval_iters × "
                                               "global_batch_size samples)"
                                             : "the samples asked of the test split"));
    }
  }
  return out;
}

}  // namespace tessera::gpt_indexed
