// Plain elementwise kernels with NumPy broadcasting. autograd/ops.h gives their differentiable
// forms; use those unless you are writing a kernel.
#pragma once

#include <kiln/core/tensor.h>

namespace kiln::kernels {

/// The binary ops of binary() and binary_scalar().
enum class Binary { add, sub, mul, div, maximum, minimum, pow, eq, ne, lt, le, gt, ge };
/// The unary ops of unary().
enum class Unary { neg, exp, log, sqrt, rsqrt, abs, relu, sigmoid, tanh, sign, reciprocal, square };

/// The broadcast of two shapes (NumPy rules), or an error naming `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

/// The dtype of a binary op's result, as torch.result_type: promote() of the two dtypes, except
/// that a 0-dim operand does not widen a dimensioned one of the same kind (f32 [3] * f64 [] is
/// f32); it decides only when it is of a higher kind (i64 [3] * f32 [] is f32).
DType result_type(const Tensor& a, const Tensor& b);

/// out = a op b, broadcast, in result_type(a, b). Comparisons give 1 or 0 in that dtype. Integer
/// division gives f32; integer pow stays integer and refuses negative exponents, as PyTorch.
Tensor binary(Binary op, const Tensor& a, const Tensor& b);
/// out = a op s. An integer tensor stays integer when s is integral (except for div).
Tensor binary_scalar(Binary op, const Tensor& a, double s);
/// out = op(a). Float-only ops on i64 input compute in f32.
Tensor unary(Unary op, const Tensor& a);
/// min(max(a, lo), hi).
Tensor clamp(const Tensor& a, double lo, double hi);
/// relu's gradient, as PyTorch's threshold_backward: grad_y where y > 0, else 0. A NaN or infinite
/// grad_y at an inactive unit gives 0, and no zero takes grad_y's sign. grad_y and y have one
/// shape and one floating dtype; y may be relu's input or its output.
Tensor relu_backward(const Tensor& grad_y, const Tensor& y);
/// cond != 0 ? a : b, all three broadcast together.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
/// dst[...] = src[...] with src broadcast to dst's shape and converted to dst's dtype.
void copy(const Tensor& dst, const Tensor& src);
/// dst[...] = value.
void fill(const Tensor& dst, double value);
/// dst += alpha * src (src broadcast to dst's shape, same dtype).
void add_into(const Tensor& dst, const Tensor& src, double alpha);
/// dst *= src (src broadcast to dst's shape).
void mul_into(const Tensor& dst, const Tensor& src);
/// dst *= value.
void scale_into(const Tensor& dst, double value);

}  // namespace kiln::kernels
