// Gradient clipping, as torch.nn.utils.clip_grad_norm_ and clip_grad_value_.
//
//   total = (sum over every gradient element g of |g|^p)^(1/p)     (p = inf: max |g|)
//   when total > max_norm: every gradient *= max_norm / (total + 1e-6)
//
// The sums run in double, in fixed chunks combined in order, so the norm is the same at any
// thread count. Parameters without a gradient are skipped.
#pragma once

#include <cmath>
#include <vector>

#include <kiln/core/tensor.h>

namespace kiln::optim {

/// Scales the gradients so that their joint p-norm is at most max_norm, and returns the norm they
/// had before. A negative or NaN max_norm throws kiln::Error (PyTorch would flip the gradients'
/// signs). With error_if_nonfinite, a NaN or infinite norm throws kiln::Error (and nothing is
/// scaled); otherwise the gradients are scaled by the resulting NaN, as PyTorch does.
double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);

/// Clamps every gradient element into [-clip_value, clip_value].
void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value);

}  // namespace kiln::optim
