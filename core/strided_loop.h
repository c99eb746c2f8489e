// The loop under every elementwise kernel: walks K operands that share one logical shape, each
// with its own strides (0 for a broadcast dim), in row-major order of that shape.
//
// Dims are coalesced first (dim i folds into i+1 when every operand has
// stride[i] == stride[i+1] * shape[i+1]), so contiguous and broadcast cases reduce to one or two
// dims and the innermost loop runs over long, simply strided rows.
#pragma once

#include <array>
#include <cstdint>

#include <kiln/core/parallel.h>
#include <kiln/core/tensor.h>

namespace kiln::kernels {

/// The most dims a layout keeps after merging; strided_for indexes them on the stack.
constexpr size_t kMaxLoopDims = 64;

/// K operands walked together over one logical shape, after merging dims.
template <size_t K>
struct StridedLayout {
  Shape shape;                    ///< coalesced shape; empty means a single element
  std::array<Shape, K> strides;   ///< per operand, in elements, same length as shape
  int64_t numel = 1;              ///< elements in the shape
};

/// The layout of K operands of one `shape`, each with its own strides (0 for a broadcast dim),
/// with size-1 dims dropped and mergeable neighbours merged.
template <size_t K>
StridedLayout<K> make_layout(const Shape& shape, const std::array<Shape, K>& strides) {
  StridedLayout<K> layout;
  for (int64_t s : shape) layout.numel *= s;
  // Drop size-1 dims, then merge neighbours whose strides allow it.
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !layout.shape.empty();
    if (merge) {
      for (size_t k = 0; k < K; ++k) {
        if (layout.strides[k].back() != strides[k][d] * shape[d]) { merge = false; break; }
      }
    }
    if (merge) {
      layout.shape.back() *= shape[d];
      for (size_t k = 0; k < K; ++k) layout.strides[k].back() = strides[k][d];
    } else {
      layout.shape.push_back(shape[d]);
      for (size_t k = 0; k < K; ++k) layout.strides[k].push_back(strides[k][d]);
    }
  }
  KILN_CHECK(layout.shape.size() <= kMaxLoopDims, "elementwise: shape ", shape, " has ",
             layout.shape.size(), " dims that cannot be merged; at most ", kMaxLoopDims,
             " are supported");
  return layout;
}

/// Calls fn(offsets, n, inner_strides) for runs of n elements along the innermost dim that cover the
/// flat range [begin, end) of the layout. offsets[k] is operand k's element offset of the run start.
template <size_t K, class Fn>
void strided_for(const StridedLayout<K>& layout, int64_t begin, int64_t end, Fn&& fn) {
  const int64_t ndim = static_cast<int64_t>(layout.shape.size());
  std::array<int64_t, K> inner{};
  if (ndim == 0) {
    std::array<int64_t, K> zero{};
    if (begin < end) fn(zero, int64_t{1}, inner);
    return;
  }
  for (size_t k = 0; k < K; ++k) inner[k] = layout.strides[k][ndim - 1];
  const int64_t inner_size = layout.shape[ndim - 1];
  // Multi-index of `begin`.
  int64_t index[kMaxLoopDims];
  int64_t rest = begin;
  for (int64_t d = ndim - 1; d >= 0; --d) {
    index[d] = rest % layout.shape[d];
    rest /= layout.shape[d];
  }
  int64_t pos = begin;
  while (pos < end) {
    std::array<int64_t, K> offsets{};
    for (int64_t d = 0; d < ndim; ++d)
      for (size_t k = 0; k < K; ++k) offsets[k] += index[d] * layout.strides[k][d];
    int64_t n = inner_size - index[ndim - 1];
    if (n > end - pos) n = end - pos;
    fn(offsets, n, inner);
    pos += n;
    index[ndim - 1] += n;
    for (int64_t d = ndim - 1; d > 0 && index[d] == layout.shape[d]; --d) {
      index[d] = 0;
      ++index[d - 1];
    }
  }
}

/// strided_for over the whole layout, in parallel over fixed flat chunks.
template <size_t K, class Fn>
void parallel_strided_for(const StridedLayout<K>& layout, Fn&& fn) {
  constexpr int64_t kGrain = 1 << 16;
  parallel_for(0, layout.numel, kGrain,
               [&](int64_t b, int64_t e) { strided_for(layout, b, e, fn); });
}

}  // namespace kiln::kernels
