// What every optimizer does around its update kernel: fetch the gradient in the parameter's own
// dtype and layout, update a contiguous buffer, and write back. Internal to optim/.
#pragma once

#include <string>

#include <kiln/core/tensor.h>

namespace kiln::optim {

/// Elements per parallel chunk of an update kernel: fixed, so results never depend on threads.
constexpr int64_t kUpdateGrain = int64_t{1} << 14;

/// One parameter's update in progress: contiguous views of the parameter and its gradient.
class ParamUpdate {
 public:
  /// Checks the gradient of `param` (same shape and dtype) and prepares contiguous views of both;
  /// `who` names the optimizer in errors.
  ParamUpdate(const Tensor& param, const char* who);
  /// False when the parameter has no gradient (the update skips it).
  bool has_grad() const { return grad_.defined(); }
  /// Contiguous: the parameter itself, or a copy that finish() writes back.
  const Tensor& param() const { return work_; }
  /// Contiguous, the parameter's shape and dtype.
  const Tensor& grad() const { return grad_; }
  /// Writes back a copied parameter and records the in-place write (the storage version autograd
  /// checks saved tensors against).
  void finish();

 private:
  Tensor param_, work_, grad_;
};

}  // namespace kiln::optim
