#include <kiln/core/elementwise.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <kiln/core/strided_loop.h>
#include <kiln/core/views.h>

namespace kiln::kernels {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t ndim = std::max(a.size(), b.size());
  Shape out(ndim);
  for (size_t i = 0; i < ndim; ++i) {
    int64_t sa = i < ndim - a.size() ? 1 : a[i - (ndim - a.size())];
    int64_t sb = i < ndim - b.size() ? 1 : b[i - (ndim - b.size())];
    KILN_CHECK(sa == sb || sa == 1 || sb == 1, op, ": shapes ", a, " and ", b,
               " do not broadcast (dim ", i, " has sizes ", sa, " and ", sb, ")");
    out[i] = sa == 1 ? sb : sa;
  }
  return out;
}

DType result_type(const Tensor& a, const Tensor& b) {
  const bool a_zero = a.dim() == 0, b_zero = b.dim() == 0;
  if (a_zero == b_zero) return promote(a.dtype(), b.dtype());
  const DType dimensioned = a_zero ? b.dtype() : a.dtype();
  const DType zero_dim = a_zero ? a.dtype() : b.dtype();
  return is_floating(dimensioned) || !is_floating(zero_dim) ? dimensioned : zero_dim;
}

namespace {

// x^y for integers by repeated squaring (y >= 0; exact, unlike a trip through double).
inline int64_t integer_pow(int64_t x, int64_t y) {
  int64_t result = 1;
  while (y > 0) {
    if (y & 1) result *= x;
    x *= x;
    y >>= 1;
  }
  return result;
}

// Strides of `t` seen as a tensor of `shape` (t's shape must broadcast to it): 0 on broadcast dims.
Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape strides(shape.size(), 0);
  const size_t lead = shape.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i)
    strides[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return strides;
}

template <class T, class F>
void run_binary(const Tensor& out, const Tensor& a, const Tensor& b, F f) {
  T* po = out.data_ptr<T>();
  const T* pa = a.data_ptr<T>();
  const T* pb = b.data_ptr<T>();
  const Shape& shape = out.shape();
  auto layout = make_layout<3>(shape, {out.strides(), broadcast_strides(a, shape),
                                       broadcast_strides(b, shape)});
  parallel_strided_for(layout, [&](const std::array<int64_t, 3>& off, int64_t n,
                                   const std::array<int64_t, 3>& st) {
    T* o = po + off[0];
    const T* x = pa + off[1];
    const T* y = pb + off[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
      const T yv = *y;
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
    } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
      const T xv = *x;
      for (int64_t i = 0; i < n; ++i) o[i] = f(xv, y[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(x[i * st[1]], y[i * st[2]]);
    }
  });
}

template <class T>
void binary_typed(Binary op, const Tensor& out, const Tensor& a, const Tensor& b) {
  switch (op) {
    case Binary::add: return run_binary<T>(out, a, b, [](T x, T y) { return x + y; });
    case Binary::sub: return run_binary<T>(out, a, b, [](T x, T y) { return x - y; });
    case Binary::mul: return run_binary<T>(out, a, b, [](T x, T y) { return x * y; });
    case Binary::div: return run_binary<T>(out, a, b, [](T x, T y) { return x / y; });
    case Binary::maximum:
      return run_binary<T>(out, a, b, [](T x, T y) { return (x != x || x > y) ? x : y; });
    case Binary::minimum:
      return run_binary<T>(out, a, b, [](T x, T y) { return (x != x || x < y) ? x : y; });
    case Binary::pow:
      if constexpr (std::is_integral_v<T>) {
        return run_binary<T>(out, a, b, [](T x, T y) { return integer_pow(x, y); });
      } else {
        return run_binary<T>(out, a, b, [](T x, T y) { return std::pow(x, y); });
      }
    case Binary::eq: return run_binary<T>(out, a, b, [](T x, T y) { return T(x == y); });
    case Binary::ne: return run_binary<T>(out, a, b, [](T x, T y) { return T(x != y); });
    case Binary::lt: return run_binary<T>(out, a, b, [](T x, T y) { return T(x < y); });
    case Binary::le: return run_binary<T>(out, a, b, [](T x, T y) { return T(x <= y); });
    case Binary::gt: return run_binary<T>(out, a, b, [](T x, T y) { return T(x > y); });
    case Binary::ge: return run_binary<T>(out, a, b, [](T x, T y) { return T(x >= y); });
  }
}

const char* binary_name(Binary op) {
  switch (op) {
    case Binary::add: return "add";
    case Binary::sub: return "sub";
    case Binary::mul: return "mul";
    case Binary::div: return "div";
    case Binary::maximum: return "maximum";
    case Binary::minimum: return "minimum";
    case Binary::pow: return "pow";
    case Binary::eq: return "eq";
    case Binary::ne: return "ne";
    case Binary::lt: return "lt";
    case Binary::le: return "le";
    case Binary::gt: return "gt";
    case Binary::ge: return "ge";
  }
  return "binary";
}

template <class T, class F>
void run_unary(const Tensor& out, const Tensor& a, F f) {
  T* po = out.data_ptr<T>();
  const T* pa = a.data_ptr<T>();
  auto layout = make_layout<2>(out.shape(), {out.strides(), broadcast_strides(a, out.shape())});
  parallel_strided_for(layout, [&](const std::array<int64_t, 2>& off, int64_t n,
                                   const std::array<int64_t, 2>& st) {
    T* o = po + off[0];
    const T* x = pa + off[1];
    if (st[0] == 1 && st[1] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(x[i * st[1]]);
    }
  });
}

// out[i] = T(a[i]), a broadcast to out's shape.
template <class T, class S>
void run_convert(const Tensor& out, const Tensor& a) {
  T* po = out.data_ptr<T>();
  const S* pa = a.data_ptr<S>();
  auto layout = make_layout<2>(out.shape(), {out.strides(), broadcast_strides(a, out.shape())});
  parallel_strided_for(layout, [&](const std::array<int64_t, 2>& off, int64_t n,
                                   const std::array<int64_t, 2>& st) {
    T* o = po + off[0];
    const S* x = pa + off[1];
    if (st[0] == 1 && st[1] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(x[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = static_cast<T>(x[i * st[1]]);
    }
  });
}

template <class T>
void unary_typed(Unary op, const Tensor& out, const Tensor& a) {
  switch (op) {
    case Unary::neg: return run_unary<T>(out, a, [](T x) { return -x; });
    case Unary::abs: return run_unary<T>(out, a, [](T x) { return x < 0 ? -x : x; });
    case Unary::relu: return run_unary<T>(out, a, [](T x) { return x > 0 ? x : T(0); });
    case Unary::sign: return run_unary<T>(out, a, [](T x) { return T((x > 0) - (x < 0)); });
    case Unary::square: return run_unary<T>(out, a, [](T x) { return x * x; });
    default: break;
  }
  if constexpr (std::is_floating_point_v<T>) {
    switch (op) {
      case Unary::exp: return run_unary<T>(out, a, [](T x) { return std::exp(x); });
      case Unary::log: return run_unary<T>(out, a, [](T x) { return std::log(x); });
      case Unary::sqrt: return run_unary<T>(out, a, [](T x) { return std::sqrt(x); });
      case Unary::rsqrt: return run_unary<T>(out, a, [](T x) { return T(1) / std::sqrt(x); });
      case Unary::reciprocal: return run_unary<T>(out, a, [](T x) { return T(1) / x; });
      case Unary::tanh: return run_unary<T>(out, a, [](T x) { return std::tanh(x); });
      case Unary::sigmoid:
        return run_unary<T>(out, a, [](T x) { return T(1) / (T(1) + std::exp(-x)); });
      default: break;
    }
  }
  KILN_FAIL("unary: op ", static_cast<int>(op), " is not defined for ", dtype_name(dtype_of<T>()));
}

bool float_only(Unary op) {
  return !(op == Unary::neg || op == Unary::abs || op == Unary::relu || op == Unary::sign ||
           op == Unary::square);
}

}  // namespace

Tensor binary(Binary op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  DType dtype = result_type(a, b);
  if (dtype == DType::i64 && op == Binary::div) dtype = DType::f32;  // true division
  Tensor ac = to_dtype(a, dtype), bc = to_dtype(b, dtype);
  if (dtype == DType::i64 && op == Binary::pow) {
    const Tensor e = contiguous(bc);
    const int64_t* p = e.data_ptr<int64_t>();
    for (int64_t i = 0; i < e.numel(); ++i)
      KILN_CHECK(p[i] >= 0, "pow: integers to negative integer powers are not allowed (exponent ",
                 p[i], " at flat index ", i, " of shape ", b.shape(), "); convert to a floating dtype");
  }
  Tensor out = Tensor::empty(shape, dtype);
  dispatch(dtype, [&]<class T>() { binary_typed<T>(op, out, ac, bc); });
  return out;
}

Tensor binary_scalar(Binary op, const Tensor& a, double s) {
  DType dtype = a.dtype();
  const bool integral = std::fabs(s) < 9.2e18 && s == std::trunc(s);  // false for NaN and inf
  if (dtype == DType::i64 && (op == Binary::div || !integral)) dtype = DType::f32;
  return binary(op, to_dtype(a, dtype), Tensor::scalar(s, dtype));
}

Tensor relu_backward(const Tensor& grad_y, const Tensor& y) {
  KILN_CHECK(grad_y.shape() == y.shape() && grad_y.dtype() == y.dtype() &&
                 is_floating(y.dtype()),
             "relu backward: expected grad_y and y of one shape and floating dtype, got grad_y ",
             grad_y.shape(), " of ", dtype_name(grad_y.dtype()), " and y ", y.shape(), " of ",
             dtype_name(y.dtype()));
  Tensor out = Tensor::empty(y.shape(), y.dtype());
  dispatch_floating(y.dtype(), "relu backward", [&]<class T>() {
    // One pass, a select: the mask never exists as a tensor of its own.
    run_binary<T>(out, grad_y, y, [](T g, T v) { return v > T(0) ? g : T(0); });
  });
  return out;
}

Tensor unary(Unary op, const Tensor& a) {
  Tensor x = (a.dtype() == DType::i64 && float_only(op)) ? to_dtype(a, DType::f32) : a;
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  dispatch(x.dtype(), [&]<class T>() { unary_typed<T>(op, out, x); });
  return out;
}

Tensor clamp(const Tensor& a, double lo, double hi) {
  KILN_CHECK(!(lo > hi), "clamp: expected min <= max, got min ", lo, " and max ", hi);
  // Integer input with a fractional bound computes in f32, as PyTorch.
  auto integral = [](double v) { return std::isinf(v) || v == std::trunc(v); };
  if (a.dtype() == DType::i64 && !(integral(lo) && integral(hi)))
    return clamp(to_dtype(a, DType::f32), lo, hi);
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  dispatch(a.dtype(), [&]<class T>() {
    // Infinite bounds on integers mean no bound.
    auto bound = [](double v) {
      if constexpr (std::is_integral_v<T>) {
        if (v <= -9.2e18) return std::numeric_limits<T>::lowest();
        if (v >= 9.2e18) return std::numeric_limits<T>::max();
      }
      return static_cast<T>(v);
    };
    const T l = bound(lo), h = bound(hi);
    run_unary<T>(out, a, [l, h](T x) { return x < l ? l : (x > h ? h : x); });
  });
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(),
                                 "where");
  DType dtype = result_type(a, b);
  Tensor ac = to_dtype(a, dtype), bc = to_dtype(b, dtype);
  Tensor cc = to_dtype(cond, dtype);
  Tensor out = Tensor::empty(shape, dtype);
  dispatch(dtype, [&]<class T>() {
    T* po = out.data_ptr<T>();
    const T* pc = cc.data_ptr<T>();
    const T* pa = ac.data_ptr<T>();
    const T* pb = bc.data_ptr<T>();
    auto layout = make_layout<4>(shape, {out.strides(), broadcast_strides(cc, shape),
                                         broadcast_strides(ac, shape), broadcast_strides(bc, shape)});
    parallel_strided_for(layout, [&](const std::array<int64_t, 4>& off, int64_t n,
                                     const std::array<int64_t, 4>& st) {
      for (int64_t i = 0; i < n; ++i)
        po[off[0] + i * st[0]] = pc[off[1] + i * st[1]] != T(0) ? pa[off[2] + i * st[2]]
                                                                 : pb[off[3] + i * st[3]];
    });
  });
  return out;
}

void copy(const Tensor& dst, const Tensor& src) {
  Shape shape = broadcast_shapes(dst.shape(), src.shape(), "copy_");
  KILN_CHECK(shape == dst.shape(), "copy_: the source of shape ", src.shape(),
             " does not broadcast to the destination's shape ", dst.shape());
  // The conversion happens here, element by element (to_dtype itself copies through this loop).
  dispatch(dst.dtype(), [&]<class T>() {
    dispatch(src.dtype(), [&]<class S>() { run_convert<T, S>(dst, src); });
  });
}

void fill(const Tensor& dst, double value) {
  dispatch(dst.dtype(), [&]<class T>() {
    const T v = static_cast<T>(value);
    T* p = dst.data_ptr<T>();
    auto layout = make_layout<1>(dst.shape(), {dst.strides()});
    parallel_strided_for(layout, [&](const std::array<int64_t, 1>& off, int64_t n,
                                     const std::array<int64_t, 1>& st) {
      for (int64_t i = 0; i < n; ++i) p[off[0] + i * st[0]] = v;
    });
  });
}

void add_into(const Tensor& dst, const Tensor& src, double alpha) {
  Shape shape = broadcast_shapes(dst.shape(), src.shape(), "add_");
  KILN_CHECK(shape == dst.shape(), "add_: the source of shape ", src.shape(),
             " does not broadcast to the destination's shape ", dst.shape());
  Tensor s = to_dtype(src, dst.dtype());
  dispatch(dst.dtype(), [&]<class T>() {
    const T a = static_cast<T>(alpha);
    if (alpha == 1) {
      run_binary<T>(dst, dst, s, [](T x, T y) { return x + y; });
    } else {
      run_binary<T>(dst, dst, s, [a](T x, T y) { return x + a * y; });
    }
  });
}

void mul_into(const Tensor& dst, const Tensor& src) {
  Shape shape = broadcast_shapes(dst.shape(), src.shape(), "mul_");
  KILN_CHECK(shape == dst.shape(), "mul_: the source of shape ", src.shape(),
             " does not broadcast to the destination's shape ", dst.shape());
  Tensor s = to_dtype(src, dst.dtype());
  dispatch(dst.dtype(), [&]<class T>() { run_binary<T>(dst, dst, s, [](T x, T y) { return x * y; }); });
}

void scale_into(const Tensor& dst, double value) {
  dispatch(dst.dtype(), [&]<class T>() {
    const T v = static_cast<T>(value);
    run_unary<T>(dst, dst, [v](T x) { return x * v; });
  });
}

}  // namespace kiln::kernels
