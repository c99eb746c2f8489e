// Activations.
//
// 1. The math, elementwise (dy/dx is what backward multiplies the incoming gradient by):
//    ReLU       y = max(x, 0)                             dy/dx = [x > 0]
//    LeakyReLU  y = x if x > 0 else a x                   dy/dx = 1 if x > 0 else a
//    GELU       y = x Phi(x),  Phi(x) = (1 + erf(x / sqrt(2))) / 2
//                                                         dy/dx = Phi(x) + x phi(x),
//                                                         phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
//    GELU tanh  y = x (1 + tanh(u)) / 2,  u = sqrt(2 / pi) (x + 0.044715 x^3)
//                                                         dy/dx = (1 + tanh u) / 2
//                                                           + x (1 - tanh^2 u) du/dx / 2,
//                                                         du/dx = sqrt(2 / pi) (1 + 3 * 0.044715 x^2)
//    SiLU       y = x s(x),  s(x) = 1 / (1 + exp(-x))     dy/dx = s(x) (1 + x (1 - s(x)))
//    Sigmoid    y = s(x)                                  dy/dx = y (1 - y)
//    Tanh       y = tanh(x)                               dy/dx = 1 - y^2
// ReLU, Sigmoid and Tanh are core ops (kiln::relu, sigmoid, tanh); the others have their kernels
// here. Every kernel is one pass over contiguous memory in fixed chunks.
#include <kiln/layers/activation.h>

#include <algorithm>
#include <cmath>

#include <kiln/autograd/function.h>
#include <kiln/autograd/ops.h>
#include <kiln/core/parallel.h>
#include <kiln/core/views.h>
#include <kiln/layers/repr.h>

namespace kiln::kernels {

namespace {

constexpr int64_t kGrain = 1 << 14;
constexpr double kSqrt1_2 = 0.70710678118654752440;      // 1 / sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1 / sqrt(2 pi)
constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2 / pi)
constexpr double kGeluCubic = 0.044715;

// y[i] = f(x[i]) for a floating x; `op` names the caller in dtype errors.
template <class F>
Tensor map_unary(const Tensor& x_in, const char* op, F&& f) {
  Tensor x = kernels::contiguous(x_in);
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), op, [&]<class T>() {
    const T* px = x.data_ptr<T>();
    T* py = y.data_ptr<T>();
    parallel_for(0, x.numel(), kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) py[i] = f(px[i]);
    });
  });
  return y;
}

// grad_x[i] = grad_y[i] * d(x[i]), with d the local derivative.
template <class D>
Tensor map_backward(const Tensor& grad_y, const Tensor& x_in, const char* op, D&& d) {
  Tensor g = kernels::contiguous(grad_y);
  Tensor x = kernels::contiguous(x_in);
  Tensor grad_x = Tensor::empty(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), op, [&]<class T>() {
    const T* pg = g.data_ptr<T>();
    const T* px = x.data_ptr<T>();
    T* out = grad_x.data_ptr<T>();
    parallel_for(0, x.numel(), kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) out[i] = pg[i] * d(px[i]);
    });
  });
  return grad_x;
}

}  // namespace

// 2-3. Forward and backward kernels, pair by pair.

Tensor leaky_relu_forward(const Tensor& x, double negative_slope) {
  return map_unary(x, "leaky_relu", [negative_slope]<class T>(T v) {
    return v > T(0) ? v : v * static_cast<T>(negative_slope);
  });
}

Tensor leaky_relu_backward(const Tensor& grad_y, const Tensor& x, double negative_slope) {
  return map_backward(grad_y, x, "leaky_relu", [negative_slope]<class T>(T v) {
    return v > T(0) ? T(1) : static_cast<T>(negative_slope);
  });
}

Tensor gelu_forward(const Tensor& x, nn::GeluApproximation approximate) {
  if (approximate == nn::GeluApproximation::tanh) {
    return map_unary(x, "gelu", []<class T>(T v) {
      // y = x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2
      const T u = T(kSqrt2OverPi) * (v + T(kGeluCubic) * v * v * v);
      return T(0.5) * v * (T(1) + std::tanh(u));
    });
  }
  return map_unary(x, "gelu", []<class T>(T v) {
    // y = x (1 + erf(x / sqrt(2))) / 2
    return T(0.5) * v * (T(1) + std::erf(v * T(kSqrt1_2)));
  });
}

Tensor gelu_backward(const Tensor& grad_y, const Tensor& x, nn::GeluApproximation approximate) {
  if (approximate == nn::GeluApproximation::tanh) {
    return map_backward(grad_y, x, "gelu", []<class T>(T v) {
      const T u = T(kSqrt2OverPi) * (v + T(kGeluCubic) * v * v * v);
      const T t = std::tanh(u);
      const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluCubic) * v * v);
      // d/dx [x (1 + tanh u) / 2] = (1 + tanh u) / 2 + x (1 - tanh^2 u) du/dx / 2
      return T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * du;
    });
  }
  return map_backward(grad_y, x, "gelu", []<class T>(T v) {
    // d/dx [x Phi(x)] = Phi(x) + x phi(x)
    const T cdf = T(0.5) * (T(1) + std::erf(v * T(kSqrt1_2)));
    const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * v * v);
    return cdf + v * pdf;
  });
}

Tensor silu_forward(const Tensor& x) {
  return map_unary(x, "silu", []<class T>(T v) {
    // y = x s(x)
    return v / (T(1) + std::exp(-v));
  });
}

Tensor silu_backward(const Tensor& grad_y, const Tensor& x) {
  return map_backward(grad_y, x, "silu", []<class T>(T v) {
    // d/dx [x s(x)] = s(x) (1 + x (1 - s(x)))
    const T s = T(1) / (T(1) + std::exp(-v));
    return s * (T(1) + v * (T(1) - s));
  });
}

}  // namespace kiln::kernels

namespace kiln::nn {

namespace functional {

namespace {

// 4. The differentiable functions (grad_fn: LeakyReluBackward, GeluBackward, SiluBackward).
struct LeakyRelu : autograd::Function<LeakyRelu> {
  static Tensor forward(autograd::Context& ctx, const Tensor& x, double negative_slope) {
    ctx.save_for_backward({x});
    ctx.saved_data["negative_slope"] = negative_slope;
    return kernels::leaky_relu_forward(x, negative_slope);
  }
  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& g) {
    return {kernels::leaky_relu_backward(g[0], ctx.saved()[0],
                                         std::any_cast<double>(ctx.saved_data["negative_slope"]))};
  }
};

struct Gelu : autograd::Function<Gelu> {
  static Tensor forward(autograd::Context& ctx, const Tensor& x, GeluApproximation approximate) {
    ctx.save_for_backward({x});
    ctx.saved_data["approximate"] = approximate;
    return kernels::gelu_forward(x, approximate);
  }
  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& g) {
    return {kernels::gelu_backward(g[0], ctx.saved()[0],
                                   std::any_cast<GeluApproximation>(ctx.saved_data["approximate"]))};
  }
};

struct Silu : autograd::Function<Silu> {
  static Tensor forward(autograd::Context& ctx, const Tensor& x) {
    ctx.save_for_backward({x});
    return kernels::silu_forward(x);
  }
  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& g) {
    return {kernels::silu_backward(g[0], ctx.saved()[0])};
  }
};

void check_input(const Tensor& x, const char* op) {
  KILN_CHECK(x.defined(), op, ": the input is undefined");
  KILN_CHECK(is_floating(x.dtype()), op, ": expected a floating input (f32 or f64), got ",
             dtype_name(x.dtype()), " of shape ", x.shape());
}

}  // namespace

Tensor relu(const Tensor& x) {
  check_input(x, "relu");
  return kiln::relu(x);
}

Tensor leaky_relu(const Tensor& x, double negative_slope) {
  check_input(x, "leaky_relu");
  return LeakyRelu::apply(x, negative_slope);
}

Tensor gelu(const Tensor& x, GeluApproximation approximate) {
  check_input(x, "gelu");
  return Gelu::apply(x, approximate);
}

Tensor silu(const Tensor& x) {
  check_input(x, "silu");
  return Silu::apply(x);
}

}  // namespace functional

// 5. The Modules.
Tensor ReLU::forward(const Tensor& x) { return functional::relu(x); }

Tensor LeakyReLU::forward(const Tensor& x) { return functional::leaky_relu(x, negative_slope); }
std::string LeakyReLU::extra_repr() const { return "negative_slope=" + repr_float(negative_slope); }

Tensor GELU::forward(const Tensor& x) { return functional::gelu(x, approximate); }
std::string GELU::extra_repr() const {
  return approximate == GeluApproximation::tanh ? "approximate='tanh'" : "approximate='none'";
}

Tensor SiLU::forward(const Tensor& x) { return functional::silu(x); }

Tensor Sigmoid::forward(const Tensor& x) {
  functional::check_input(x, "Sigmoid");
  return kiln::sigmoid(x);
}

Tensor Tanh::forward(const Tensor& x) {
  functional::check_input(x, "Tanh");
  return kiln::tanh(x);
}

Tensor Identity::forward(const Tensor& x) { return x; }

Tensor Flatten::forward(const Tensor& x) {
  KILN_CHECK(x.defined(), "Flatten: the input is undefined");
  // dims d >= 0 need d + 1 dims; d < 0 needs -d
  auto needed = [](int64_t d) { return d >= 0 ? d + 1 : -d; };
  const int64_t min_dims = std::max(needed(start_dim), needed(end_dim));
  KILN_CHECK(std::max<int64_t>(x.dim(), 1) >= min_dims, "Flatten(start_dim=", start_dim,
             ", end_dim=", end_dim, "): expected an input with at least ", min_dims,
             " dims, got shape ", x.shape());
  return kiln::flatten(x, start_dim, end_dim);
}

std::string Flatten::extra_repr() const {
  return "start_dim=" + std::to_string(start_dim) + ", end_dim=" + std::to_string(end_dim);
}

}  // namespace kiln::nn
