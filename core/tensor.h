// Tensor: a strided view (shape, strides, offset, dtype) of shared Storage.
//
// Copying a Tensor copies a handle: both refer to the same TensorImpl, as in PyTorch. Views
// (view, permute, slice, expand, ...) make a new TensorImpl over the same Storage.
//
// core/ holds no gradient logic. TensorImpl keeps the slots (requires_grad, grad, grad_fn) that
// autograd/ fills, and the differentiable methods declared below (the ops, views and backward())
// are defined in autograd/, on top of the plain kernels of core/.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include <kiln/core/dtype.h>
#include <kiln/core/error.h>
#include <kiln/core/storage.h>

namespace kiln {

namespace autograd {
class Node;
/// The name a node shows in messages and printing ("MulBackward"). Defined in autograd/.
std::string node_name(const Node& node);
}

/// Sizes of a tensor's dims (or strides, in elements), outermost first.
using Shape = std::vector<int64_t>;

class Generator;
class Tensor;

/// The state behind a Tensor handle. Kernels read shape/strides/offset; autograd owns the rest.
struct TensorImpl {
  std::shared_ptr<Storage> storage;  ///< the bytes, shared by every view
  Shape shape;                       ///< sizes, outermost dim first
  Shape strides;       ///< in elements
  int64_t offset = 0;  ///< in elements, into storage
  DType dtype = DType::f32;  ///< the element type

  // Slots filled by autograd/.
  bool requires_grad = false;                        ///< set by requires_grad_() on a leaf
  std::shared_ptr<TensorImpl> grad;                  ///< accumulated gradient, same shape
  std::shared_ptr<autograd::Node> grad_fn;           ///< the node that made this tensor, or null
  uint32_t output_nr = 0;                            ///< which output of grad_fn this tensor is
  std::weak_ptr<autograd::Node> grad_accumulator;    ///< a leaf's AccumulateGrad node, while alive

  /// The number of elements, the product of shape.
  int64_t numel() const;
};

/// Row-major strides of a contiguous tensor of this shape.
Shape contiguous_strides(const Shape& shape);
/// Product of the sizes; throws when it overflows int64.
int64_t shape_numel(const Shape& shape);
/// Maps a possibly negative dim to [0, ndim); `op` names the caller in the error.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

/// An n-dimensional array of f32, f64 or i64 with autograd, and a handle: copies share data.
///
///     Tensor x = Tensor::randn({2, 3}).requires_grad_();
///     Tensor y = (x * 2.0 + 1.0).relu().sum();
///     y.backward();  // x.grad() is dy/dx
class Tensor {
 public:
  /// An undefined tensor (defined() is false): the "no tensor" of optional arguments and gradients.
  Tensor() = default;
  /// A handle to an existing TensorImpl.
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories (every factory takes a dtype; f32 unless said) -------------------------------
  /// Uninitialized memory of this shape: `Tensor::empty({2, 3})`.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32);
  /// All zeros: `Tensor::zeros({2, 3}, DType::f64)`.
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32);
  /// All ones.
  static Tensor ones(const Shape& shape, DType dtype = DType::f32);
  /// Every element `value`: `Tensor::full({3}, 0.5)`.
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32);
  /// 0, 1, ..., end-1. i64 by default, as torch.arange with integers.
  static Tensor arange(int64_t end, DType dtype = DType::i64);
  /// start, start + step, ... < end: `Tensor::arange(0, 1, 0.25, DType::f32)` is [0, 0.25, 0.5, 0.75].
  static Tensor arange(double start, double end, double step = 1, DType dtype = DType::i64);
  /// Standard normal samples from `gen` (the default generator when null).
  static Tensor randn(const Shape& shape, DType dtype = DType::f32, Generator* gen = nullptr);
  /// Uniform samples in [0, 1).
  static Tensor rand(const Shape& shape, DType dtype = DType::f32, Generator* gen = nullptr);
  /// Copies `values` into a new tensor of `shape` (1-D when shape is empty).
  /// `Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2})` is f32.
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape = {});
  /// The same, f64.
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape = {});
  /// The same, i64 (labels, indices).
  static Tensor from_vector(const std::vector<int64_t>& values, const Shape& shape = {});
  /// A 0-dim tensor.
  static Tensor scalar(double value, DType dtype = DType::f32);

  // ---- metadata --------------------------------------------------------------------------------
  /// False for a default-constructed Tensor; every other member needs a defined one.
  bool defined() const { return impl_ != nullptr; }
  /// The sizes, outermost dim first.
  const Shape& shape() const { return impl().shape; }
  /// The strides, in elements.
  const Shape& strides() const { return impl().strides; }
  /// Where element [0, 0, ...] sits in the storage, in elements.
  int64_t offset() const { return impl().offset; }
  /// The number of dims (0 for a scalar).
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  /// Size of one dim; negative dims count from the end.
  int64_t size(int64_t dim) const;
  /// The number of elements.
  int64_t numel() const { return impl().numel(); }
  /// The element type.
  DType dtype() const { return impl().dtype; }
  /// True when the elements are row-major with no gaps (the strides of contiguous_strides()).
  bool is_contiguous() const;
  /// Pointer to element [0, 0, ...] (storage + offset). T must match dtype().
  template <class T>
  T* data_ptr() const;
  /// Pointer to element [0, 0, ...], untyped.
  void* raw_data_ptr() const;
  /// The state behind the handle, for kernels and autograd; bypasses every check.
  TensorImpl* unsafe_impl() const { return impl_.get(); }
  /// The shared state behind the handle.
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  /// True when both handles refer to the same TensorImpl.
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

  // ---- element access --------------------------------------------------------------------------
  /// All elements in row-major order, converted to T.
  template <class T>
  std::vector<T> to_vector() const;
  /// The single element of a one-element tensor, converted to T.
  template <class T>
  T item() const;

  // ---- conversion and copies (differentiable) --------------------------------------------------
  /// A copy converted to dtype, or this tensor when it already has it.
  Tensor to(DType dtype) const;
  /// This tensor when contiguous, else a contiguous copy.
  Tensor contiguous() const;
  /// A contiguous copy with its own storage; gradients flow back to this tensor.
  Tensor clone() const;
  /// Shares storage, but is cut from the graph: requires_grad false, no grad_fn.
  Tensor detach() const;

  // ---- views (differentiable; share storage) ---------------------------------------------------
  /// One size may be -1. view requires compatible strides; reshape copies only when it must.
  Tensor view(const Shape& shape) const;
  /// Like view, but copies when the strides do not allow a view: `x.reshape({-1, 4})`.
  Tensor reshape(const Shape& shape) const;
  /// Reorders the dims: `x.permute({0, 2, 3, 1})` turns [N, C, H, W] into [N, H, W, C].
  Tensor permute(const std::vector<int64_t>& dims) const;
  /// Swaps two dims: `a.transpose(0, 1)` is the matrix transpose.
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  /// Elements start, start+step, ... < end along dim. Negative and out-of-range bounds clamp.
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  /// Broadcasts size-1 dims (and new leading dims) to `shape`; -1 keeps a size.
  Tensor expand(const Shape& shape) const;
  /// Drops every size-1 dim.
  Tensor squeeze() const;
  /// Drops dim when its size is 1.
  Tensor squeeze(int64_t dim) const;
  /// Inserts a size-1 dim at dim: [C] -> [1, C] with `unsqueeze(0)`.
  Tensor unsqueeze(int64_t dim) const;
  /// Merges dims start_dim..end_dim into one.
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;

  // ---- in-place writes (not recorded by autograd: use under NoGradGuard on parameters) ---------
  /// Copies src in; src broadcasts to this shape, and dtypes convert.
  Tensor& copy_(const Tensor& src);
  /// Sets every element to value.
  Tensor& fill_(double value);
  /// Sets every element to zero.
  Tensor& zero_();
  /// this += alpha * other: `p.add_(p.grad(), -lr)` is an SGD step.
  Tensor& add_(const Tensor& other, double alpha = 1);
  /// this *= value.
  Tensor& mul_(double value);
  /// this *= other, other broadcast to this shape.
  Tensor& mul_(const Tensor& other);

  // ---- common ops as methods (free functions in namespace kiln; see autograd/ops.h) ------------
  /// Sum over dims (all when empty): `x.sum({2, 3}, true)` is [N, C, 1, 1].
  Tensor sum(const std::vector<int64_t>& dims = {}, bool keepdim = false) const;
  /// Mean over dims (all when empty).
  Tensor mean(const std::vector<int64_t>& dims = {}, bool keepdim = false) const;
  /// Largest value over dims (all when empty).
  Tensor max(const std::vector<int64_t>& dims = {}, bool keepdim = false) const;
  /// Smallest value over dims (all when empty).
  Tensor min(const std::vector<int64_t>& dims = {}, bool keepdim = false) const;
  /// Variance over dims; correction 1 is unbiased, 0 biased.
  Tensor var(const std::vector<int64_t>& dims = {}, int64_t correction = 1, bool keepdim = false) const;
  /// Index of the largest value along dim, i64: `logits.argmax(1)` gives predicted classes.
  Tensor argmax(int64_t dim, bool keepdim = false) const;
  /// -x.
  Tensor neg() const;
  /// e^x.
  Tensor exp() const;
  /// Natural logarithm.
  Tensor log() const;
  /// Square root.
  Tensor sqrt() const;
  /// 1 / sqrt(x).
  Tensor rsqrt() const;
  /// |x|.
  Tensor abs() const;
  /// x^exponent.
  Tensor pow(double exponent) const;
  /// max(x, 0).
  Tensor relu() const;
  /// 1 / (1 + e^-x).
  Tensor sigmoid() const;
  /// Hyperbolic tangent.
  Tensor tanh() const;
  /// min(max(x, min), max).
  Tensor clamp(double min, double max) const;
  /// The matrix product, as torch.matmul (see kiln::matmul).
  Tensor matmul(const Tensor& other) const;

  // ---- autograd --------------------------------------------------------------------------------
  /// Whether backward computes a gradient for this tensor.
  bool requires_grad() const { return impl().requires_grad; }
  /// Marks a leaf as needing a gradient. Returns *this, so `Tensor::randn(s).requires_grad_()`.
  Tensor& requires_grad_(bool requires_grad = true);
  /// The accumulated gradient; undefined until a backward reaches this tensor.
  Tensor grad() const;
  /// Replaces the gradient (an undefined tensor clears it).
  void set_grad(const Tensor& grad);
  /// True when no op made this tensor (a parameter or an input, not a result).
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  /// The node whose backward gives this tensor's gradient, or null for a leaf.
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl().grad_fn; }
  /// Backpropagates from this tensor. A scalar needs no grad; otherwise pass d(out)/d(this).
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;

 private:
  TensorImpl& impl() const {
    KILN_CHECK(impl_ != nullptr, "Tensor: this tensor is undefined (default-constructed)");
    return *impl_;
  }
  std::shared_ptr<TensorImpl> impl_;
};

// Arithmetic operators (differentiable; broadcasting like NumPy). Defined in autograd/.
/// a + b, elementwise with broadcasting: [N, C] + [C] adds a row to every row.
Tensor operator+(const Tensor& a, const Tensor& b);
/// a - b, elementwise with broadcasting.
Tensor operator-(const Tensor& a, const Tensor& b);
/// a * b, elementwise with broadcasting (matmul() is the matrix product).
Tensor operator*(const Tensor& a, const Tensor& b);
/// a / b, elementwise with broadcasting.
Tensor operator/(const Tensor& a, const Tensor& b);
/// a + b for every element; the result keeps a's dtype when a is floating.
Tensor operator+(const Tensor& a, double b);
/// a - b for every element.
Tensor operator-(const Tensor& a, double b);
/// a * b for every element: `x * 2.0`.
Tensor operator*(const Tensor& a, double b);
/// a / b for every element.
Tensor operator/(const Tensor& a, double b);
/// a + b for every element of b.
Tensor operator+(double a, const Tensor& b);
/// a - b for every element of b: `1.0 - p`.
Tensor operator-(double a, const Tensor& b);
/// a * b for every element of b.
Tensor operator*(double a, const Tensor& b);
/// a / b for every element of b.
Tensor operator/(double a, const Tensor& b);
/// -a.
Tensor operator-(const Tensor& a);

/// Prints like PyTorch: `tensor([[1.0000, 2.0000], ...], dtype=f64, grad_fn=<MulBackward>)`.
std::ostream& operator<<(std::ostream& out, const Tensor& t);
/// Prints dtype_name(dtype).
std::ostream& operator<<(std::ostream& out, DType dtype);

// ---- template definitions ----------------------------------------------------------------------

template <class T>
T* Tensor::data_ptr() const {
  KILN_CHECK(dtype_of<T>() == dtype(), "data_ptr: the tensor is ", dtype_name(dtype()),
             ", but data_ptr<", dtype_name(dtype_of<T>()), "> was asked for");
  return static_cast<T*>(raw_data_ptr());
}

}  // namespace kiln
