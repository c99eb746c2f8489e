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

using Shape = std::vector<int64_t>;

class Generator;
class Tensor;

/// The state behind a Tensor handle. Kernels read shape/strides/offset; autograd owns the rest.
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements, into storage
  DType dtype = DType::f32;

  // Slots filled by autograd/.
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;                  // accumulated gradient, same shape
  std::shared_ptr<autograd::Node> grad_fn;           // the node that made this tensor, or null
  uint32_t output_nr = 0;                            // which output of grad_fn this tensor is
  std::weak_ptr<autograd::Node> grad_accumulator;    // a leaf's AccumulateGrad node, while alive

  int64_t numel() const;
};

/// Row-major strides of a contiguous tensor of this shape.
Shape contiguous_strides(const Shape& shape);
/// Product of the sizes; throws when it overflows int64.
int64_t shape_numel(const Shape& shape);
/// Maps a possibly negative dim to [0, ndim); `op` names the caller in the error.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories (every factory takes a dtype; f32 unless said) -------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::f32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32);
  static Tensor ones(const Shape& shape, DType dtype = DType::f32);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32);
  /// 0, 1, ..., end-1. i64 by default, as torch.arange with integers.
  static Tensor arange(int64_t end, DType dtype = DType::i64);
  static Tensor arange(double start, double end, double step = 1, DType dtype = DType::i64);
  /// Standard normal samples from `gen` (the default generator when null).
  static Tensor randn(const Shape& shape, DType dtype = DType::f32, Generator* gen = nullptr);
  /// Uniform samples in [0, 1).
  static Tensor rand(const Shape& shape, DType dtype = DType::f32, Generator* gen = nullptr);
  /// Copies `values` into a new tensor of `shape` (1-D when shape is empty).
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape = {});
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape = {});
  static Tensor from_vector(const std::vector<int64_t>& values, const Shape& shape = {});
  /// A 0-dim tensor.
  static Tensor scalar(double value, DType dtype = DType::f32);

  // ---- metadata --------------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  /// Size of one dim; negative dims count from the end.
  int64_t size(int64_t dim) const;
  int64_t numel() const { return impl().numel(); }
  DType dtype() const { return impl().dtype; }
  bool is_contiguous() const;
  /// Pointer to element [0, 0, ...] (storage + offset). T must match dtype().
  template <class T>
  T* data_ptr() const;
  void* raw_data_ptr() const;
  TensorImpl* unsafe_impl() const { return impl_.get(); }
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
  Tensor to(DType dtype) const;
  Tensor contiguous() const;
  Tensor clone() const;
  /// Shares storage, but is cut from the graph: requires_grad false, no grad_fn.
  Tensor detach() const;

  // ---- views (differentiable; share storage) ---------------------------------------------------
  /// One size may be -1. view requires compatible strides; reshape copies only when it must.
  Tensor view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  /// Elements start, start+step, ... < end along dim. Negative and out-of-range bounds clamp.
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  /// Broadcasts size-1 dims (and new leading dims) to `shape`; -1 keeps a size.
  Tensor expand(const Shape& shape) const;
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;

  // ---- in-place writes (not recorded by autograd: use under NoGradGuard on parameters) ---------
  Tensor& copy_(const Tensor& src);  // src broadcasts to this shape; dtypes convert
  Tensor& fill_(double value);
  Tensor& zero_();
  Tensor& add_(const Tensor& other, double alpha = 1);  // this += alpha * other
  Tensor& mul_(double value);
  Tensor& mul_(const Tensor& other);

  // ---- common ops as methods (free functions in namespace kiln; see autograd/ops.h) ------------
  Tensor sum(const std::vector<int64_t>& dims = {}, bool keepdim = false) const;
  Tensor mean(const std::vector<int64_t>& dims = {}, bool keepdim = false) const;
  Tensor max(const std::vector<int64_t>& dims = {}, bool keepdim = false) const;
  Tensor min(const std::vector<int64_t>& dims = {}, bool keepdim = false) const;
  Tensor var(const std::vector<int64_t>& dims = {}, int64_t correction = 1, bool keepdim = false) const;
  Tensor argmax(int64_t dim, bool keepdim = false) const;
  Tensor neg() const;
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor rsqrt() const;
  Tensor abs() const;
  Tensor pow(double exponent) const;
  Tensor relu() const;
  Tensor sigmoid() const;
  Tensor tanh() const;
  Tensor clamp(double min, double max) const;
  Tensor matmul(const Tensor& other) const;

  // ---- autograd --------------------------------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  /// Marks a leaf as needing a gradient. Returns *this, so `Tensor::randn(s).requires_grad_()`.
  Tensor& requires_grad_(bool requires_grad = true);
  /// The accumulated gradient; undefined until a backward reaches this tensor.
  Tensor grad() const;
  /// Replaces the gradient (an undefined tensor clears it).
  void set_grad(const Tensor& grad);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
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
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
Tensor operator-(const Tensor& a);

/// Prints like PyTorch: tensor([[1.0000, 2.0000], ...], dtype=f64, grad_fn=<MulBackward>).
std::ostream& operator<<(std::ostream& out, const Tensor& t);
std::ostream& operator<<(std::ostream& out, DType dtype);

// ---- template definitions ----------------------------------------------------------------------

template <class T>
T* Tensor::data_ptr() const {
  KILN_CHECK(dtype_of<T>() == dtype(), "data_ptr: the tensor is ", dtype_name(dtype()),
             ", but data_ptr<", dtype_name(dtype_of<T>()), "> was asked for");
  return static_cast<T*>(raw_data_ptr());
}

}  // namespace kiln
