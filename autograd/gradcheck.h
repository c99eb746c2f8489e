// gradcheck: compares backward's gradients with central differences, in float64.
//
//   auto x = Tensor::randn({3, 4}, DType::f64).requires_grad_();
//   REQUIRE(autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0].tanh(); }, {x}));
#pragma once

#include <functional>
#include <vector>

#include <kiln/core/tensor.h>

namespace kiln::autograd {

/// The step and tolerances of gradcheck(): `gradcheck(fn, {x}, {.atol = 1e-4})`.
struct GradcheckOptions {
  double eps = 1e-6;   ///< central-difference step
  double atol = 1e-5;  ///< |analytical - numerical| <= atol + rtol * |numerical|
  double rtol = 1e-3;  ///< see atol
};

/// For every input that requires grad (each must be f64), checks d(output)/d(input) from backward
/// against (f(x + eps) - f(x - eps)) / (2 eps), element by element. Small outputs are checked
/// through their full Jacobian, large ones through four random projections. Returns true, or
/// throws kiln::Error naming the worst element with both values.
bool gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
               const std::vector<Tensor>& inputs, const GradcheckOptions& options = {});

}  // namespace kiln::autograd
