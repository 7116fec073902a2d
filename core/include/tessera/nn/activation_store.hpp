// Per-microbatch storage of what backward needs. A module saves tensors under its own address in
// forward and takes them back (and so frees them) in backward. One store per microbatch in flight
// lets a pipeline schedule hold several microbatches, and lets recompute drop and rebuild a layer's
// entries. held_elements() is what memory tests assert on.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <unordered_map>
#include <vector>

#include "tessera/tensor.hpp"

namespace tessera {

class ActivationStore {
 public:
  void save(const void* owner, std::vector<Tensor> tensors);
  // Removes and returns what `owner` saved; throws if nothing was saved (backward before forward).
  std::vector<Tensor> take(const void* owner);
  bool empty() const { return saved_.empty(); }
  void clear() { saved_.clear(); }
  // Elements held by the saved tensors, each distinct tensor (by its data address) once.
  std::int64_t held_elements() const;

 private:
  std::unordered_map<const void*, std::vector<Tensor>> saved_;
};

}  // namespace tessera
