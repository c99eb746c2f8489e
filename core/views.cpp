#include <kiln/core/views.h>

#include <algorithm>

#include <kiln/core/elementwise.h>

namespace kiln::kernels {

Tensor as_strided(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.unsafe_impl()->storage;
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

Shape infer_shape(const Shape& shape, int64_t numel, const char* op) {
  Shape out = shape;
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      KILN_CHECK(infer_at < 0, op, ": only one dimension can be -1, got shape ", shape);
      infer_at = static_cast<int64_t>(i);
    } else {
      KILN_CHECK(out[i] >= 0, op, ": invalid size ", out[i], " in shape ", shape);
      known *= out[i];
    }
  }
  if (infer_at >= 0) {
    KILN_CHECK(known != 0 && numel % known == 0, op, ": shape ", shape,
               " is invalid for an input of ", numel, " elements");
    out[infer_at] = numel / known;
  } else {
    KILN_CHECK(known == numel, op, ": shape ", shape, " is invalid for an input of ", numel,
               " elements");
  }
  return out;
}

bool view_strides(const Tensor& t, const Shape& shape, Shape& strides_out) {
  // Walk both shapes in chunks of equal element count; each chunk of the old shape must be
  // contiguous within itself for the new dims to be expressible with strides.
  const Shape& old_shape = t.shape();
  const Shape& old_strides = t.strides();
  strides_out.assign(shape.size(), 0);
  if (t.numel() == 0 || t.dim() == 0) {
    strides_out = contiguous_strides(shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.empty() ? 1 : old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    if (d == 0 || (old_shape[d - 1] != 1 &&
                   old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        strides_out[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Tensor view(const Tensor& t, const Shape& shape) {
  Shape target = infer_shape(shape, t.numel(), "view");
  Shape strides;
  KILN_CHECK(view_strides(t, target, strides), "view: a tensor of shape ", t.shape(),
             " and strides ", t.strides(), " cannot be viewed as ", target,
             " without a copy; use reshape()");
  return as_strided(t, target, strides, t.offset());
}

Tensor permute(const Tensor& t, const std::vector<int64_t>& dims) {
  const int64_t ndim = t.dim();
  KILN_CHECK(static_cast<int64_t>(dims.size()) == ndim, "permute: expected ", ndim,
             " dims for a tensor of shape ", t.shape(), ", got ", Shape(dims));
  Shape shape(ndim), strides(ndim);
  std::vector<bool> seen(ndim, false);
  for (int64_t i = 0; i < ndim; ++i) {
    int64_t d = wrap_dim(dims[i], ndim, "permute");
    KILN_CHECK(!seen[d], "permute: dim ", d, " repeats in ", Shape(dims));
    seen[d] = true;
    shape[i] = t.shape()[d];
    strides[i] = t.strides()[d];
  }
  return as_strided(t, shape, strides, t.offset());
}

Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step) {
  KILN_CHECK(t.dim() > 0, "slice: expected a tensor with at least 1 dim, got a 0-dim tensor");
  dim = wrap_dim(dim, t.dim(), "slice");
  KILN_CHECK(step >= 1, "slice: expected step >= 1, got ", step);
  const int64_t size = t.shape()[dim];
  if (start < 0) start += size;
  if (end < 0) end += size;
  start = std::clamp<int64_t>(start, 0, size);
  end = std::clamp<int64_t>(end, start, size);
  Shape shape = t.shape(), strides = t.strides();
  shape[dim] = (end - start + step - 1) / step;
  strides[dim] *= step;
  return as_strided(t, shape, strides, t.offset() + start * t.strides()[dim]);
}

Tensor expand(const Tensor& t, const Shape& shape) {
  const int64_t ndim = static_cast<int64_t>(shape.size());
  KILN_CHECK(ndim >= t.dim(), "expand: cannot expand shape ", t.shape(), " to fewer dims ", shape);
  Shape out_shape(ndim), strides(ndim);
  const int64_t lead = ndim - t.dim();
  for (int64_t i = 0; i < ndim; ++i) {
    if (i < lead) {
      KILN_CHECK(shape[i] >= 0, "expand: invalid size ", shape[i], " for a new leading dim in ",
                 shape);
      out_shape[i] = shape[i];
      strides[i] = 0;
      continue;
    }
    int64_t have = t.shape()[i - lead];
    KILN_CHECK(shape[i] >= -1, "expand: invalid size ", shape[i], " in ", shape,
               " (sizes are >= 0, or -1 to keep one)");
    int64_t want = shape[i] == -1 ? have : shape[i];
    KILN_CHECK(have == want || have == 1, "expand: the size ", have, " of dim ", i - lead,
               " of shape ", t.shape(), " must be 1 to expand to ", shape);
    out_shape[i] = want;
    strides[i] = have == want ? t.strides()[i - lead] : 0;
  }
  return as_strided(t, out_shape, strides, t.offset());
}

Tensor squeeze(const Tensor& t, const std::vector<int64_t>& dims) {
  std::vector<bool> drop(t.dim(), false);
  if (dims.empty()) {
    for (int64_t d = 0; d < t.dim(); ++d) drop[d] = t.shape()[d] == 1;
  } else {
    for (int64_t d : dims) {
      int64_t w = wrap_dim(d, t.dim(), "squeeze");
      if (t.dim() == 0) continue;     // squeeze(0) of a 0-dim tensor is itself, as PyTorch
      drop[w] = t.shape()[w] == 1;  // like PyTorch, a dim that is not 1 stays
    }
  }
  Shape shape, strides;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (drop[d]) continue;
    shape.push_back(t.shape()[d]);
    strides.push_back(t.strides()[d]);
  }
  return as_strided(t, shape, strides, t.offset());
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  dim = wrap_dim(dim, t.dim() + 1, "unsqueeze");
  Shape shape = t.shape(), strides = t.strides();
  int64_t stride = dim < t.dim() ? t.strides()[dim] * t.shape()[dim] : 1;
  shape.insert(shape.begin() + dim, 1);
  strides.insert(strides.begin() + dim, stride);
  return as_strided(t, shape, strides, t.offset());
}

Tensor contiguous_copy(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), t.dtype());
  copy(out, t);
  return out;
}

Tensor contiguous(const Tensor& t) { return t.is_contiguous() ? t : contiguous_copy(t); }

Tensor to_dtype(const Tensor& t, DType dtype, bool force_copy) {
  if (t.dtype() == dtype && !force_copy) return t;
  Tensor out = Tensor::empty(t.shape(), dtype);
  copy(out, t);
  return out;
}

}  // namespace kiln::kernels
