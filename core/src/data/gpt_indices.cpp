#include "tessera/data/gpt_indices.hpp"

#include <numeric>

#include "tessera/data/numpy_random.hpp"
#include "tessera/error.hpp"

namespace tessera {

std::int64_t gpt_num_epochs(std::int64_t tokens_per_epoch, std::int64_t seq_length, std::int64_t num_samples) {
  std::int64_t epochs = 0, total = 0;
  while (true) {
    ++epochs;
    total += tokens_per_epoch;
    if ((total - 1) / seq_length >= num_samples) return epochs;
  }
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

GptIndices build_gpt_indices(std::span<const std::int32_t> sizes, std::int64_t doc_begin, std::int64_t doc_end,
                             std::int64_t num_samples, std::int64_t seq_length, std::uint32_t seed) {
  if (seq_length < 1) throw Error(fmt::format("GPT dataset: seq_length must be >= 1, got {}", seq_length));
  if (num_samples < 0) throw Error(fmt::format("GPT dataset: negative number of samples {}", num_samples));
  if (doc_begin < 0 || doc_end < doc_begin || doc_end > static_cast<std::int64_t>(sizes.size()))
    throw Error(fmt::format("GPT dataset: document range [{}, {}) outside [0, {})", doc_begin, doc_end, sizes.size()));
  GptIndices r;
  for (std::int64_t d = doc_begin; d < doc_end; ++d) r.tokens_per_epoch += sizes[static_cast<std::size_t>(d)];
  if (r.tokens_per_epoch < 2)
    throw Error(fmt::format("GPT dataset: documents [{}, {}) hold {} tokens; at least 2 are needed to make a sample",
                            doc_begin, doc_end, r.tokens_per_epoch));
  r.num_epochs = gpt_num_epochs(r.tokens_per_epoch, seq_length, num_samples);
  NumpyRandomState rng(seed);
  std::int64_t from_first_epochs = 0;
  if (r.num_epochs > 1) {
    from_first_epochs = ((r.num_epochs - 1) * r.tokens_per_epoch - 1) / seq_length;
    const std::int64_t last_epoch_samples = num_samples - from_first_epochs;
    const std::int64_t per_epoch = (r.tokens_per_epoch - 1) / seq_length;
    // int(0.80 * n) in Python: a double product truncated.
    r.separate_last_epoch = last_epoch_samples < static_cast<std::int64_t>(0.80 * static_cast<double>(per_epoch));
  }
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

}  // namespace tessera
