// Plain (non-differentiable) view constructors: new shape/strides/offset over the same storage.
// autograd/ wraps each in a differentiable op; most code wants the Tensor methods instead.
#pragma once

#include <kiln/core/tensor.h>

namespace kiln::kernels {

/// A tensor sharing `base`'s storage with the given geometry (no autograd state).
Tensor as_strided(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset);
/// Resolves one -1 in `shape` against numel; checks the element count.
Shape infer_shape(const Shape& shape, int64_t numel, const char* op);
/// The strides for viewing `t` as `shape` without a copy, or an empty optional-like result
/// (returns false) when the memory layout does not allow it.
bool view_strides(const Tensor& t, const Shape& shape, Shape& strides_out);

/// `t` viewed as `shape` (one size may be -1); throws when the strides do not allow a view.
Tensor view(const Tensor& t, const Shape& shape);
/// `t` with its dims reordered: dim i of the result is dim dims[i] of t.
Tensor permute(const Tensor& t, const std::vector<int64_t>& dims);
/// Elements start, start+step, ... < end along dim; negative bounds count from the end, and
/// out-of-range ones clamp, as in Python.
Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step);
/// `t` broadcast to `shape` with stride 0 on the expanded dims.
Tensor expand(const Tensor& t, const Shape& shape);
/// `t` without the listed size-1 dims; an empty list drops all size-1 dims.
Tensor squeeze(const Tensor& t, const std::vector<int64_t>& dims);
/// `t` with a size-1 dim inserted at dim.
Tensor unsqueeze(const Tensor& t, int64_t dim);

/// A fresh contiguous copy (always copies).
Tensor contiguous_copy(const Tensor& t);
/// `t` itself when contiguous, else a contiguous copy.
Tensor contiguous(const Tensor& t);
/// A copy converted to dtype (t itself when it already has that dtype and copy is false).
Tensor to_dtype(const Tensor& t, DType dtype, bool copy = false);

}  // namespace kiln::kernels
