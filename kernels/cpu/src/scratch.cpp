#include "tessera/kernels/cpu/scratch.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace tessera::cpu {

namespace {

struct Pooled {
  std::unique_ptr<float[]> data;
  std::size_t capacity = 0;
};

// Buffers given back on this thread, kept for the next op. A handful are alive at once (an op's
// inputs and outputs), so a short list is searched linearly.
thread_local std::vector<Pooled> pool;

}  // namespace

ScratchBuffer::ScratchBuffer(std::int64_t floats) {
  const auto want = static_cast<std::size_t>(std::max<std::int64_t>(floats, 1));
  // The smallest pooled buffer that fits; else a new one (the pool keeps the larger ones).
  auto best = pool.end();
  for (auto it = pool.begin(); it != pool.end(); ++it)
    if (it->capacity >= want && (best == pool.end() || it->capacity < best->capacity)) best = it;
  if (best != pool.end()) {
    data_ = std::move(best->data);
    capacity_ = best->capacity;
    pool.erase(best);
    return;
  }
  data_.reset(new float[want]);  // default-initialised: no zeroing pass
  capacity_ = want;
}

ScratchBuffer::~ScratchBuffer() {
  if (!data_) return;
  constexpr std::size_t kKeep = 8;  // more alive at once than any op needs
  if (pool.size() >= kKeep) {
    // Drop the smallest: large buffers are the expensive ones to fault in again.
    auto smallest = std::min_element(pool.begin(), pool.end(),
                                     [](const Pooled& a, const Pooled& b) { return a.capacity < b.capacity; });
    if (smallest->capacity >= capacity_) return;  // this one is the smallest: let it go
    pool.erase(smallest);
  }
  pool.push_back({std::move(data_), capacity_});
}

}  // namespace tessera::cpu
