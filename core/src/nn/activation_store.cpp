#include "tessera/nn/activation_store.hpp"

#include <unordered_set>

#include "tessera/error.hpp"

namespace tessera {

void ActivationStore::save(const void* owner, std::vector<Tensor> tensors) {
  auto [it, inserted] = saved_.emplace(owner, std::move(tensors));
  if (!inserted) throw Error("ActivationStore: a module saved twice for one microbatch (forward run twice?)");
}

std::vector<Tensor> ActivationStore::take(const void* owner) {
  auto it = saved_.find(owner);
  if (it == saved_.end())
    throw Error("ActivationStore: backward found nothing saved (forward not run with training = true?)");
  std::vector<Tensor> out = std::move(it->second);
  saved_.erase(it);
  return out;
}

std::int64_t ActivationStore::held_elements() const {
  // A tensor saved by two modules (ln1's output is the input of both Q and K/V) is held once.
  std::unordered_set<const void*> seen;
  std::int64_t n = 0;
  for (const auto& [owner, tensors] : saved_)
    for (const Tensor& t : tensors)
      if (t.defined() && seen.insert(t.device_raw()).second) n += t.numel();
  return n;
}

}  // namespace tessera
