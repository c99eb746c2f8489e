// The differentiable ops. Each is a free function in namespace kiln; the common ones are also
// Tensor methods. Binary ops broadcast like NumPy, and their gradients are summed back to each
// input's shape. Every op here is gradient-checked in tests/autograd/.
#pragma once

#include <vector>

#include <kiln/core/tensor.h>

namespace kiln {

// ---- elementwise (autograd/elementwise_ops.cpp) ------------------------------------------------
/// a + b (the same as operator+).
Tensor add(const Tensor& a, const Tensor& b);
/// a - b.
Tensor sub(const Tensor& a, const Tensor& b);
/// a * b, elementwise.
Tensor mul(const Tensor& a, const Tensor& b);
/// a / b, elementwise.
Tensor div(const Tensor& a, const Tensor& b);
/// Elementwise max; where equal, the gradient is split evenly (as torch.maximum).
Tensor maximum(const Tensor& a, const Tensor& b);
/// Elementwise min; where equal, the gradient is split evenly (as torch.minimum).
Tensor minimum(const Tensor& a, const Tensor& b);
/// a^exponent.
Tensor pow(const Tensor& a, double exponent);
/// a^exponent, elementwise with broadcasting.
Tensor pow(const Tensor& a, const Tensor& exponent);
/// -a.
Tensor neg(const Tensor& a);
/// e^a.
Tensor exp(const Tensor& a);
/// Natural logarithm.
Tensor log(const Tensor& a);
/// Square root.
Tensor sqrt(const Tensor& a);
/// 1 / sqrt(a).
Tensor rsqrt(const Tensor& a);
/// |a|.
Tensor abs(const Tensor& a);
/// max(a, 0).
Tensor relu(const Tensor& a);
/// 1 / (1 + e^-a).
Tensor sigmoid(const Tensor& a);
/// Hyperbolic tangent.
Tensor tanh(const Tensor& a);
/// min(max(a, min), max); the gradient is zero where clamped.
Tensor clamp(const Tensor& a, double min, double max);
/// cond != 0 ? a : b (cond gets no gradient).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// Comparisons: 1 where true, 0 elsewhere, in the inputs' promoted dtype. Not differentiable.
/// 1 where a == b, else 0: `eq(pred, labels).to(DType::f64).mean()` is an accuracy.
Tensor eq(const Tensor& a, const Tensor& b);
/// 1 where a != b, else 0.
Tensor ne(const Tensor& a, const Tensor& b);
/// 1 where a < b, else 0.
Tensor lt(const Tensor& a, const Tensor& b);
/// 1 where a <= b, else 0.
Tensor le(const Tensor& a, const Tensor& b);
/// 1 where a > b, else 0.
Tensor gt(const Tensor& a, const Tensor& b);
/// 1 where a >= b, else 0.
Tensor ge(const Tensor& a, const Tensor& b);

// ---- reductions (autograd/reduction_ops.cpp); empty dims means all dims ------------------------
/// Sum over dims (all when empty): `sum(x, {0})` sums the rows.
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
/// Mean over dims (all when empty).
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
/// Largest values over dims; ties share the gradient evenly (as torch.amax).
Tensor max(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
/// Smallest values over dims; ties share the gradient evenly (as torch.amin).
Tensor min(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
/// Variance with Bessel's correction by default (correction 0 gives the biased estimate).
Tensor var(const Tensor& a, const std::vector<int64_t>& dims = {}, int64_t correction = 1,
           bool keepdim = false);
/// Index of the largest value along dim, i64 (not differentiable).
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim = false);
/// Index of the smallest value along dim, i64 (not differentiable).
Tensor argmin(const Tensor& a, int64_t dim, bool keepdim = false);
/// log(softmax(a)) along dim, computed stably: a - max - log(sum(exp(a - max))).
Tensor log_softmax(const Tensor& a, int64_t dim);
/// exp(a) / sum(exp(a)) along dim, computed stably.
Tensor softmax(const Tensor& a, int64_t dim);

// ---- linear algebra (autograd/linalg_ops.cpp) --------------------------------------------------
/// torch.matmul: 1-D operands are promoted and squeezed back, batch dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- shape and copies (autograd/view_ops.cpp) --------------------------------------------------
/// a viewed as shape without a copy (one size may be -1); throws when the strides forbid it.
Tensor view(const Tensor& a, const Shape& shape);
/// a as shape, a view when possible, else a copy.
Tensor reshape(const Tensor& a, const Shape& shape);
/// a with its dims reordered: dim i of the result is dim dims[i] of a.
Tensor permute(const Tensor& a, const std::vector<int64_t>& dims);
/// a with dims dim0 and dim1 swapped.
Tensor transpose(const Tensor& a, int64_t dim0, int64_t dim1);
/// Elements start, start+step, ... < end along dim, as a view; negative bounds count from the
/// end, and out-of-range ones clamp, as in Python: `slice(x, 1, -2, 100)` is the last two columns.
Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
/// a broadcast to shape without a copy; -1 keeps a size.
Tensor expand(const Tensor& a, const Shape& shape);
/// a without its size-1 dims.
Tensor squeeze(const Tensor& a);
/// a without dim, when its size is 1.
Tensor squeeze(const Tensor& a, int64_t dim);
/// a with a size-1 dim inserted at dim.
Tensor unsqueeze(const Tensor& a, int64_t dim);
/// a with dims start_dim..end_dim merged into one.
Tensor flatten(const Tensor& a, int64_t start_dim = 0, int64_t end_dim = -1);
/// a when contiguous, else a contiguous copy.
Tensor contiguous(const Tensor& a);
/// A contiguous copy with its own storage.
Tensor clone(const Tensor& a);
/// a converted to dtype (a itself when it has it already).
Tensor to(const Tensor& a, DType dtype);
/// Joins tensors along an existing dim: `cat({a, b}, 1)` of [2, 3] and [2, 4] is [2, 7].
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
/// Joins same-shape tensors along a new dim: `stack({a, b})` of two [3] is [2, 3].
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);

}  // namespace kiln
