// Per-microbatch storage of what backward needs. A module saves a struct of its own in forward —
// e.g. LayerNorm's `struct Saved { Tensor x, mean, rstd; }` — under its own address, and takes the
// same type back (and so frees it) in backward: fields have names, and taking another type than was
// saved is an error, not a wrong tensor. One store per microbatch in flight lets a pipeline
// schedule hold several microbatches, and lets recompute drop and rebuild a layer's entries.
// held_elements() is what memory tests assert on.
//
// A saved type lists its tensors for that count: `std::vector<Tensor> tensors() const`.
#pragma once
#include <cstdint>
#include <memory>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tessera/tensor.hpp"

namespace tessera {

// The common case: one saved tensor.
struct SavedTensor {
  Tensor x;
  std::vector<Tensor> tensors() const { return {x}; }
};

class ActivationStore {
 public:
  template <typename T>
  void save(const void* owner, T value) {
    put(owner, std::make_unique<Entry<T>>(std::move(value)));
  }
  // Removes and returns what `owner` saved; throws if nothing was saved (backward before forward)
  // or if it saved another type.
  template <typename T>
  T take(const void* owner) {
    std::unique_ptr<EntryBase> e = remove(owner, typeid(T));
    return std::move(static_cast<Entry<T>&>(*e).value);
  }
  bool empty() const { return saved_.empty(); }
  void clear() { saved_.clear(); }
  // Elements held by the saved tensors, each distinct tensor (by its data address) once.
  std::int64_t held_elements() const;
  // Every saved tensor: a module that runs several times per microbatch (GPT's embedding, again for
  // each multi-token prediction depth) saves each run into a store of its own, kept in this one by
  // an entry whose tensors() are these.
  std::vector<Tensor> tensors() const;

 private:
  struct EntryBase {
    virtual ~EntryBase() = default;
    virtual const std::type_info& type() const = 0;
    virtual std::vector<Tensor> tensors() const = 0;
  };
  template <typename T>
  struct Entry final : EntryBase {
    explicit Entry(T v) : value(std::move(v)) {}
    const std::type_info& type() const override { return typeid(T); }
    std::vector<Tensor> tensors() const override { return value.tensors(); }
    T value;
  };
  void put(const void* owner, std::unique_ptr<EntryBase> entry);
  std::unique_ptr<EntryBase> remove(const void* owner, const std::type_info& expected);
  std::unordered_map<const void*, std::unique_ptr<EntryBase>> saved_;
};

}  // namespace tessera
