// Weight Standardization (Qiao et al. 2019, eq. 5-6). For each output channel o, over the
// I = C/G k k weights W[o, :, :, :] it reads:
//
//   mu_o    = 1/I sum_i W[o, i]
//   sigma_o = sqrt(1/I sum_i (W[o, i] - mu_o)^2 + eps)          (biased variance, as the paper)
//   W_hat[o, i] = (W[o, i] - mu_o) / sigma_o
//   y = conv2d(x, W_hat) + b
//
// so each filter has zero mean and unit variance whatever the scale and offset of W. We follow
// the paper's formula with eps = 1e-5. The authors' released code differs slightly: it divides by
// the unbiased standard deviation plus 1e-5, outside the square root; for I >= 9 the two agree to
// within about 1/(2I) relative.
//
// Every step is a differentiable op, so autograd derives the backward through the
// standardization and the convolution.
#include <kiln/layers/ws_conv2d.h>

#include <vector>

namespace kiln::nn {

Tensor WSConv2d::forward(const Tensor& x) {
  const std::vector<int64_t> filter_dims{1, 2, 3};  // [C/G, k, k] of each output channel
  Tensor centered = weight - weight.mean(filter_dims, /*keepdim=*/true);
  Tensor variance = weight.var(filter_dims, /*correction=*/0, /*keepdim=*/true);
  Tensor w_hat = centered * (variance + eps).rsqrt();
  return functional::conv2d(x, w_hat, bias, options.stride, options.padding, options.dilation,
                            options.groups);
}

}  // namespace kiln::nn
