// Elementwise maps and reductions over flat arrays of n floats. Outputs may alias inputs.
// Sums accumulate in double (gradient norms over 10⁸ parameters need it).
#pragma once
#include <cstdint>

namespace tessera::cpu {

void add(const float* a, const float* b, float* out, std::int64_t n);   // out = a + b
void axpy(float alpha, const float* x, float* y, std::int64_t n);       // y += alpha·x
void add_bias(float* y, const float* bias, std::int64_t N, std::int64_t C);  // y[n,:] += bias
void scale(float* x, float s, std::int64_t n);                          // x *= s
void copy(const float* src, float* dst, std::int64_t n);
double sum(const float* x, std::int64_t n);
double sum_squares(const float* x, std::int64_t n);

}  // namespace tessera::cpu
