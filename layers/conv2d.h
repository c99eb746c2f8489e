// 2-D convolution (cross-correlation, as PyTorch) over x [N, C, H, W], with stride, zero padding,
// dilation and groups, lowered to GEMMs: by im2col in general, and by Winograd for 3x3 layers with
// stride 1 and padding 1: F(2x2, 3x3), or F(4x4, 3x3) for wide layers with many tiles, whose f32
// rounding error is about ten times larger (rms 1.4e-6 to 3.5e-6 of the output's, measured). The
// math and the rule are at the top of conv2d.cpp.
//
//   auto conv = std::make_shared<nn::Conv2d>(3, 8, 3, nn::Conv2dOptions{.padding = 1});
//   Tensor y = conv->forward(x);                        // x [N, 3, H, W] -> y [N, 8, H, W]
//   Tensor z = nn::functional::conv2d(x, w, b, /*stride=*/2, /*padding=*/1);
#pragma once

#include <cstdint>
#include <string>

#include <kiln/core/generator.h>
#include <kiln/core/tensor.h>
#include <kiln/layers/module.h>

namespace kiln::kernels {

/// Stride, padding and dilation apply to both spatial dims.
struct Conv2dParams {
  int64_t stride = 1;    ///< step between output positions
  int64_t padding = 0;   ///< zeros added on each side
  int64_t dilation = 1;  ///< spacing between kernel taps
  int64_t groups = 1;    ///< G: input and output channels split into G independent convolutions
};

/// What conv2d_backward() returns.
struct Conv2dGrads {
  Tensor grad_x;       ///< [N, C, H, W]
  Tensor grad_weight;  ///< [C_out, C/G, KH, KW]
  Tensor grad_bias;    ///< [C_out]
};

/// x [N, C, H, W], weight [C_out, C/G, KH, KW], bias [C_out] (or undefined), one floating dtype.
/// Returns y [N, C_out, OH, OW]. Parallel over fixed output tiles; bit-identical at any thread
/// count. When saved is not null, it receives what conv2d_backward can reuse instead of computing
/// it again (the Winograd transforms of x and of the weights, kept at small sizes), or an
/// undefined tensor.
Tensor conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                      const Conv2dParams& params, Tensor* saved = nullptr);
/// grad_y [N, C_out, OH, OW] -> the gradients asked for by the flags (the others stay undefined).
/// saved is what conv2d_forward gave for the same x, weight and params, or undefined; the result
/// is the same to the bit either way.
Conv2dGrads conv2d_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                            const Conv2dParams& params, bool need_x, bool need_weight,
                            bool need_bias, const Tensor& saved = Tensor());

/// conv2d_forward() as plain loops over every term of the sum, accumulated in double: slow,
/// obviously right, and the oracle the fast kernels are tested against.
Tensor conv2d_forward_reference(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                const Conv2dParams& params);
/// conv2d_backward() as plain loops, in double: the oracle of the fast backward.
Conv2dGrads conv2d_backward_reference(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                                      const Conv2dParams& params, bool need_x, bool need_weight,
                                      bool need_bias);

}  // namespace kiln::kernels

namespace kiln::nn {

namespace functional {
/// y [N, C_out, OH, OW] for x [N, C, H, W], weight [C_out, C/groups, KH, KW] and bias [C_out] or
/// undefined, where OH = (H + 2 padding - dilation (KH - 1) - 1) / stride + 1 (likewise OW).
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              int64_t stride = 1, int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1);
}  // namespace functional

/// Conv2d's options, in PyTorch's argument order.
struct Conv2dOptions {
  int64_t stride = 1;    ///< step between output positions, both dims
  int64_t padding = 0;   ///< zeros added on each side, both dims
  int64_t dilation = 1;  ///< spacing between kernel taps
  int64_t groups = 1;    ///< G: in_channels and out_channels must both divide by it
  bool bias = true;      ///< whether there is a bias
};

/// torch.nn.Conv2d with square kernels:
/// `nn::Conv2d(3, 8, 3, nn::Conv2dOptions{.stride = 2, .padding = 1})`.
class Conv2d : public Module {
 public:
  /// weight [out_channels, in_channels / groups, kernel_size, kernel_size] and bias
  /// [out_channels], initialized as PyTorch does from the default generator.
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size,
         Conv2dOptions options = {}, DType dtype = DType::f32);

  /// x [N, in_channels, H, W] -> [N, out_channels, OH, OW].
  Tensor forward(const Tensor& x) override;
  /// "3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)", as PyTorch prints it.
  std::string extra_repr() const override;

  /// PyTorch's default init: W ~ U(-b, b) by kaiming_uniform_ with a = sqrt(5), which gives
  /// b = 1 / sqrt(fan_in) with fan_in = in_channels / groups * kernel_size^2; bias ~ U(-b, b).
  void reset_parameters(Generator* gen = nullptr);

  const int64_t in_channels;   ///< C of the input
  const int64_t out_channels;  ///< C of the output
  const int64_t kernel_size;   ///< KH = KW
  const Conv2dOptions options; ///< stride, padding, dilation, groups, bias
  Tensor weight;  ///< [out_channels, in_channels / groups, kernel_size, kernel_size]
  Tensor bias;    ///< [out_channels]; undefined when options.bias is false
};

}  // namespace kiln::nn
