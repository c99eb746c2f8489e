// Plain elementwise kernels with NumPy broadcasting. autograd/ops.h gives their differentiable
// forms; use those unless you are writing a kernel.
#pragma once

#include <kiln/core/tensor.h>

namespace kiln::kernels {

enum class Binary { add, sub, mul, div, maximum, minimum, pow, eq, ne, lt, le, gt, ge };
enum class Unary { neg, exp, log, sqrt, rsqrt, abs, relu, sigmoid, tanh, sign, reciprocal, square };

/// The broadcast of two shapes (NumPy rules), or an error naming `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

/// out = a op b, broadcast. Comparisons give 1 or 0 in the promoted dtype.
Tensor binary(Binary op, const Tensor& a, const Tensor& b);
/// out = a op s.
Tensor binary_scalar(Binary op, const Tensor& a, double s);
/// out = op(a). Float-only ops on i64 input compute in f32.
Tensor unary(Unary op, const Tensor& a);
/// min(max(a, lo), hi).
Tensor clamp(const Tensor& a, double lo, double hi);
/// cond != 0 ? a : b, all three broadcast together.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
/// dst[...] = src[...] with src broadcast to dst's shape and converted to dst's dtype.
void copy(const Tensor& dst, const Tensor& src);
/// dst[...] = value.
void fill(const Tensor& dst, double value);
/// dst += alpha * src (src broadcast to dst's shape, same dtype).
void add_into(const Tensor& dst, const Tensor& src, double alpha);
/// dst *= src (src broadcast) or dst *= value.
void mul_into(const Tensor& dst, const Tensor& src);
void scale_into(const Tensor& dst, double value);

}  // namespace kiln::kernels
