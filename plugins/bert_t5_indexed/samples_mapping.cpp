#include "samples_mapping.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "tessera/error.hpp"

namespace tessera::bert_t5_indexed {

DocumentCounts count_documents(std::span<const std::int64_t> doc_idx, std::span<const std::int32_t> sizes,
                               int min_num_sent) {
  DocumentCounts c;
  c.documents = doc_idx.empty() ? 0 : static_cast<std::int64_t>(doc_idx.size()) - 1;
  for (std::int64_t d = 0; d < c.documents; ++d) {
    const std::int64_t first = doc_idx[d], last = doc_idx[d + 1], n = last - first;
    if (n == 0) {
      ++c.empty;
    } else if (n < min_num_sent) {
      ++c.too_few_sentences;
    } else if (n > 1) {
      for (std::int64_t s = first; s < last; ++s)
        if (sizes[s] > kLongSentenceLen) {
          ++c.long_sentence;
          break;
        }
    }
  }
  return c;
}

SamplesMapping::SamplesMapping(std::vector<std::uint32_t> rows) {
  auto v = std::make_shared<std::vector<std::uint32_t>>(std::move(rows));
  data_ = reinterpret_cast<const unsigned char*>(v->data());
  rows_ = static_cast<std::int64_t>(v->size() / 3);
  width_ = 4;
  owner_ = std::move(v);
}

SamplesMapping::SamplesMapping(std::vector<std::uint64_t> rows) {
  auto v = std::make_shared<std::vector<std::uint64_t>>(std::move(rows));
  data_ = reinterpret_cast<const unsigned char*>(v->data());
  rows_ = static_cast<std::int64_t>(v->size() / 3);
  width_ = 8;
  owner_ = std::move(v);
}

SamplesMapping::SamplesMapping(std::shared_ptr<const void> owner, const unsigned char* data, int width,
                               std::int64_t rows)
    : owner_(std::move(owner)), data_(data), width_(width), rows_(rows) {}

std::array<std::int64_t, 3> SamplesMapping::row(std::int64_t i) const {
  std::array<std::int64_t, 3> r{};
  const unsigned char* p = data_ + static_cast<std::size_t>(i) * 3 * static_cast<std::size_t>(width_);
  for (int k = 0; k < 3; ++k) {
    if (width_ == 4) {
      std::uint32_t v;
      std::memcpy(&v, p + 4 * k, 4);  // a mapped file's data need not be aligned
      r[k] = v;
    } else {
      std::uint64_t v;
      std::memcpy(&v, p + 8 * k, 8);
      r[k] = static_cast<std::int64_t>(v);
    }
  }
  return r;
}

bool SamplesMapping::operator==(const SamplesMapping& o) const {
  if (rows_ != o.rows_) return false;
  for (std::int64_t i = 0; i < rows_; ++i)
    if (row(i) != o.row(i)) return false;
  return true;
}

namespace {

// Megatron's get_target_sample_len.
std::int64_t target_length(std::int64_t short_seq_ratio, std::int64_t max_length, std::mt19937& rng) {
  if (short_seq_ratio == 0) return max_length;
  const std::uint64_t r = rng();
  if (r % static_cast<std::uint64_t>(short_seq_ratio) == 0)
    return 2 + static_cast<std::int64_t>(r % static_cast<std::uint64_t>(max_length - 1));
  return max_length;
}

template <typename T>
std::vector<T> build_rows(std::span<const std::int64_t> doc_idx, std::span<const std::int32_t> sizes,
                          const MappingOptions& o) {
  const std::int64_t ratio = o.short_seq_prob > 0 ? static_cast<std::int64_t>(std::round(1.0 / o.short_seq_prob)) : 0;
  const std::int64_t num_docs = static_cast<std::int64_t>(doc_idx.size()) - 1;
  const std::uint64_t max_samples = static_cast<std::uint64_t>(o.max_num_samples);
  // Which documents make samples does not depend on the random draws: find them once.
  std::vector<char> usable(static_cast<std::size_t>(std::max<std::int64_t>(num_docs, 0)));
  for (std::int64_t d = 0; d < num_docs; ++d) {
    const std::int64_t first = doc_idx[d], last = doc_idx[d + 1], n = last - first;
    bool ok = n >= o.min_num_sent && n > 0;
    if (ok && n > 1)
      for (std::int64_t s = first; s < last; ++s)
        if (sizes[s] > kLongSentenceLen) {
          ok = false;
          break;
        }
    usable[d] = ok;
  }

  std::vector<T> rows;
  std::mt19937 rng(o.seed);
  const std::int64_t max_epochs = std::numeric_limits<std::int32_t>::max() - 1;  // Megatron's "no epoch limit"
  for (std::int64_t epoch = 0; epoch < max_epochs; ++epoch) {
    if (rows.size() / 3 >= max_samples) break;
    for (std::int64_t d = 0; d < num_docs; ++d) {
      if (!usable[d]) continue;
      const std::int64_t first = doc_idx[d], last = doc_idx[d + 1];
      std::int64_t start = first, remaining = last - first, length = 0, num_sent = 0;
      std::int64_t target = target_length(ratio, o.max_seq_length, rng);
      for (std::int64_t s = first; s < last; ++s) {
        length += sizes[s];
        ++num_sent;
        --remaining;
        if ((length >= target && remaining > 1 && num_sent >= o.min_num_sent) || remaining == 0) {
          rows.push_back(static_cast<T>(start));
          rows.push_back(static_cast<T>(s + 1));
          rows.push_back(static_cast<T>(target));
          start = s + 1;
          target = target_length(ratio, o.max_seq_length, rng);
          length = 0;
          num_sent = 0;
        }
      }
    }
    if (rows.empty()) break;  // no usable document: every further epoch is empty too
    if (epoch == 0) {
      // Size the whole mapping from the first epoch before building the rest.
      const double per_epoch = static_cast<double>(rows.size() / 3);
      const double epochs = std::ceil(static_cast<double>(max_samples) / per_epoch);
      const double bytes = epochs * per_epoch * 3.0 * sizeof(T);
      if (bytes > static_cast<double>(kMaxMappingBytes))
        throw ConfigError(fmt::format(
            "{} samples need {:.3g} epochs of {:.0f} samples; their mapping would take {:.3g} GiB, more than the "
            "{} GiB limit",
            o.max_num_samples, epochs, per_epoch, bytes / (1024.0 * 1024 * 1024), kMaxMappingBytes >> 30));
    }
  }

  std::mt19937_64 shuffle_rng(static_cast<std::uint64_t>(o.seed) + 1);
  const std::int64_t n = static_cast<std::int64_t>(rows.size() / 3);
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(shuffle_rng() % static_cast<std::uint64_t>(i + 1));
    for (int k = 0; k < 3; ++k) std::swap(rows[static_cast<std::size_t>(3 * i + k)], rows[static_cast<std::size_t>(3 * j + k)]);
  }
  return rows;
}

}  // namespace

SamplesMapping build_samples_mapping(std::span<const std::int64_t> doc_idx, std::span<const std::int32_t> sizes,
                                     const MappingOptions& o) {
  if (o.max_seq_length < 2)
    throw Error(fmt::format("samples mapping: the longest target must be at least 2 tokens, got {}", o.max_seq_length));
  if (doc_idx.size() < 2 || o.max_num_samples <= 0) return SamplesMapping(std::vector<std::uint32_t>{});
  // Megatron's rule: uint32 entries unless the dataset has more sentences than that holds.
  if (sizes.size() > std::numeric_limits<std::uint32_t>::max())
    return SamplesMapping(build_rows<std::uint64_t>(doc_idx, sizes, o));
  return SamplesMapping(build_rows<std::uint32_t>(doc_idx, sizes, o));
}

}  // namespace tessera::bert_t5_indexed
