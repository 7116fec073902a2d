// Scratch f32 buffers for the CPU backend's conversions (bf16/f16 tensors seen as f32, f32
// accumulators of bf16 GEMMs), taken from a per-thread pool and given back when they go. A fresh
// allocation per op would page-fault and zero tens of megabytes per call (the LM head's chunk of
// logits is 8M floats); pooled buffers keep their pages. Contents are not initialised.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace tessera::cpu {

class ScratchBuffer {
 public:
  explicit ScratchBuffer(std::int64_t floats);
  ~ScratchBuffer();
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  float* data() const { return data_.get(); }

 private:
  std::unique_ptr<float[]> data_;
  std::size_t capacity_ = 0;
};

}  // namespace tessera::cpu
