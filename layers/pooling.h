// 2-D pooling over [N, C, H, W] inputs (or [C, H, W]): max, average, and adaptive average.
//
//   auto mp  = std::make_shared<nn::MaxPool2d>(3, nn::Pool2dOptions{.stride = 2, .padding = 1});
//   auto ap  = std::make_shared<nn::AvgPool2d>(2, nn::Pool2dOptions{.stride = 2});
//   auto gap = std::make_shared<nn::AdaptiveAvgPool2d>(1);      // [N, C, H, W] -> [N, C, 1, 1]
//
// Output size for a kernel k, stride s and padding p (floor, as PyTorch's ceil_mode=False):
//   OH = (H + 2p - k) / s + 1,   OW = (W + 2p - k) / s + 1
#pragma once

#include <cstdint>
#include <string>

#include <kiln/core/tensor.h>
#include <kiln/layers/module.h>

namespace kiln::nn {

/// Options of MaxPool2d and AvgPool2d, in PyTorch's argument order.
struct Pool2dOptions {
  /// Step between windows. 0 (the default) means "the kernel size", PyTorch's stride=None.
  int64_t stride = 0;
  /// Implicit padding on each side: -inf for max pooling, zeros for average pooling. At most half
  /// the kernel size.
  int64_t padding = 0;
};

}  // namespace kiln::nn

namespace kiln::kernels {

/// A pooling window: kernel, stride and padding per spatial dim (stride already resolved).
struct Pool2dGeometry {
  /// The window's height.
  int64_t kernel_h, kernel_w;  ///< the window's width
  /// The vertical step between windows.
  int64_t stride_h, stride_w;  ///< the horizontal step between windows
  /// The padding at the top and the bottom.
  int64_t pad_h, pad_w;  ///< the padding on the left and the right
};

/// What max_pool2d_forward() returns.
struct MaxPool2dResult {
  Tensor y;        ///< [N, C, OH, OW]
  Tensor indices;  ///< [N, C, OH, OW] i64: the argmax h * W + w within its [H, W] plane
};
/// x [N, C, H, W] (contiguous). The first maximum in scan order wins; a NaN always wins.
MaxPool2dResult max_pool2d_forward(const Tensor& x, const Pool2dGeometry& g);
/// grad_y [N, C, OH, OW] -> grad_x [x_shape], each gradient added at its saved argmax.
Tensor max_pool2d_backward(const Tensor& grad_y, const Tensor& indices, const Shape& x_shape);

/// x [N, C, H, W] -> [N, C, OH, OW]: window means, dividing by k*k (count_include_pad) or by the
/// number of in-bounds elements.
Tensor avg_pool2d_forward(const Tensor& x, const Pool2dGeometry& g, bool count_include_pad);
/// grad_y [N, C, OH, OW] -> grad_x [x_shape], each window's gradient spread over it with the
/// forward's divisor.
Tensor avg_pool2d_backward(const Tensor& grad_y, const Shape& x_shape, const Pool2dGeometry& g,
                           bool count_include_pad);

/// x [N, C, H, W] -> [N, C, OH, OW]; output row i averages input rows
/// floor(i H / OH) .. ceil((i + 1) H / OH) - 1 (and likewise for columns).
Tensor adaptive_avg_pool2d_forward(const Tensor& x, int64_t out_h, int64_t out_w);
/// grad_y [N, C, OH, OW] -> grad_x [x_shape], each output's gradient spread over its window.
Tensor adaptive_avg_pool2d_backward(const Tensor& grad_y, const Shape& x_shape);

}  // namespace kiln::kernels

namespace kiln::nn {

namespace functional {
/// The maximum of each k x k window: `max_pool2d(x, 2)` halves H and W.
Tensor max_pool2d(const Tensor& x, int64_t kernel_size, Pool2dOptions options = {});
/// The mean of each k x k window.
Tensor avg_pool2d(const Tensor& x, int64_t kernel_size, Pool2dOptions options = {},
                  bool count_include_pad = true);
/// Means over output_size x output_size windows that tile the input: `adaptive_avg_pool2d(x, 1)`
/// is global average pooling.
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t output_size);
/// The same with an output of output_h x output_w.
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t output_h, int64_t output_w);
}  // namespace functional

/// torch.nn.MaxPool2d with square windows.
class MaxPool2d : public Module {
 public:
  /// `nn::MaxPool2d(3, nn::Pool2dOptions{.stride = 2, .padding = 1})`.
  explicit MaxPool2d(int64_t kernel_size, Pool2dOptions options = {});
  /// [N, C, H, W] -> [N, C, OH, OW]
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  const int64_t kernel_size;  ///< the window's height and width
  const int64_t stride;  ///< resolved: the kernel size when the options said 0
  const int64_t padding; ///< -inf padding on each side
};

/// torch.nn.AvgPool2d with square windows.
class AvgPool2d : public Module {
 public:
  /// count_include_pad: divide by k*k even where the window covers padding (PyTorch's default).
  explicit AvgPool2d(int64_t kernel_size, Pool2dOptions options = {}, bool count_include_pad = true);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  const int64_t kernel_size;     ///< the window's height and width
  const int64_t stride;          ///< resolved: the kernel size when the options said 0
  const int64_t padding;         ///< zero padding on each side
  const bool count_include_pad;  ///< whether padding counts in the divisor
};

/// torch.nn.AdaptiveAvgPool2d: averages over windows chosen to give a fixed output size.
class AdaptiveAvgPool2d : public Module {
 public:
  /// Output [N, C, output_size, output_size].
  explicit AdaptiveAvgPool2d(int64_t output_size) : AdaptiveAvgPool2d(output_size, output_size) {}
  /// Output [N, C, output_h, output_w].
  AdaptiveAvgPool2d(int64_t output_h, int64_t output_w);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  const int64_t output_h;  ///< the output's height
  const int64_t output_w;  ///< the output's width
};

}  // namespace kiln::nn
