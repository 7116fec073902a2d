// LayerNorm over the last dim C (TransformerEngine style: forward returns the statistics that
// backward needs).
//   x, y, dy, dx [N,C];  w, b, dw, db [C];  mean, rstd [N]
// y = (x − mean)·rstd·w + b, rstd = 1/√(var + eps), var the biased variance.
// Backward: dx overwritten, dw and db accumulated (+=).
#pragma once
#include <cstdint>

namespace tessera::cpu {

void layer_norm_forward(const float* x, const float* w, const float* b, float eps, float* y,
                        float* mean, float* rstd, std::int64_t N, std::int64_t C);

void layer_norm_backward(const float* dy, const float* x, const float* w, const float* mean,
                         const float* rstd, float* dx, float* dw, float* db, std::int64_t N,
                         std::int64_t C);

}  // namespace tessera::cpu
