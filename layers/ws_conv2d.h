// WSConv2d: a Conv2d with Weight Standardization (Qiao et al. 2019, arXiv 1903.10520).
//
//   auto conv = std::make_shared<nn::WSConv2d>(3, 8, 3, nn::Conv2dOptions{.padding = 1});
//
// It is the model of a composite layer: forward() is written with differentiable ops only, so the
// gradient comes for free and there is no backward to write or get wrong.
#pragma once

#include <kiln/layers/conv2d.h>

namespace kiln::nn {

/// Conv2d whose filters are standardized to zero mean and unit variance before each use;
/// parameters, options and repr are Conv2d's.
class WSConv2d : public Conv2d {
 public:
  using Conv2d::Conv2d;  // the same constructor, parameters and repr as Conv2d

  /// conv2d(x, W_hat, bias) with W_hat = (W - mean) / sqrt(var + eps), where mean and the biased
  /// var run over [C/G, k, k] of each output channel.
  Tensor forward(const Tensor& x) override;

  double eps = 1e-5;  ///< added to each filter's variance
};

}  // namespace kiln::nn
