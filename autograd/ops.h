// The differentiable ops. Each is a free function in namespace kiln; the common ones are also
// Tensor methods. Binary ops broadcast like NumPy, and their gradients are summed back to each
// input's shape. Every op here is gradient-checked in tests/autograd/.
#pragma once

#include <vector>

#include <kiln/core/tensor.h>

namespace kiln {

// ---- elementwise (autograd/elementwise_ops.cpp) ------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
/// Elementwise max/min; where equal, the gradient is split evenly (as torch.maximum).
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, double exponent);
Tensor pow(const Tensor& a, const Tensor& exponent);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor clamp(const Tensor& a, double min, double max);
/// cond != 0 ? a : b (cond gets no gradient).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// Comparisons: 1 where true, 0 elsewhere, in the inputs' promoted dtype. Not differentiable.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);

// ---- reductions (autograd/reduction_ops.cpp); empty dims means all dims ------------------------
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
/// max/min values over dims; ties share the gradient evenly (as torch.amax/amin).
Tensor max(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor min(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
/// Variance with Bessel's correction by default (correction 0 gives the biased estimate).
Tensor var(const Tensor& a, const std::vector<int64_t>& dims = {}, int64_t correction = 1,
           bool keepdim = false);
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& a, int64_t dim, bool keepdim = false);
/// log(softmax(a)) along dim, computed stably: a - max - log(sum(exp(a - max))).
Tensor log_softmax(const Tensor& a, int64_t dim);
Tensor softmax(const Tensor& a, int64_t dim);

// ---- linear algebra (autograd/linalg_ops.cpp) --------------------------------------------------
/// torch.matmul: 1-D operands are promoted and squeezed back, batch dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- shape and copies (autograd/view_ops.cpp) --------------------------------------------------
Tensor view(const Tensor& a, const Shape& shape);
Tensor reshape(const Tensor& a, const Shape& shape);
Tensor permute(const Tensor& a, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& a, int64_t dim0, int64_t dim1);
Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor expand(const Tensor& a, const Shape& shape);
Tensor squeeze(const Tensor& a);
Tensor squeeze(const Tensor& a, int64_t dim);
Tensor unsqueeze(const Tensor& a, int64_t dim);
Tensor flatten(const Tensor& a, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor contiguous(const Tensor& a);
Tensor clone(const Tensor& a);
Tensor to(const Tensor& a, DType dtype);
/// Joins tensors along an existing dim (cat) or a new one (stack).
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);

}  // namespace kiln
