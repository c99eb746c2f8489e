// Plain reduction kernels. Sums accumulate in double (f32, f64) or int64 (i64), so results are
// accurate and, with fixed chunking, bit-identical at any thread count.
#pragma once

#include <vector>

#include <kiln/core/tensor.h>

namespace kiln::kernels {

/// The reductions of reduce().
enum class Reduce { sum, mean, max, min };

/// Which dims a reduction covers: an empty `dims` means all. Negative dims count from the end.
std::vector<bool> reduction_mask(const std::vector<int64_t>& dims, int64_t ndim, const char* op);
/// The result shape of reducing `shape` over `mask`.
Shape reduced_shape(const Shape& shape, const std::vector<bool>& mask, bool keepdim);

/// Sum, mean, max or min over dims (all when empty); sums accumulate in double or int64.
Tensor reduce(Reduce op, const Tensor& t, const std::vector<int64_t>& dims, bool keepdim);
/// Variance over dims with the given correction (1: unbiased, 0: biased), two-pass in double.
Tensor var(const Tensor& t, const std::vector<int64_t>& dims, int64_t correction, bool keepdim);
/// Index of the largest element along dim, as i64.
Tensor argmax(const Tensor& t, int64_t dim, bool keepdim);
/// Index of the smallest element along dim, as i64.
Tensor argmin(const Tensor& t, int64_t dim, bool keepdim);
/// Sums `t` down to `shape`, which must broadcast to t's shape (the gradient of a broadcast).
Tensor sum_to(const Tensor& t, const Shape& shape);

}  // namespace kiln::kernels
