// Transformer MLP: fc1 (C → ffn) → GELU → fc2 (ffn → C).
#pragma once
#include "tessera/nn/linear.hpp"

namespace tessera {

class Mlp : public Module {
 public:
  Mlp(const std::string& name, std::int64_t hidden, std::int64_t ffn_hidden, float init_std,
      float output_init_std, std::uint64_t seed);
  void collect_parameters(std::vector<Parameter*>& out) override;
  Tensor forward(StepContext& ctx, const Tensor& x) override;
  Tensor backward(StepContext& ctx, const Tensor& dy) override;

 private:
  Linear fc1_, fc2_;
};

}  // namespace tessera
