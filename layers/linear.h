// Linear (fully connected) layer: y = x W^T + b over the last dim of x.
//
//   auto fc = std::make_shared<nn::Linear>(8, 10);      // weight [10, 8], bias [10]
//   Tensor y = fc->forward(x);                          // x [*, 8] -> y [*, 10]
#pragma once

#include <cstdint>
#include <string>

#include <kiln/core/generator.h>
#include <kiln/core/tensor.h>
#include <kiln/layers/module.h>

namespace kiln::kernels {

/// x [M, in], weight [out, in], bias [out] (or undefined), all contiguous, one floating dtype.
/// Returns y [M, out] = x W^T + b.
Tensor linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias);

/// What linear_backward() returns.
struct LinearGrads {
  Tensor grad_x;       ///< [M, in]
  Tensor grad_weight;  ///< [out, in]
  Tensor grad_bias;    ///< [out]
};
/// grad_y [M, out] -> the gradients asked for by the flags (the others stay undefined).
LinearGrads linear_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                            bool need_x, bool need_weight, bool need_bias);

}  // namespace kiln::kernels

namespace kiln::nn {

namespace functional {
/// y = x W^T + b for x [*, in], weight [out, in], bias [out] or undefined; y is [*, out].
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
}  // namespace functional

/// torch.nn.Linear: y = x W^T + b over the last dim, `nn::Linear(8, 10)`.
class Linear : public Module {
 public:
  /// weight [out_features, in_features] and bias [out_features], initialized as PyTorch does
  /// from the default generator (see reset_parameters).
  Linear(int64_t in_features, int64_t out_features, bool bias = true, DType dtype = DType::f32);

  /// x [*, in_features] -> [*, out_features].
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  /// PyTorch's default init: W ~ U(-b, b) by kaiming_uniform_ with a = sqrt(5), which gives
  /// b = 1 / sqrt(in_features), and bias ~ U(-b, b) with the same b.
  void reset_parameters(Generator* gen = nullptr);

  const int64_t in_features;   ///< the size of x's last dim
  const int64_t out_features;  ///< the size of y's last dim
  Tensor weight;  ///< [out_features, in_features]
  Tensor bias;    ///< [out_features]; undefined when constructed with bias = false
};

}  // namespace kiln::nn
