#include "tessera/nn/parameter.hpp"

#include "tessera/ops.hpp"

namespace tessera {

std::int64_t count_elements(const std::vector<Parameter*>& params) {
  std::int64_t n = 0;
  for (const Parameter* p : params) n += p->value.numel();
  return n;
}

std::vector<Parameter*> trainable_parameters(const std::vector<Parameter*>& params) {
  std::vector<Parameter*> out;
  for (Parameter* p : params)
    if (p->trainable) out.push_back(p);
  return out;
}

void move_parameters(const std::vector<Parameter*>& params, Device device) {
  for (Parameter* p : params) {
    p->value = p->value.to(device);
    p->grad = p->grad.to(device);
  }
}

void make_compute_copies(const std::vector<Parameter*>& params, DType dtype) {
  for (Parameter* p : params) {
    if (dtype == DType::f32 || !p->trainable) {  // a buffer is read as f32 (its module's host step)
      p->compute = Tensor();
      continue;
    }
    p->compute = p->value.new_empty(p->value.shape(), dtype);
    ops::cast(p->value, p->compute);
  }
}

void refresh_compute_copies(const std::vector<Parameter*>& params) {
  for (Parameter* p : params)
    if (p->compute.defined()) ops::cast(p->value, p->compute);
}

}  // namespace tessera
