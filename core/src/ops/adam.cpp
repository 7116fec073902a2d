#include "op_checks.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::require;
using detail::require_numel;

void adam_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamParams& p, Tensor* param_copy) {
  const char* op = "adam_step";
  require(op, "param", param);
  require(op, "grad", grad);
  require(op, "m", m);
  require(op, "v", v);
  const std::string like = "param " + shape_str(param.shape());
  require_numel(op, "grad", grad, param.numel(), like);
  require_numel(op, "m", m, param.numel(), like);
  require_numel(op, "v", v, param.numel(), like);
  if (param_copy) {
    if (!param_copy->defined() || (param_copy->dtype() != DType::bf16 && param_copy->dtype() != DType::f16))
      throw ShapeError(fmt::format("adam_step: tensor 'param_copy' is {}, expected a bf16 or f16 compute copy",
                                   param_copy->defined() ? param_copy->str() : "undefined"));
    require_numel(op, "param_copy", *param_copy, param.numel(), like);
  }
  if (p.step < 1) throw Error(fmt::format("adam_step: step = {} must be ≥ 1 (it is 1-based)", p.step));
  detail::backend_for(op, {{"param", &param}, {"grad", &grad}, {"m", &m}, {"v", &v}, {"param_copy", param_copy}})
      .adam_step(param, grad, m, v, p, param_copy);
}

}  // namespace tessera::ops
