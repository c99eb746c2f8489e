// Differentiable views and copies. A view's backward maps the gradient back onto its base's
// shape, so gradients flow from a view into the tensor it views.
#include <kiln/autograd/function.h>
#include <kiln/autograd/ops.h>
#include <kiln/core/elementwise.h>
#include <kiln/core/reduce.h>
#include <kiln/core/views.h>

namespace kiln {

namespace autograd::ops {

using Grads = std::vector<Tensor>;

Shape saved_shape(Context& ctx) { return std::any_cast<Shape>(ctx.saved_data["shape"]); }

struct View : Function<View> {
  static Tensor forward(Context& ctx, const Tensor& a, const Shape& shape) {
    ctx.saved_data["shape"] = a.shape();
    return kernels::view(a, shape);
  }
  static Grads backward(Context& ctx, const Grads& g) {
    return {kernels::view(kernels::contiguous(g[0]), saved_shape(ctx))};
  }
};

struct Reshape : Function<Reshape> {
  static Tensor forward(Context& ctx, const Tensor& a, const Shape& shape) {
    ctx.saved_data["shape"] = a.shape();
    Shape target = kernels::infer_shape(shape, a.numel(), "reshape");
    Shape strides;
    if (kernels::view_strides(a, target, strides)) return kernels::as_strided(a, target, strides, a.offset());
    return kernels::view(kernels::contiguous_copy(a), target);
  }
  static Grads backward(Context& ctx, const Grads& g) {
    return {kernels::view(kernels::contiguous(g[0]), saved_shape(ctx))};
  }
};

struct Permute : Function<Permute> {
  static Tensor forward(Context& ctx, const Tensor& a, const std::vector<int64_t>& dims) {
    Tensor y = kernels::permute(a, dims);
    std::vector<int64_t> inverse(dims.size());
    for (size_t i = 0; i < dims.size(); ++i)
      inverse[static_cast<size_t>(wrap_dim(dims[i], a.dim(), "permute"))] = static_cast<int64_t>(i);
    ctx.saved_data["inverse"] = inverse;
    return y;
  }
  static Grads backward(Context& ctx, const Grads& g) {
    return {kernels::permute(g[0], std::any_cast<std::vector<int64_t>>(ctx.saved_data["inverse"]))};
  }
};

struct Slice : Function<Slice> {
  static Tensor forward(Context& ctx, const Tensor& a, int64_t dim, int64_t start, int64_t end, int64_t step) {
    ctx.saved_data["shape"] = a.shape();
    ctx.saved_data["args"] = std::vector<int64_t>{dim, start, end, step};
    return kernels::slice(a, dim, start, end, step);
  }
  // The gradient is zero outside the slice, and g inside it.
  static Grads backward(Context& ctx, const Grads& g) {
    Shape shape = saved_shape(ctx);
    auto args = std::any_cast<std::vector<int64_t>>(ctx.saved_data["args"]);
    Tensor grad = Tensor::zeros(shape, g[0].dtype());
    kernels::copy(kernels::slice(grad, args[0], args[1], args[2], args[3]), g[0]);
    return {grad};
  }
};

struct Expand : Function<Expand> {
  static Tensor forward(Context& ctx, const Tensor& a, const Shape& shape) {
    ctx.saved_data["shape"] = a.shape();
    return kernels::expand(a, shape);
  }
  // Every copy of an element adds its gradient back.
  static Grads backward(Context& ctx, const Grads& g) { return {kernels::sum_to(g[0], saved_shape(ctx))}; }
};

struct Squeeze : Function<Squeeze> {
  static Tensor forward(Context& ctx, const Tensor& a, const std::vector<int64_t>& dims) {
    ctx.saved_data["shape"] = a.shape();
    return kernels::squeeze(a, dims);
  }
  static Grads backward(Context& ctx, const Grads& g) {
    return {kernels::view(kernels::contiguous(g[0]), saved_shape(ctx))};
  }
};

struct Unsqueeze : Function<Unsqueeze> {
  static Tensor forward(Context& ctx, const Tensor& a, int64_t dim) {
    ctx.saved_data["shape"] = a.shape();
    return kernels::unsqueeze(a, dim);
  }
  static Grads backward(Context& ctx, const Grads& g) {
    return {kernels::view(kernels::contiguous(g[0]), saved_shape(ctx))};
  }
};

struct Contiguous : Function<Contiguous> {
  static Tensor forward(Context&, const Tensor& a) { return kernels::contiguous(a); }
  static Grads backward(Context&, const Grads& g) { return {g[0]}; }
};

struct Clone : Function<Clone> {
  static Tensor forward(Context&, const Tensor& a) { return kernels::contiguous_copy(a); }
  static Grads backward(Context&, const Grads& g) { return {g[0]}; }
};

struct ToDType : Function<ToDType> {
  static Tensor forward(Context& ctx, const Tensor& a, DType dtype) {
    ctx.saved_data["dtype"] = a.dtype();
    return kernels::to_dtype(a, dtype, /*copy=*/true);
  }
  static Grads backward(Context& ctx, const Grads& g) {
    return {kernels::to_dtype(g[0], std::any_cast<DType>(ctx.saved_data["dtype"]))};
  }
};

// y = cat(x_0, ..., x_k) along dim. A Node of its own, since it takes any number of inputs:
// dL/dx_i is the slice of g that x_i filled.
class CatBackward final : public Node {
 public:
  CatBackward(const std::vector<Tensor>& inputs, const Tensor& output, int64_t dim) : dim_(dim) {
    for (const Tensor& t : inputs) {
      next_edges_.push_back(t.requires_grad() ? gradient_edge(t) : Edge{});
      sizes_.push_back(t.shape()[dim]);
      dtypes_.push_back(t.dtype());
    }
    outputs_.push_back({output.shape(), output.dtype()});
  }
  std::string name() const override { return "CatBackward"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    std::vector<Tensor> grads;
    int64_t at = 0;
    for (size_t i = 0; i < sizes_.size(); ++i) {
      if (next_edges_[i].valid()) {
        Tensor part = kernels::slice(g[0], dim_, at, at + sizes_[i], 1);
        grads.push_back(kernels::to_dtype(kernels::contiguous(part), dtypes_[i]));
      } else {
        grads.emplace_back();
      }
      at += sizes_[i];
    }
    return grads;
  }

 private:
  int64_t dim_;
  std::vector<int64_t> sizes_;
  std::vector<DType> dtypes_;
};

Tensor cat_forward(const std::vector<Tensor>& tensors, int64_t dim) {
  KILN_CHECK(!tensors.empty(), "cat: expected at least one tensor");
  const Tensor& first = tensors[0];
  Shape shape = first.shape();
  DType dtype = first.dtype();
  int64_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    KILN_CHECK(t.dim() == first.dim(), "cat: tensor ", i, " has shape ", t.shape(),
               ", expected the same rank as tensor 0 of shape ", first.shape());
    for (int64_t d = 0; d < t.dim(); ++d)
      KILN_CHECK(d == dim || t.shape()[d] == shape[d], "cat: tensor ", i, " has shape ", t.shape(),
                 ", which differs from tensor 0's ", first.shape(), " outside dim ", dim);
    dtype = promote(dtype, t.dtype());
    total += t.shape()[dim];
  }
  shape[dim] = total;
  Tensor out = Tensor::empty(shape, dtype);
  int64_t at = 0;
  for (const Tensor& t : tensors) {
    kernels::copy(kernels::slice(out, dim, at, at + t.shape()[dim], 1), t);
    at += t.shape()[dim];
  }
  return out;
}

}  // namespace autograd::ops

using namespace autograd::ops;

Tensor view(const Tensor& a, const Shape& shape) { return View::apply(a, shape); }
Tensor reshape(const Tensor& a, const Shape& shape) { return Reshape::apply(a, shape); }
Tensor permute(const Tensor& a, const std::vector<int64_t>& dims) { return Permute::apply(a, dims); }
Tensor transpose(const Tensor& a, int64_t dim0, int64_t dim1) {
  dim0 = wrap_dim(dim0, a.dim(), "transpose");
  dim1 = wrap_dim(dim1, a.dim(), "transpose");
  if (a.dim() == 0) return permute(a, {});  // transpose(0, 0) of a 0-dim tensor, as PyTorch
  std::vector<int64_t> dims(static_cast<size_t>(a.dim()));
  for (int64_t i = 0; i < a.dim(); ++i) dims[i] = i;
  std::swap(dims[dim0], dims[dim1]);
  return permute(a, dims);
}
Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end, int64_t step) {
  return Slice::apply(a, dim, start, end, step);
}
Tensor expand(const Tensor& a, const Shape& shape) { return Expand::apply(a, shape); }
Tensor squeeze(const Tensor& a) { return Squeeze::apply(a, std::vector<int64_t>{}); }
Tensor squeeze(const Tensor& a, int64_t dim) { return Squeeze::apply(a, std::vector<int64_t>{dim}); }
Tensor unsqueeze(const Tensor& a, int64_t dim) { return Unsqueeze::apply(a, dim); }
Tensor flatten(const Tensor& a, int64_t start_dim, int64_t end_dim) {
  if (a.dim() == 0) return reshape(a, {1});
  start_dim = wrap_dim(start_dim, a.dim(), "flatten");
  end_dim = wrap_dim(end_dim, a.dim(), "flatten");
  KILN_CHECK(start_dim <= end_dim, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim);
  Shape shape;
  for (int64_t d = 0; d < start_dim; ++d) shape.push_back(a.shape()[d]);
  int64_t merged = 1;
  for (int64_t d = start_dim; d <= end_dim; ++d) merged *= a.shape()[d];
  shape.push_back(merged);
  for (int64_t d = end_dim + 1; d < a.dim(); ++d) shape.push_back(a.shape()[d]);
  return reshape(a, shape);
}
Tensor contiguous(const Tensor& a) { return a.is_contiguous() ? a : Contiguous::apply(a); }
Tensor clone(const Tensor& a) { return Clone::apply(a); }
Tensor to(const Tensor& a, DType dtype) { return a.dtype() == dtype ? a : ToDType::apply(a, dtype); }

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  KILN_CHECK(!tensors.empty(), "cat: expected at least one tensor");
  for (size_t i = 0; i < tensors.size(); ++i)
    KILN_CHECK(tensors[i].dim() > 0, "cat: tensor ", i, " is 0-dim and cannot be concatenated;"
               " unsqueeze it or use stack()");
  dim = wrap_dim(dim, tensors[0].dim(), "cat");
  Tensor out = cat_forward(tensors, dim);
  bool needs_grad = false;
  for (const Tensor& t : tensors) needs_grad |= t.requires_grad();
  if (needs_grad && GradMode::is_enabled()) {
    auto node = std::make_shared<CatBackward>(tensors, out, dim);
    autograd::set_history(out, node, 0);
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  KILN_CHECK(!tensors.empty(), "stack: expected at least one tensor");
  std::vector<Tensor> parts;
  parts.reserve(tensors.size());
  const int64_t d = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  for (const Tensor& t : tensors) parts.push_back(unsqueeze(t, d));
  return cat(parts, d);
}

}  // namespace kiln
