// Tensor: a contiguous, row-major block of one dtype on one device, with shared storage.
//
// There is no autograd and there are no strides: modules call ops with explicit forward and
// backward (DESIGN.md §2). Views (reshape, rows) share the storage of their source. Memory is
// counted per device so that tests and benchmarks can assert on bytes held, not on times.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tessera/dtype.hpp"
#include "tessera/error.hpp"

namespace tessera {

using Shape = std::vector<std::int64_t>;
std::string shape_str(const Shape& s);
std::int64_t shape_numel(const Shape& s);

// Raw allocation on a device, made and freed by the device's backend (backend.hpp). The CPU one is
// 64-byte aligned and counted in memory_stats().
class Storage {
 public:
  Storage(std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_;
};

// Bytes currently held by tensors on a device (the CPU by default), and the high-water mark since
// the last reset.
struct MemoryStats {
  std::int64_t current_bytes = 0;
  std::int64_t peak_bytes = 0;
};
MemoryStats memory_stats(Device device = Device::cpu());
void reset_peak_memory(Device device = Device::cpu());

class Tensor {
 public:
  Tensor() = default;

  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, float value, Device device = Device::cpu());
  // Copies host values into a new CPU tensor.
  template <typename T>
  static Tensor from(const Shape& shape, const std::vector<T>& values);
  // New tensors on this tensor's device, with its dtype unless given (as PyTorch's new_empty):
  // what modules use so that they compute on whatever device their input is on.
  Tensor new_empty(const Shape& shape) const { return empty(shape, dtype_, device()); }
  Tensor new_empty(const Shape& shape, DType dtype) const { return empty(shape, dtype, device()); }
  Tensor new_zeros(const Shape& shape) const { return zeros(shape, dtype_, device()); }
  Tensor new_zeros(const Shape& shape, DType dtype) const { return zeros(shape, dtype, device()); }

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  std::int64_t dim() const { return static_cast<std::int64_t>(shape_.size()); }
  std::int64_t size(std::int64_t d) const { return shape_.at(d < 0 ? d + dim() : d); }
  std::int64_t numel() const { return numel_; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu(); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel_) * dtype_size(dtype_); }

  // Host access: pointers into a CPU tensor's memory. For a tensor on any other device they throw
  // (copy it with to(Device::cpu()) first): only backends read device memory.
  void* raw() const {
    check_host();
    return device_raw();
  }
  template <typename T>
  T* data() const {
    check_dtype(dtype_of<T>());
    return static_cast<T*>(raw());
  }
  // Device access, for backends and communicators only: the address in the device's own memory.
  void* device_raw() const { return static_cast<char*>(storage_->data()) + offset_; }
  template <typename T>
  T* device_data() const {
    check_dtype(dtype_of<T>());
    return static_cast<T*>(device_raw());
  }
  // Whether two tensors start at the same address of the same storage (aliasing checks, identity).
  bool same_memory(const Tensor& other) const {
    return storage_ == other.storage_ && offset_ == other.offset_;
  }

  // Same storage, new shape with the same number of elements (one -1 allowed).
  Tensor reshape(Shape shape) const;
  // Rows [begin, end) of dimension 0, sharing storage.
  Tensor rows(std::int64_t begin, std::int64_t end) const;
  // A fresh copy (same device).
  Tensor clone() const;
  // A copy on `device` (this tensor itself when it is already there). Host↔device copies are
  // counted by the device's backend.
  Tensor to(Device device) const;
  void zero_();
  void fill_(float value);
  // Element i as a double (any dtype), for tests and logging; slow (a device tensor is copied).
  double item(std::int64_t i = 0) const;
  // The elements on the host (a device tensor is copied).
  template <typename T>
  std::vector<T> to_vector() const {
    check_dtype(dtype_of<T>());
    std::vector<T> out(static_cast<std::size_t>(numel_));
    copy_to_host(out.data());
    return out;
  }
  // Copies nbytes() into host memory, from any device.
  void copy_to_host(void* dst) const;
  // Copies into dst (same dtype and element count) on another device: host→device, device→host, or
  // between two devices through the host. The transfer behind to() and a cross-device ops::copy.
  void transfer_to(Tensor& dst) const;
  std::string str() const;  // "f32[4, 64]" style description

 private:
  void check_dtype(DType expected) const;
  void check_host() const;
  std::shared_ptr<Storage> storage_;
  std::size_t offset_ = 0;  // bytes
  Shape shape_;
  std::int64_t numel_ = 0;
  DType dtype_ = DType::f32;
};

template <typename T>
Tensor Tensor::from(const Shape& shape, const std::vector<T>& values) {
  Tensor t = empty(shape, dtype_of<T>());
  if (static_cast<std::int64_t>(values.size()) != t.numel())
    throw ShapeError(fmt::format("Tensor::from: {} values for shape {} ({} elements)", values.size(),
                                 shape_str(shape), t.numel()));
  T* p = t.data<T>();
  for (std::size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  return t;
}

}  // namespace tessera
