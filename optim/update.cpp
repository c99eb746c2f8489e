#include <kiln/optim/update.h>

#include <kiln/core/elementwise.h>
#include <kiln/core/views.h>

namespace kiln::optim {

ParamUpdate::ParamUpdate(const Tensor& param, const char* who) : param_(param) {
  Tensor grad = param.grad();
  if (!grad.defined()) return;
  KILN_CHECK(grad.shape() == param.shape(), who, ": the gradient has shape ", grad.shape(),
             ", but its parameter has shape ", param.shape());
  KILN_CHECK(grad.dtype() == param.dtype(), who, ": the gradient is ", dtype_name(grad.dtype()),
             ", but its parameter (shape ", param.shape(), ") is ", dtype_name(param.dtype()));
  grad_ = kernels::contiguous(grad);
  work_ = param.is_contiguous() ? param : kernels::contiguous_copy(param);
}

void ParamUpdate::finish() {
  if (!work_.is_same(param_)) kernels::copy(param_, work_);
  param_.unsafe_impl()->storage->bump_version();
}

}  // namespace kiln::optim
