#include "tessera/nn/activation_store.hpp"

#include <unordered_set>

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera {

void ActivationStore::put(const void* owner, std::unique_ptr<EntryBase> entry) {
  auto [it, inserted] = saved_.emplace(owner, std::move(entry));
  if (!inserted) throw Error("ActivationStore: a module saved twice for one microbatch (forward run twice?)");
}

std::unique_ptr<ActivationStore::EntryBase> ActivationStore::remove(const void* owner, const std::type_info& expected) {
  auto it = saved_.find(owner);
  if (it == saved_.end())
    throw Error("ActivationStore: backward found nothing saved (forward not run with training = true?)");
  if (it->second->type() != expected)
    throw Error(fmt::format("ActivationStore: backward takes a {} where forward saved a {}", expected.name(),
                            it->second->type().name()));
  std::unique_ptr<EntryBase> out = std::move(it->second);
  saved_.erase(it);
  return out;
}

std::int64_t ActivationStore::held_elements() const {
  // A tensor saved by two modules (ln1's output is the input of both Q and K/V) is held once.
  std::unordered_set<const void*> seen;
  std::int64_t n = 0;
  for (const auto& [owner, entry] : saved_)
    for (const Tensor& t : entry->tensors())
      if (t.defined() && seen.insert(t.device_raw()).second) n += t.numel();
  return n;
}

std::vector<Tensor> ActivationStore::tensors() const {
  std::vector<Tensor> out;
  for (const auto& [owner, entry] : saved_)
    for (Tensor& t : entry->tensors()) out.push_back(std::move(t));
  return out;
}

}  // namespace tessera
