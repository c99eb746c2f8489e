// Linear layer.
//
// 1. The math. With the leading dims of x flattened into M rows:
//      x [M, in],  W [out, in],  b [out]
//      y[m, o] = sum_i x[m, i] W[o, i] + b[o]                    y = x W^T + b
//    Backward, given g = dL/dy [M, out]:
//      dL/dx[m, i] = sum_o g[m, o] W[o, i]                        grad_x = g W
//      dL/dW[o, i] = sum_m g[m, o] x[m, i]                        grad_W = g^T x
//      dL/db[o]    = sum_m g[m, o]                                grad_b = column sums of g
//    All three products are sgemm (dgemm in f64) calls.
#include <kiln/layers/linear.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <kiln/autograd/function.h>
#include <kiln/core/elementwise.h>
#include <kiln/core/linalg.h>
#include <kiln/core/parallel.h>
#include <kiln/core/views.h>
#include <kiln/layers/init.h>
#include <kiln/layers/repr.h>

namespace kiln::kernels {

namespace {
// BLAS wants leading dimensions >= 1 even when a matrix has no columns.
inline int64_t ld(int64_t n) { return std::max<int64_t>(n, 1); }
}  // namespace

// 2. Forward kernel.
Tensor linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const int64_t M = x.size(0), in = x.size(1), out = weight.size(0);
  Tensor y = Tensor::empty({M, out}, x.dtype());
  dispatch_floating(x.dtype(), "linear", [&]<class T>() {
    T* py = y.data_ptr<T>();
    T beta = 0;
    if (bias.defined()) {
      // y[m, :] = b, then y += x W^T
      const T* pb = bias.data_ptr<T>();
      parallel_for(0, M, grain_for(out), [&](int64_t m0, int64_t m1) {
        for (int64_t m = m0; m < m1; ++m) std::copy(pb, pb + out, py + m * out);
      });
      beta = 1;
    }
    // y = x W^T (+ y):  [M, in] x [in, out]
    gemm<T>(false, true, M, out, in, T(1), x.data_ptr<T>(), ld(in), weight.data_ptr<T>(), ld(in),
            beta, py, ld(out));
  });
  return y;
}

// 3. Backward kernel.
LinearGrads linear_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                            bool need_x, bool need_weight, bool need_bias) {
  const int64_t M = x.size(0), in = x.size(1), out = weight.size(0);
  LinearGrads grads;
  dispatch_floating(x.dtype(), "linear backward", [&]<class T>() {
    const T* pg = grad_y.data_ptr<T>();
    if (need_x) {
      // grad_x = g W:  [M, out] x [out, in]
      grads.grad_x = Tensor::zeros({M, in}, x.dtype());
      gemm<T>(false, false, M, in, out, T(1), pg, ld(out), weight.data_ptr<T>(), ld(in), T(0),
              grads.grad_x.data_ptr<T>(), ld(in));
    }
    if (need_weight) {
      // grad_W = g^T x:  [out, M] x [M, in]
      grads.grad_weight = Tensor::zeros({out, in}, x.dtype());
      gemm<T>(true, false, out, in, M, T(1), pg, ld(out), x.data_ptr<T>(), ld(in), T(0),
              grads.grad_weight.data_ptr<T>(), ld(in));
    }
    if (need_bias) {
      // grad_b[o] = sum_m g[m, o], accumulated in double down each column, fixed column chunks.
      grads.grad_bias = Tensor::empty({out}, x.dtype());
      T* pb = grads.grad_bias.data_ptr<T>();
      constexpr int64_t kColumns = 256;
      parallel_for(0, out, kColumns, [&](int64_t o0, int64_t o1) {
        std::vector<double> acc(static_cast<size_t>(o1 - o0), 0.0);
        for (int64_t m = 0; m < M; ++m) {
          const T* row = pg + m * out;
          for (int64_t o = o0; o < o1; ++o) acc[o - o0] += row[o];
        }
        for (int64_t o = o0; o < o1; ++o) pb[o] = static_cast<T>(acc[o - o0]);
      });
    }
  });
  return grads;
}

}  // namespace kiln::kernels

namespace kiln::nn {

namespace functional {

namespace {

// 4. The differentiable function (its grad_fn prints as LinearBackward).
struct Linear : autograd::Function<Linear> {
  static Tensor forward(autograd::Context& ctx, const Tensor& x, const Tensor& weight,
                        const Tensor& bias) {
    const int64_t in = weight.size(1), out = weight.size(0);
    // x [*, in] -> rows [M, in]
    Shape y_shape(x.shape().begin(), x.shape().end() - 1);
    const int64_t M = shape_numel(y_shape);
    y_shape.push_back(out);
    Tensor rows = kernels::view(kernels::contiguous(x), {M, in});
    Tensor w = kernels::contiguous(weight);
    Tensor y = kernels::linear_forward(rows, w, bias.defined() ? kernels::contiguous(bias) : bias);
    ctx.save_for_backward({rows, w});
    ctx.saved_data["x_shape"] = x.shape();
    return kernels::view(y, y_shape);
  }

  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& grads) {
    auto saved = ctx.saved();
    const Tensor& rows = saved[0];
    const Tensor& w = saved[1];
    Tensor g = kernels::view(kernels::contiguous(grads[0]), {rows.size(0), w.size(0)});
    kernels::LinearGrads r = kernels::linear_backward(
        g, rows, w, ctx.needs_input_grad(0), ctx.needs_input_grad(1), ctx.needs_input_grad(2));
    if (r.grad_x.defined())
      r.grad_x = kernels::view(r.grad_x, std::any_cast<Shape>(ctx.saved_data["x_shape"]));
    return {r.grad_x, r.grad_weight, r.grad_bias};
  }
};

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  KILN_CHECK(x.defined() && weight.defined(), "linear: the input and the weight must be defined");
  KILN_CHECK(weight.dim() == 2, "linear: expected a weight [out_features, in_features], got shape ",
             weight.shape());
  KILN_CHECK(x.dim() >= 1, "linear: expected an input [*, in_features], got a 0-dim tensor");
  KILN_CHECK(x.size(-1) == weight.size(1), "linear: the input's last dim is ", x.size(-1),
             " (shape ", x.shape(), "), but the weight ", weight.shape(), " expects in_features ",
             weight.size(1));
  KILN_CHECK(is_floating(x.dtype()), "linear: expected a floating input, got ",
             dtype_name(x.dtype()));
  KILN_CHECK(x.dtype() == weight.dtype(), "linear: the input is ", dtype_name(x.dtype()),
             " but the weight is ", dtype_name(weight.dtype()), "; convert one with .to()");
  if (bias.defined()) {
    KILN_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear: expected a bias [",
               weight.size(0), "] for the weight ", weight.shape(), ", got shape ", bias.shape());
    KILN_CHECK(bias.dtype() == x.dtype(), "linear: the bias is ", dtype_name(bias.dtype()),
               " but the input is ", dtype_name(x.dtype()));
  }
  return Linear::apply(x, weight, bias);
}

}  // namespace functional

// 5. The Module.
Linear::Linear(int64_t in_features, int64_t out_features, bool bias, DType dtype)
    : in_features(in_features), out_features(out_features) {
  KILN_CHECK(in_features >= 0 && out_features >= 0, "Linear: in_features and out_features must"
             " be non-negative, got ", in_features, " and ", out_features);
  KILN_CHECK(is_floating(dtype), "Linear: expected a floating dtype, got ", dtype_name(dtype));
  weight = register_parameter("weight", Tensor::empty({out_features, in_features}, dtype));
  this->bias = register_parameter("bias", bias ? Tensor::empty({out_features}, dtype) : Tensor());
  reset_parameters();
}

void Linear::reset_parameters(Generator* gen) {
  if (weight.numel() > 0) {
    init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::fan_in,
                           init::Nonlinearity::leaky_relu, gen);
  }
  if (bias.defined()) {
    // b = 1 / sqrt(fan_in), or 0 when there are no inputs
    const double bound = in_features > 0 ? 1.0 / std::sqrt(static_cast<double>(in_features)) : 0.0;
    init::uniform_(bias, -bound, bound, gen);
  }
}

Tensor Linear::forward(const Tensor& x) {
  KILN_CHECK(x.defined() && x.dim() >= 1, "Linear: expected an input [*, in_features=",
             in_features, "], got ", x.defined() ? "a 0-dim tensor" : "an undefined tensor");
  KILN_CHECK(x.size(-1) == in_features, "Linear: expected an input [*, in_features=", in_features,
             "], got shape ", x.shape(), " (its last dim is ", x.size(-1), ")");
  return functional::linear(x, weight, bias);
}

std::string Linear::extra_repr() const {
  return "in_features=" + std::to_string(in_features) + ", out_features=" +
         std::to_string(out_features) + ", bias=" + repr_bool(bias.defined());
}

}  // namespace kiln::nn
