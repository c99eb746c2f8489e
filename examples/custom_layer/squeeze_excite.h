// Squeeze-and-Excitation (Hu et al. 2018, arXiv 1709.01507): a composite Module. It is built from
// existing layers and differentiable ops, so autograd derives its backward.
//
//   x [N, C, H, W]
//   z = mean_{H,W} x                          [N, C]        squeeze: one number per channel
//   s = sigmoid(W2 relu(W1 z + b1) + b2)      [N, C]        excite: W1 [C/r, C], W2 [C, C/r]
//   y = x * s, s broadcast over H and W       [N, C, H, W]  rescale each channel
#pragma once

#include <algorithm>
#include <memory>

#include <kiln/kiln.h>

class SqueezeExcite : public kiln::nn::Module {
 public:
  SqueezeExcite(int64_t channels, int64_t reduction, kiln::DType dtype = kiln::DType::f32) {
    KILN_CHECK(channels >= 1 && reduction >= 1, "SqueezeExcite: expected channels >= 1 and ",
               "reduction >= 1, got channels ", channels, " and reduction ", reduction);
    const int64_t hidden = std::max<int64_t>(channels / reduction, 1);
    // Registered by name: the parameters are fc1.weight, fc1.bias, fc2.weight, fc2.bias.
    fc1 = register_module("fc1", std::make_shared<kiln::nn::Linear>(channels, hidden, true, dtype));
    fc2 = register_module("fc2", std::make_shared<kiln::nn::Linear>(hidden, channels, true, dtype));
  }

  kiln::Tensor forward(const kiln::Tensor& x) override {
    KILN_CHECK(x.dim() == 4 && x.size(1) == fc1->in_features, "SqueezeExcite: expected input [N, ",
               fc1->in_features, ", H, W], got ", x.shape());
    kiln::Tensor z = x.mean({2, 3});                                   // [N, C]
    kiln::Tensor s = fc2->forward(fc1->forward(z).relu()).sigmoid();   // [N, C]
    return x * s.reshape({x.size(0), x.size(1), 1, 1});                // [N, C, H, W]
  }

  std::shared_ptr<kiln::nn::Linear> fc1, fc2;
};
