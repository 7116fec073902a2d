#include "tessera/nn/norm_spec.hpp"

#include "tessera/nn/layer_norm.hpp"
#include "tessera/nn/rms_norm.hpp"

namespace tessera {

NormSpec layer_norm_spec() {
  return {"layer_norm",
          [](const std::string& name, std::int64_t hidden, float eps) -> std::unique_ptr<Module> {
            return std::make_unique<LayerNorm>(name, hidden, eps);
          },
          [](std::int64_t hidden, std::int64_t rows) { return LayerNorm::cost(hidden, rows); },
          /*keeps_input=*/true};
}

NormSpec layer_norm_1p_spec() {
  return {"layer_norm_1p",
          [](const std::string& name, std::int64_t hidden, float eps) -> std::unique_ptr<Module> {
            return std::make_unique<LayerNorm>(name, hidden, eps, /*zero_centered_gamma=*/true);
          },
          [](std::int64_t hidden, std::int64_t rows) { return LayerNorm::cost(hidden, rows); },
          /*keeps_input=*/true};
}

NormSpec rms_norm_spec() {
  return {"rms_norm",
          [](const std::string& name, std::int64_t hidden, float eps) -> std::unique_ptr<Module> {
            return std::make_unique<RmsNorm>(name, hidden, eps);
          },
          [](std::int64_t hidden, std::int64_t rows) { return RmsNorm::cost(hidden, rows); },
          /*keeps_input=*/true};
}

}  // namespace tessera
