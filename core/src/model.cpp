#include "tessera/model.hpp"

#include <random>
#include <span>

namespace tessera {

Batch Model::example_batch(std::int64_t micro_batch_size, std::int64_t vocab_size, std::uint64_t seed) const {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int32_t> id(0, static_cast<std::int32_t>(vocab_size - 1));
  Batch batch;
  for (const FieldSpec& f : batch_fields()) {
    if (f.optional) continue;  // what a model reads only if the data has it: an example goes without
    Shape shape{micro_batch_size};
    shape.insert(shape.end(), f.sample_shape.begin(), f.sample_shape.end());
    Tensor t = Tensor::zeros(shape, f.dtype);
    if (f.dtype == DType::i32)
      for (std::int32_t& v : std::span(t.data<std::int32_t>(), static_cast<std::size_t>(t.numel()))) v = id(rng);
    else if (f.dtype == DType::u8)
      for (std::uint8_t& v : std::span(t.data<std::uint8_t>(), static_cast<std::size_t>(t.numel()))) v = 1;
    else if (f.dtype == DType::f32)
      t = Tensor::full(shape, 1.0f);
    batch.set(f.name, t);
  }
  return batch;
}

}  // namespace tessera
