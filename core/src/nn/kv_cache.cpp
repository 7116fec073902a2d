#include "tessera/nn/kv_cache.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/ops.hpp"

namespace tessera {

KvCache::KvCache(std::int64_t batch, std::int64_t capacity)
    : batch_(batch), capacity_(capacity), lengths_(static_cast<std::size_t>(std::max<std::int64_t>(batch, 0)), 0) {
  if (batch < 1 || capacity < 1)
    throw Error(fmt::format("KvCache: batch {} and capacity {} must be ≥ 1", batch, capacity));
}

Tensor& KvCache::buffer(const void* layer, std::int64_t width, const Tensor& like) {
  Tensor& b = buffers_[layer];
  if (!b.defined()) {
    b = like.new_zeros({batch_, capacity_, width});
    ++allocations_;
  }
  TESSERA_CHECK_SHAPE(b.size(2) == width && b.dtype() == like.dtype(),
                      "KvCache: a layer's buffer is {}, asked for width {} of {}", b.str(), width,
                      dtype_name(like.dtype()));
  return b;
}

std::int64_t KvCache::step_keys() const { return *std::max_element(lengths_.begin(), lengths_.end()) + 1; }

const Tensor& KvCache::step_positions(Device device) {
  if (!positions_.defined()) {
    Tensor p = Tensor::empty({batch_}, DType::i32);
    for (std::int64_t b = 0; b < batch_; ++b) p.data<std::int32_t>()[b] = static_cast<std::int32_t>(length(b));
    positions_ = p.to(device);
  }
  return positions_;
}

const Tensor& KvCache::step_key_mask(Device device) {
  if (!key_mask_.defined()) {
    const std::int64_t Tk = step_keys();
    Tensor m = Tensor::zeros({batch_, Tk}, DType::u8);
    for (std::int64_t b = 0; b < batch_; ++b)
      std::fill_n(m.data<std::uint8_t>() + b * Tk, length(b) + 1, std::uint8_t{1});
    key_mask_ = m.to(device);
  }
  return key_mask_;
}

void KvCache::finish_prefill(const std::vector<std::int64_t>& prompt_lengths) {
  TESSERA_CHECK_SHAPE(static_cast<std::int64_t>(prompt_lengths.size()) == batch_,
                      "KvCache: {} prompt lengths for a batch of {}", prompt_lengths.size(), batch_);
  lengths_ = prompt_lengths;
  // The prefill wrote slots 0 … T − 1 of every row (padding included), T its longest prompt.
  high_water_ = std::max(high_water_, *std::max_element(lengths_.begin(), lengths_.end()));
  prefilling_ = false;
  positions_ = key_mask_ = Tensor();
}

void KvCache::select_rows(const std::vector<std::int64_t>& rows) {
  if (rows.empty()) throw Error("KvCache::select_rows: no rows");
  if (prefilling_) throw Error("KvCache::select_rows: the cache holds no prompt yet (before the prefill)");
  for (std::size_t i = 0; i < rows.size(); ++i)
    if (rows[i] < 0 || rows[i] >= batch_)
      throw Error(fmt::format("KvCache::select_rows: rows[{}] = {} is not a row of a batch of {}", i, rows[i], batch_));
  const auto R = static_cast<std::int64_t>(rows.size());
  for (auto& [layer, b] : buffers_) {
    // Beam search selects every step with the same row count: a layer's previous buffer becomes the
    // next layer's destination (and the last one the next call's first), instead of a fresh
    // [R, capacity, W] to allocate and zero per layer per call. One spare in all, so the cache's
    // peak is its buffers plus one layer's, as with a new buffer per layer.
    const std::int64_t W = b.size(2);
    Tensor& into = spare_;
    const bool fresh = !into.defined() || into.size(0) != R || into.size(2) != W || into.dtype() != b.dtype() ||
                       into.device() != b.device();
    if (fresh) {
      into = b.new_zeros({R, capacity_, W});
      ++allocations_;
    }
    // Each row's used slots copied; its slots after them zeroed up to the most any row ever held
    // (beyond that nothing was ever written: zero since allocation). So a masked key or value is
    // always 0, never a stale value of another row (which could be non-finite: 0 · inf is NaN).
    Tensor flat = into.reshape({R * capacity_, W});
    for (std::int64_t i = 0; i < R; ++i) {
      const std::int64_t r = rows[static_cast<std::size_t>(i)], n = length(r);
      ops::copy_2d(b, r * capacity_ * W, W, into, i * capacity_ * W, W, n, W);
      if (!fresh && n < high_water_) flat.rows(i * capacity_ + n, i * capacity_ + high_water_).zero_();
    }
    std::swap(b, into);
    if (R != batch_) into = Tensor();  // a spare only for the same row count (not kept idle)
  }
  std::vector<std::int64_t> lengths;
  for (std::int64_t r : rows) lengths.push_back(lengths_[static_cast<std::size_t>(r)]);
  lengths_ = std::move(lengths);
  batch_ = R;
  positions_ = key_mask_ = Tensor();
}

void KvCache::finish_step() {
  for (std::int64_t& l : lengths_) high_water_ = std::max(high_water_, ++l);
  positions_ = key_mask_ = Tensor();
}

}  // namespace tessera
