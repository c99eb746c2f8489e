// Activations (elementwise nonlinearities) and Flatten.
//
//   auto act = std::make_shared<nn::GELU>();             // exact erf form, as PyTorch's default
//   Tensor y = nn::functional::leaky_relu(x, 0.2);
#pragma once

#include <cstdint>
#include <string>

#include <kiln/core/tensor.h>
#include <kiln/layers/module.h>

namespace kiln::nn {
/// GELU's two forms: the exact x Phi(x), or PyTorch's approximate='tanh'.
enum class GeluApproximation { none, tanh };
}  // namespace kiln::nn

namespace kiln::kernels {

// Each kernel takes tensors of one floating dtype and returns a new contiguous tensor of x's shape.
/// y = x if x > 0, else negative_slope x.
Tensor leaky_relu_forward(const Tensor& x, double negative_slope);
/// grad_x = grad_y if x > 0, else negative_slope grad_y.
Tensor leaky_relu_backward(const Tensor& grad_y, const Tensor& x, double negative_slope);
/// y = x Phi(x), or its tanh approximation.
Tensor gelu_forward(const Tensor& x, nn::GeluApproximation approximate);
/// grad_x = grad_y d(x Phi(x))/dx, for the same approximation as forward.
Tensor gelu_backward(const Tensor& grad_y, const Tensor& x, nn::GeluApproximation approximate);
/// y = x sigmoid(x).
Tensor silu_forward(const Tensor& x);
/// grad_x = grad_y sigmoid(x) (1 + x (1 - sigmoid(x))).
Tensor silu_backward(const Tensor& grad_y, const Tensor& x);

}  // namespace kiln::kernels

namespace kiln::nn {

namespace functional {
/// max(x, 0)
Tensor relu(const Tensor& x);
/// x if x > 0, else negative_slope * x
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
/// x Phi(x) with Phi the standard normal CDF (or its tanh approximation)
Tensor gelu(const Tensor& x, GeluApproximation approximate = GeluApproximation::none);
/// x sigmoid(x)
Tensor silu(const Tensor& x);
}  // namespace functional

/// max(x, 0), as torch.nn.ReLU.
class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

/// x if x > 0, else negative_slope x, as torch.nn.LeakyReLU.
class LeakyReLU : public Module {
 public:
  /// `nn::LeakyReLU(0.2)`.
  explicit LeakyReLU(double negative_slope = 0.01) : negative_slope(negative_slope) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  const double negative_slope;  ///< the slope for x < 0
};

/// x Phi(x), as torch.nn.GELU.
class GELU : public Module {
 public:
  /// `nn::GELU(nn::GeluApproximation::tanh)` for PyTorch's approximate='tanh'.
  explicit GELU(GeluApproximation approximate = GeluApproximation::none) : approximate(approximate) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  const GeluApproximation approximate;  ///< the exact form or the tanh approximation
};

/// x sigmoid(x), as torch.nn.SiLU (also called Swish).
class SiLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

/// 1 / (1 + e^-x), as torch.nn.Sigmoid.
class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

/// tanh(x), as torch.nn.Tanh.
class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

/// Returns its input unchanged (a placeholder, as torch.nn.Identity).
class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

/// Merges dims start_dim..end_dim into one: [N, C, H, W] -> [N, C*H*W] with the defaults.
class Flatten : public Module {
 public:
  /// Dims start_dim..end_dim (negative counts from the end) become one.
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1)
      : start_dim(start_dim), end_dim(end_dim) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  const int64_t start_dim;  ///< the first dim merged
  const int64_t end_dim;    ///< the last dim merged
};

}  // namespace kiln::nn
