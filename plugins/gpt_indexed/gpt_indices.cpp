#include "gpt_indices.hpp"

#include <algorithm>
#include <limits>
#include <string>
#include <numeric>

#include "tessera/data/numpy_random.hpp"
#include "tessera/error.hpp"

namespace tessera::gpt_indexed {

namespace {

using i128 = __int128;

// Megatron's _num_epochs loop in closed form: the smallest E >= 1 with (E·T − 1) // S >= N, i.e.
// E·T − 1 >= N·S, i.e. E = max(1, ceil((N·S + 1) / T)). In 128 bits: N·S + 1 cannot overflow there.
i128 num_epochs_wide(std::int64_t tokens_per_epoch, std::int64_t seq_length, std::int64_t num_samples) {
  const i128 need = static_cast<i128>(num_samples) * seq_length + 1;
  const i128 e = (need + tokens_per_epoch - 1) / tokens_per_epoch;
  return e < 1 ? 1 : e;
}

std::string gib(double bytes) { return fmt::format("{:.3g} GiB", bytes / (1024.0 * 1024 * 1024)); }

}  // namespace

std::int64_t gpt_num_epochs(std::int64_t tokens_per_epoch, std::int64_t seq_length, std::int64_t num_samples) {
  if (tokens_per_epoch < 1 || seq_length < 1 || num_samples < 0)
    throw Error(fmt::format("GPT dataset: cannot count epochs for {} tokens per epoch, seq_length {}, {} samples",
                            tokens_per_epoch, seq_length, num_samples));
  const i128 e = num_epochs_wide(tokens_per_epoch, seq_length, num_samples);
  if (e > std::numeric_limits<std::int64_t>::max())
    throw ConfigError(fmt::format("GPT dataset: {} samples of {} tokens need more than 2^63 epochs of {} tokens",
                                  num_samples, seq_length, tokens_per_epoch));
  return static_cast<std::int64_t>(e);
}

namespace {

// Megatron's _build_doc_idx for one block of epochs: tile, then shuffle with the shared generator.
void append_shuffled_epochs(std::vector<std::int32_t>& out, std::int64_t doc_begin, std::int64_t doc_end,
                            std::int64_t epochs, NumpyRandomState& rng) {
  const std::size_t start = out.size();
  for (std::int64_t e = 0; e < epochs; ++e)
    for (std::int64_t d = doc_begin; d < doc_end; ++d) out.push_back(static_cast<std::int32_t>(d));
  rng.shuffle(std::span<std::int32_t>(out.data() + start, out.size() - start));
}

// helpers.cpp build_sample_idx, with int64 entries (Megatron's int32 overflows past 2^31 tokens).
std::vector<std::int64_t> build_sample_idx(std::span<const std::int32_t> sizes, const std::vector<std::int32_t>& doc_idx,
                                           std::int64_t seq_length, std::int64_t num_epochs,
                                           std::int64_t tokens_per_epoch) {
  const std::int64_t num_samples = (num_epochs * tokens_per_epoch - 1) / seq_length;
  std::vector<std::int64_t> idx(static_cast<std::size_t>(2 * (num_samples + 1)));
  std::int64_t doc_pos = 0, doc_offset = 0;
  idx[0] = 0;
  idx[1] = 0;
  for (std::int64_t s = 1; s <= num_samples; ++s) {
    std::int64_t remaining = seq_length + 1;
    while (remaining != 0) {
      const std::int64_t doc_length = sizes[static_cast<std::size_t>(doc_idx[static_cast<std::size_t>(doc_pos)])] - doc_offset;
      remaining -= doc_length;
      if (remaining <= 0) {
        doc_offset += remaining + doc_length - 1;  // back up one: the next sample starts on our last token
        remaining = 0;
      } else {
        ++doc_pos;
        doc_offset = 0;
      }
    }
    idx[static_cast<std::size_t>(2 * s)] = doc_pos;
    idx[static_cast<std::size_t>(2 * s + 1)] = doc_offset;
  }
  return idx;
}

std::vector<std::int64_t> build_shuffle_idx(std::int64_t num_samples, std::int64_t total, NumpyRandomState& rng) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(total));
  std::iota(idx.begin(), idx.end(), std::int64_t{0});
  rng.shuffle(std::span<std::int64_t>(idx.data(), static_cast<std::size_t>(num_samples)));
  if (num_samples != total)
    rng.shuffle(std::span<std::int64_t>(idx.data() + num_samples, static_cast<std::size_t>(total - num_samples)));
  return idx;
}

}  // namespace

GptIndexPlan plan_gpt_indices(std::span<const std::int32_t> sizes, std::int64_t doc_begin, std::int64_t doc_end,
                              std::int64_t num_samples, std::int64_t seq_length) {
  if (seq_length < 1) throw Error(fmt::format("GPT dataset: seq_length must be >= 1, got {}", seq_length));
  if (num_samples < 0) throw Error(fmt::format("GPT dataset: negative number of samples {}", num_samples));
  if (doc_begin < 0 || doc_end < doc_begin || doc_end > static_cast<std::int64_t>(sizes.size()))
    throw Error(fmt::format("GPT dataset: document range [{}, {}) outside [0, {})", doc_begin, doc_end, sizes.size()));
  // doc_idx holds sequence ids as int32, as Megatron's does.
  if (doc_end - 1 > std::numeric_limits<std::int32_t>::max())
    throw Error(fmt::format("GPT dataset: document range [{}, {}) has ids past int32", doc_begin, doc_end));
  GptIndexPlan r;
  r.documents = doc_end - doc_begin;
  for (std::int64_t d = doc_begin; d < doc_end; ++d) r.tokens_per_epoch += sizes[static_cast<std::size_t>(d)];
  // A split asked for no sample gets its one epoch, as in Megatron-LM, even of one token. Samples
  // need two tokens (an input and its label; Megatron fails an assertion on one, and its epoch loop
  // never ends on none).
  if (r.tokens_per_epoch < (num_samples > 0 ? 2 : 1))
    throw Error(fmt::format("GPT dataset: documents [{}, {}) hold {} token(s); at least 2 are needed to make a sample",
                            doc_begin, doc_end, r.tokens_per_epoch));
  // Size the three arrays before building anything: a huge sample count must be a clear error, not
  // an endless epoch loop, an int64 overflow or a bad_alloc after minutes.
  const i128 epochs = num_epochs_wide(r.tokens_per_epoch, seq_length, num_samples);  // < 2^126
  {
    const i128 total_samples = (epochs * r.tokens_per_epoch - 1) / seq_length;          // epochs·T < 2^127
    // In double: epochs × documents may pass even 128 bits; only the comparison matters.
    const double entries = static_cast<double>(epochs) * static_cast<double>(doc_end - doc_begin);
    const double bytes = 4.0 * entries + 24.0 * static_cast<double>(total_samples) + 16.0;
    // The bound also keeps epochs · tokens_per_epoch (the token positions below) within int64.
    if (bytes > static_cast<double>(kMaxGptIndexBytes) ||
        epochs * r.tokens_per_epoch > static_cast<i128>(std::numeric_limits<std::int64_t>::max()))
      throw ConfigError(fmt::format(
          "GPT dataset: {} samples of {} tokens need {} epoch(s) over documents [{}, {}) ({} tokens per epoch); "
          "their indices would take {} ({} document entries, {} samples), more than the {} limit",
          num_samples, seq_length, epochs > std::numeric_limits<std::int64_t>::max() ? std::string("> 2^63")
                                                                                     : std::to_string(static_cast<std::int64_t>(epochs)),
          doc_begin, doc_end, r.tokens_per_epoch, gib(bytes), fmt::format("{:.3g}", entries),
          fmt::format("{:.3g}", static_cast<double>(total_samples)), gib(static_cast<double>(kMaxGptIndexBytes))));
  }
  r.num_epochs = static_cast<std::int64_t>(epochs);  // the bound above keeps epochs · tokens_per_epoch in int64
  r.total_samples = (r.num_epochs * r.tokens_per_epoch - 1) / seq_length;
  if (r.num_epochs > 1) {
    r.from_first_epochs = ((r.num_epochs - 1) * r.tokens_per_epoch - 1) / seq_length;
    const std::int64_t last_epoch_samples = num_samples - r.from_first_epochs;
    const std::int64_t per_epoch = (r.tokens_per_epoch - 1) / seq_length;
    // int(0.80 * n) in Python: a double product truncated.
    r.separate_last_epoch = last_epoch_samples < static_cast<std::int64_t>(0.80 * static_cast<double>(per_epoch));
  }
  return r;
}

GptIndices build_gpt_indices(std::span<const std::int32_t> sizes, std::int64_t doc_begin, std::int64_t doc_end,
                             std::int64_t num_samples, std::int64_t seq_length, std::uint32_t seed) {
  const GptIndexPlan plan = plan_gpt_indices(sizes, doc_begin, doc_end, num_samples, seq_length);
  GptIndices r;
  r.tokens_per_epoch = plan.tokens_per_epoch;
  r.num_epochs = plan.num_epochs;
  r.separate_last_epoch = plan.separate_last_epoch;
  const std::int64_t from_first_epochs = plan.from_first_epochs;
  NumpyRandomState rng(seed);
  r.doc_idx.reserve(static_cast<std::size_t>(r.num_epochs * (doc_end - doc_begin)));
  if (r.separate_last_epoch) {
    append_shuffled_epochs(r.doc_idx, doc_begin, doc_end, r.num_epochs - 1, rng);
    append_shuffled_epochs(r.doc_idx, doc_begin, doc_end, 1, rng);
  } else {
    append_shuffled_epochs(r.doc_idx, doc_begin, doc_end, r.num_epochs, rng);
  }
  r.sample_idx = build_sample_idx(sizes, r.doc_idx, seq_length, r.num_epochs, r.tokens_per_epoch);
  const std::int64_t total = static_cast<std::int64_t>(r.sample_idx.size() / 2) - 1;
  r.shuffle_idx = build_shuffle_idx(r.separate_last_epoch ? from_first_epochs : total, total, rng);
  return r;
}

std::string check_gpt_indices(const GptIndices& x, const GptIndexPlan& plan, std::span<const std::int32_t> sizes,
                              std::int64_t doc_begin, std::int64_t doc_end) {
  const auto docs = static_cast<std::int64_t>(x.doc_idx.size());
  if (docs != plan.num_epochs * plan.documents)
    return fmt::format("doc_idx holds {} entries, {} epochs of {} documents are {}", docs, plan.num_epochs,
                       plan.documents, plan.num_epochs * plan.documents);
  for (std::size_t i = 0; i < x.doc_idx.size(); ++i)
    if (x.doc_idx[i] < doc_begin || x.doc_idx[i] >= doc_end)
      return fmt::format("doc_idx[{}] = {} is outside documents [{}, {})", i, x.doc_idx[i], doc_begin, doc_end);
  if (static_cast<std::int64_t>(x.sample_idx.size()) != 2 * (plan.total_samples + 1))
    return fmt::format("sample_idx holds {} rows, not {}", x.sample_idx.size() / 2, plan.total_samples + 1);
  std::int64_t prev = 0;
  for (std::int64_t s = 0; s <= plan.total_samples; ++s) {
    const std::int64_t pos = x.sample_idx[static_cast<std::size_t>(2 * s)];
    const std::int64_t off = x.sample_idx[static_cast<std::size_t>(2 * s + 1)];
    if (pos < prev || pos >= docs || off < 0 ||
        off >= std::max<std::int64_t>(1, sizes[static_cast<std::size_t>(x.doc_idx[static_cast<std::size_t>(pos)])]) ||
        (s == 0 && (pos != 0 || off != 0)))
      return fmt::format("sample_idx row {} = ({}, {}) is not a position in doc_idx", s, pos, off);
    prev = pos;
  }
  if (static_cast<std::int64_t>(x.shuffle_idx.size()) != plan.total_samples)
    return fmt::format("shuffle_idx holds {} entries, not {}", x.shuffle_idx.size(), plan.total_samples);
  std::vector<bool> seen(x.shuffle_idx.size());
  for (std::size_t i = 0; i < x.shuffle_idx.size(); ++i) {
    const std::int64_t v = x.shuffle_idx[i];
    if (v < 0 || v >= plan.total_samples || seen[static_cast<std::size_t>(v)])
      return fmt::format("shuffle_idx is not a permutation (entry {} = {})", i, v);
    seen[static_cast<std::size_t>(v)] = true;
  }
  return "";
}

}  // namespace tessera::gpt_indexed
