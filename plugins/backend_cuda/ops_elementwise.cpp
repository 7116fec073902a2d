// Elementwise ops, dropout, reductions and Adam on the GPU (kernels/cuda).
#include <cmath>

#include "cuda_backend.hpp"
#include "tessera/kernels/cuda/adam.hpp"
#include "tessera/kernels/cuda/elementwise.hpp"
#include "tessera/kernels/cuda/llama.hpp"
#include "tessera/kernels/cuda/reduce.hpp"

namespace tessera::cuda {

void CudaBackend::gelu_forward(const Tensor& x, Tensor& y, ops::GeluForm form) {
  cuda::gelu_forward(float_of(x, "gelu_forward"), x.device_raw(), y.device_raw(), x.numel(), form == ops::GeluForm::erf,
                     stream());
}

void CudaBackend::gelu_backward(const Tensor& dy, const Tensor& x, Tensor& dx, ops::GeluForm form) {
  cuda::gelu_backward(float_of(x, "gelu_backward"), dy.device_raw(), x.device_raw(), dx.device_raw(), x.numel(),
                      form == ops::GeluForm::erf, stream());
}

void CudaBackend::squared_relu_forward(const Tensor& x, Tensor& y) {
  cuda::squared_relu_forward(float_of(x, "squared_relu_forward"), x.device_raw(), y.device_raw(), x.numel(), stream());
}

void CudaBackend::squared_relu_backward(const Tensor& dy, const Tensor& x, Tensor& dx) {
  cuda::squared_relu_backward(float_of(x, "squared_relu_backward"), dy.device_raw(), x.device_raw(), dx.device_raw(),
                              x.numel(), stream());
}

void CudaBackend::swiglu_forward(const Tensor& x, Tensor& y, const GatedLinearUnit& g) {
  const std::int64_t F = y.size(-1);
  cuda::swiglu_forward(float_of(x, "swiglu_forward"), x.device_raw(), y.device_raw(), y.numel() / F, F, g, stream());
}

void CudaBackend::swiglu_backward(const Tensor& dy, const Tensor& x, Tensor& dx, const GatedLinearUnit& g) {
  const std::int64_t F = dy.size(-1);
  cuda::swiglu_backward(float_of(x, "swiglu_backward"), dy.device_raw(), x.device_raw(), dx.device_raw(),
                        dy.numel() / F, F, g, stream());
}

void CudaBackend::rope(const ops::RopeShape& s, Tensor& x, bool inverse) {
  cuda::rope(float_of(x, inverse ? "rope_backward" : "rope_forward"), x.device_raw(), s.B, s.T, s.H, s.D, s.row_width,
             s.rotary_dim, s.base, s.scaling_factor, s.interpolation, s.yarn, s.interleaved, s.position_offset,
             inverse, stream());
}

void CudaBackend::tanh_forward(const Tensor& x, Tensor& y) {
  cuda::tanh_forward(float_of(x, "tanh_forward"), x.device_raw(), y.device_raw(), x.numel(), stream());
}

void CudaBackend::tanh_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  cuda::tanh_backward(float_of(y, "tanh_backward"), dy.device_raw(), y.device_raw(), dx.device_raw(), y.numel(),
                      stream());
}

void CudaBackend::sigmoid_forward(const Tensor& x, Tensor& y) {
  cuda::sigmoid_forward(float_of(x, "sigmoid_forward"), x.device_raw(), y.device_raw(), x.numel(), stream());
}

void CudaBackend::sigmoid_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  cuda::sigmoid_backward(float_of(y, "sigmoid_backward"), dy.device_raw(), y.device_raw(), dx.device_raw(), y.numel(),
                         stream());
}

void CudaBackend::dropout(const Tensor& x, float p, std::uint64_t seed, Tensor& y, std::int64_t offset) {
  cuda::dropout(float_of(x, "dropout"), x.device_raw(), y.device_raw(), x.numel(), p, seed, offset, stream());
}

void CudaBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  cuda::add(float_of(a, "add"), a.device_raw(), b.device_raw(), out.device_raw(), a.numel(), stream());
}

void CudaBackend::axpy(float alpha, const Tensor& x, Tensor& y) {
  cuda::axpy(float_of(x, "axpy"), alpha, x.device_raw(), y.device_raw(), x.numel(), stream());
}

void CudaBackend::add_bias(Tensor& y, const Tensor& bias) {
  const std::int64_t C = bias.size(0);
  cuda::add_bias(float_of(y, "add_bias"), y.device_raw(), bias.device_raw(), C == 0 ? 0 : y.numel() / C, C, stream());
}

void CudaBackend::scale(Tensor& x, float s) { cuda::scale(float_of(x, "scale"), x.device_raw(), s, x.numel(), stream()); }

void CudaBackend::scale_rows(const Tensor& x, const Tensor& w, Tensor& out) {
  const std::int64_t N = w.numel();
  cuda::scale_rows(float_of(x, "scale_rows"), x.device_raw(), w.device_data<float>(), out.device_raw(), N,
                   N == 0 ? 0 : x.numel() / N, stream());
}

void CudaBackend::row_dot(const Tensor& a, const Tensor& b, Tensor& out) {
  const std::int64_t N = out.numel();
  cuda::row_dot(float_of(a, "row_dot"), a.device_raw(), b.device_raw(), out.device_data<float>(), N,
                N == 0 ? 0 : a.numel() / N, stream());
}

void CudaBackend::sum(const Tensor& x, Tensor& out, bool accumulate) {
  Workspace ws(reduce_workspace_bytes(x.numel()), stream());
  cuda::sum(float_of(x, "sum"), x.device_raw(), x.numel(), false, out.device_data<double>(), accumulate, ws.get(), stream());
}

void CudaBackend::sum_squares(const Tensor& x, Tensor& out, bool accumulate) {
  Workspace ws(reduce_workspace_bytes(x.numel()), stream());
  cuda::sum(float_of(x, "sum_squares"), x.device_raw(), x.numel(), true, out.device_data<double>(), accumulate, ws.get(),
            stream());
}

void CudaBackend::count_zeros(const Tensor& x, Tensor& out, bool accumulate) {
  Workspace ws(reduce_workspace_bytes(x.numel()), stream());
  cuda::count_zeros(x.device_data<float>(), x.numel(), out.device_data<double>(), accumulate, ws.get(), stream());
}

void CudaBackend::masked_sum(const Tensor& values, const Tensor& mask, Tensor& out, bool accumulate) {
  Workspace ws(reduce_workspace_bytes(values.numel()), stream());
  cuda::masked_sum(values.device_data<float>(), mask.device_data<float>(), values.numel(), out.device_data<double>(),
                   accumulate, ws.get(), stream());
}

void CudaBackend::adam_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const ops::AdamParams& p,
                            Tensor* param_copy) {
  // Bias corrections in double, as the CPU's kernel (kernels/cpu/src/adam.cpp), so both backends
  // run the same f32 arithmetic per element.
  const double bc1 = 1.0 - std::pow(static_cast<double>(p.beta1), static_cast<double>(p.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(p.beta2), static_cast<double>(p.step));
  AdamConstants c{};
  c.step_size = static_cast<float>(p.lr / bc1);
  c.inv_bc2_sqrt = static_cast<float>(1.0 / std::sqrt(bc2));
  c.beta1 = p.beta1;
  c.beta2 = p.beta2;
  c.eps = p.eps;
  c.grad_scale = p.grad_scale;
  c.l2 = p.decoupled ? 0.0f : p.weight_decay;
  c.shrink = p.decoupled ? 1.0f - p.lr * p.weight_decay : 1.0f;
  cuda::adam_step(param.device_data<float>(), grad.device_data<float>(), m.device_data<float>(), v.device_data<float>(),
                  param.numel(), c, param_copy ? param_copy->device_raw() : nullptr,
                  param_copy ? float_of(*param_copy, "adam_step") : Float::bf16, stream());
}

}  // namespace tessera::cuda
