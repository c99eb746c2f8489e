// Differentiable elementwise ops. Each Function's forward calls a core kernel; its backward states
// which forward expression it differentiates. Gradients of broadcast inputs are summed back to the
// input's shape (reduce_to).
#include <cmath>

#include <kiln/autograd/function.h>
#include <kiln/autograd/ops.h>
#include <kiln/core/elementwise.h>
#include <kiln/core/reduce.h>

namespace kiln {

namespace autograd::ops {

using kernels::Binary;
using kernels::Unary;
using Grads = std::vector<Tensor>;

// The gradient of a broadcast input: sum over the broadcast dims, back to `shape`.
Tensor reduce_to(const Tensor& g, const Shape& shape) { return kernels::sum_to(g, shape); }

struct Add : Function<Add> {
  static Tensor forward(Context& ctx, const Tensor& a, const Tensor& b) {
    ctx.saved_data["shapes"] = std::pair(a.shape(), b.shape());
    return kernels::binary(Binary::add, a, b);
  }
  // y = a + b:  dy/da = 1, dy/db = 1
  static Grads backward(Context& ctx, const Grads& g) {
    auto [sa, sb] = std::any_cast<std::pair<Shape, Shape>>(ctx.saved_data["shapes"]);
    return {ctx.needs_input_grad(0) ? reduce_to(g[0], sa) : Tensor(),
            ctx.needs_input_grad(1) ? reduce_to(g[0], sb) : Tensor()};
  }
};

struct Sub : Function<Sub> {
  static Tensor forward(Context& ctx, const Tensor& a, const Tensor& b) {
    ctx.saved_data["shapes"] = std::pair(a.shape(), b.shape());
    return kernels::binary(Binary::sub, a, b);
  }
  // y = a - b:  dy/da = 1, dy/db = -1
  static Grads backward(Context& ctx, const Grads& g) {
    auto [sa, sb] = std::any_cast<std::pair<Shape, Shape>>(ctx.saved_data["shapes"]);
    return {ctx.needs_input_grad(0) ? reduce_to(g[0], sa) : Tensor(),
            ctx.needs_input_grad(1) ? reduce_to(kernels::unary(Unary::neg, g[0]), sb) : Tensor()};
  }
};

struct Mul : Function<Mul> {
  static Tensor forward(Context& ctx, const Tensor& a, const Tensor& b) {
    ctx.save_for_backward({a, b});
    return kernels::binary(Binary::mul, a, b);
  }
  // y = a * b:  dy/da = b, dy/db = a
  static Grads backward(Context& ctx, const Grads& g) {
    auto s = ctx.saved();
    return {ctx.needs_input_grad(0) ? reduce_to(kernels::binary(Binary::mul, g[0], s[1]), s[0].shape()) : Tensor(),
            ctx.needs_input_grad(1) ? reduce_to(kernels::binary(Binary::mul, g[0], s[0]), s[1].shape()) : Tensor()};
  }
};

struct Div : Function<Div> {
  static Tensor forward(Context& ctx, const Tensor& a, const Tensor& b) {
    ctx.save_for_backward({a, b});
    return kernels::binary(Binary::div, a, b);
  }
  // y = a / b:  dy/da = 1 / b, dy/db = -a / b^2
  static Grads backward(Context& ctx, const Grads& g) {
    auto s = ctx.saved();
    Tensor ga, gb;
    Tensor g_over_b = kernels::binary(Binary::div, g[0], s[1]);
    if (ctx.needs_input_grad(0)) ga = reduce_to(g_over_b, s[0].shape());
    if (ctx.needs_input_grad(1)) {
      Tensor t = kernels::binary(Binary::div, kernels::binary(Binary::mul, g_over_b, s[0]), s[1]);
      gb = reduce_to(kernels::unary(Unary::neg, t), s[1].shape());
    }
    return {ga, gb};
  }
};

// maximum/minimum: the gradient goes to the chosen input, half to each where they are equal.
template <bool kMax>
struct Extremum {
  static Tensor forward(Context& ctx, const Tensor& a, const Tensor& b) {
    ctx.save_for_backward({a, b});
    return kernels::binary(kMax ? Binary::maximum : Binary::minimum, a, b);
  }
  static Grads backward(Context& ctx, const Grads& g) {
    auto s = ctx.saved();
    // weight_a = [a > b] + 0.5 [a == b]  (a < b for minimum)
    Tensor wins = kernels::binary(kMax ? Binary::gt : Binary::lt, s[0], s[1]);
    Tensor ties = kernels::binary_scalar(Binary::mul, kernels::binary(Binary::eq, s[0], s[1]), 0.5);
    Tensor wa = kernels::binary(Binary::add, wins, ties);
    Tensor wb = kernels::binary_scalar(Binary::sub, kernels::unary(Unary::neg, wa), -1.0);
    return {ctx.needs_input_grad(0) ? reduce_to(kernels::binary(Binary::mul, g[0], wa), s[0].shape()) : Tensor(),
            ctx.needs_input_grad(1) ? reduce_to(kernels::binary(Binary::mul, g[0], wb), s[1].shape()) : Tensor()};
  }
};
struct Maximum : Extremum<true>, Function<Maximum> {};
struct Minimum : Extremum<false>, Function<Minimum> {};

struct PowScalar : Function<PowScalar> {
  static Tensor forward(Context& ctx, const Tensor& a, double p) {
    ctx.save_for_backward({a});
    ctx.saved_data["p"] = p;
    return kernels::binary_scalar(Binary::pow, a, p);
  }
  // y = a^p:  dy/da = p a^(p-1)
  static Grads backward(Context& ctx, const Grads& g) {
    double p = std::any_cast<double>(ctx.saved_data["p"]);
    Tensor a = ctx.saved()[0];
    if (p == 0) return {kernels::binary_scalar(Binary::mul, g[0], 0.0), Tensor()};
    Tensor d = kernels::binary_scalar(Binary::mul, kernels::binary_scalar(Binary::pow, a, p - 1), p);
    return {kernels::binary(Binary::mul, g[0], d)};
  }
};

struct PowTensor : Function<PowTensor> {
  static Tensor forward(Context& ctx, const Tensor& a, const Tensor& b) {
    Tensor y = kernels::binary(Binary::pow, a, b);
    ctx.save_for_backward({a, b, y});
    return y;
  }
  // y = a^b:  dy/da = b a^(b-1)  (0 where b == 0, so 0^0 gives 0 rather than 0 * inf),
  //           dy/db = y log(a)   (0 where a == 0 and b >= 0), both as PyTorch.
  static Grads backward(Context& ctx, const Grads& g) {
    auto s = ctx.saved();
    Tensor ga, gb;
    const Tensor zero = Tensor::scalar(0, s[2].dtype());
    if (ctx.needs_input_grad(0)) {
      Tensor d = kernels::binary(Binary::mul, s[1],
                                 kernels::binary(Binary::pow, s[0], kernels::binary_scalar(Binary::sub, s[1], 1)));
      d = kernels::where(kernels::binary_scalar(Binary::eq, s[1], 0), zero, d);
      ga = reduce_to(kernels::binary(Binary::mul, g[0], d), s[0].shape());
    }
    if (ctx.needs_input_grad(1)) {
      Tensor skip = kernels::binary(Binary::mul, kernels::binary_scalar(Binary::eq, s[0], 0),
                                    kernels::binary_scalar(Binary::ge, s[1], 0));
      Tensor d = kernels::where(skip, zero, kernels::binary(Binary::mul, s[2], kernels::unary(Unary::log, s[0])));
      gb = reduce_to(kernels::binary(Binary::mul, g[0], d), s[1].shape());
    }
    return {ga, gb};
  }
};

struct AddScalar : Function<AddScalar> {
  static Tensor forward(Context&, const Tensor& a, double s) { return kernels::binary_scalar(Binary::add, a, s); }
  // y = a + s:  dy/da = 1
  static Grads backward(Context&, const Grads& g) { return {g[0]}; }
};

struct MulScalar : Function<MulScalar> {
  static Tensor forward(Context& ctx, const Tensor& a, double s) {
    ctx.saved_data["s"] = s;
    return kernels::binary_scalar(Binary::mul, a, s);
  }
  // y = a * s:  dy/da = s
  static Grads backward(Context& ctx, const Grads& g) {
    return {kernels::binary_scalar(Binary::mul, g[0], std::any_cast<double>(ctx.saved_data["s"]))};
  }
};

struct DivScalar : Function<DivScalar> {
  static Tensor forward(Context& ctx, const Tensor& a, double s) {
    ctx.saved_data["s"] = s;
    return kernels::binary_scalar(Binary::div, a, s);
  }
  // y = a / s:  dy/da = 1 / s
  static Grads backward(Context& ctx, const Grads& g) {
    return {kernels::binary_scalar(Binary::div, g[0], std::any_cast<double>(ctx.saved_data["s"]))};
  }
};

struct ScalarDiv : Function<ScalarDiv> {
  static Tensor forward(Context& ctx, double s, const Tensor& a) {
    Tensor y = kernels::binary(Binary::div, Tensor::scalar(s, a.dtype()), a);
    ctx.save_for_backward({a, y});
    return y;
  }
  // y = s / a:  dy/da = -s / a^2 = -y / a
  static Grads backward(Context& ctx, const Grads& g) {
    auto s = ctx.saved();
    Tensor d = kernels::unary(Unary::neg, kernels::binary(Binary::div, s[1], s[0]));
    return {Tensor(), kernels::binary(Binary::mul, g[0], d)};
  }
};

// Unary ops whose derivative is a function of the input x or the output y.
struct Neg : Function<Neg> {
  static Tensor forward(Context&, const Tensor& a) { return kernels::unary(Unary::neg, a); }
  static Grads backward(Context&, const Grads& g) { return {kernels::unary(Unary::neg, g[0])}; }
};

struct Exp : Function<Exp> {
  static Tensor forward(Context& ctx, const Tensor& a) {
    Tensor y = kernels::unary(Unary::exp, a);
    ctx.save_for_backward({y});
    return y;
  }
  // dy/dx = exp(x) = y
  static Grads backward(Context& ctx, const Grads& g) {
    return {kernels::binary(Binary::mul, g[0], ctx.saved()[0])};
  }
};

struct Log : Function<Log> {
  static Tensor forward(Context& ctx, const Tensor& a) {
    ctx.save_for_backward({a});
    return kernels::unary(Unary::log, a);
  }
  // dy/dx = 1 / x
  static Grads backward(Context& ctx, const Grads& g) {
    return {kernels::binary(Binary::div, g[0], ctx.saved()[0])};
  }
};

struct Sqrt : Function<Sqrt> {
  static Tensor forward(Context& ctx, const Tensor& a) {
    Tensor y = kernels::unary(Unary::sqrt, a);
    ctx.save_for_backward({y});
    return y;
  }
  // dy/dx = 1 / (2 sqrt(x)) = 0.5 / y
  static Grads backward(Context& ctx, const Grads& g) {
    return {kernels::binary(Binary::div, kernels::binary_scalar(Binary::mul, g[0], 0.5), ctx.saved()[0])};
  }
};

struct Rsqrt : Function<Rsqrt> {
  static Tensor forward(Context& ctx, const Tensor& a) {
    Tensor y = kernels::unary(Unary::rsqrt, a);
    ctx.save_for_backward({y});
    return y;
  }
  // y = x^(-1/2):  dy/dx = -0.5 x^(-3/2) = -0.5 y^3
  static Grads backward(Context& ctx, const Grads& g) {
    Tensor y = ctx.saved()[0];
    Tensor y3 = kernels::binary(Binary::mul, kernels::unary(Unary::square, y), y);
    return {kernels::binary(Binary::mul, g[0], kernels::binary_scalar(Binary::mul, y3, -0.5))};
  }
};

struct Abs : Function<Abs> {
  static Tensor forward(Context& ctx, const Tensor& a) {
    ctx.save_for_backward({a});
    return kernels::unary(Unary::abs, a);
  }
  // dy/dx = sign(x)  (0 at 0, as PyTorch)
  static Grads backward(Context& ctx, const Grads& g) {
    return {kernels::binary(Binary::mul, g[0], kernels::unary(Unary::sign, ctx.saved()[0]))};
  }
};

struct Relu : Function<Relu> {
  static Tensor forward(Context& ctx, const Tensor& a) {
    Tensor y = kernels::unary(Unary::relu, a);
    ctx.save_for_backward({y});
    return y;
  }
  // dy/dx = [x > 0] = [y > 0]; like PyTorch's threshold_backward, dx = g where y > 0, else 0
  static Grads backward(Context& ctx, const Grads& g) {
    return {kernels::relu_backward(g[0], ctx.saved()[0])};
  }
};

struct Sigmoid : Function<Sigmoid> {
  static Tensor forward(Context& ctx, const Tensor& a) {
    Tensor y = kernels::unary(Unary::sigmoid, a);
    ctx.save_for_backward({y});
    return y;
  }
  // dy/dx = y (1 - y)
  static Grads backward(Context& ctx, const Grads& g) {
    Tensor y = ctx.saved()[0];
    Tensor one_minus_y = kernels::binary_scalar(Binary::add, kernels::unary(Unary::neg, y), 1);
    return {kernels::binary(Binary::mul, g[0], kernels::binary(Binary::mul, y, one_minus_y))};
  }
};

struct Tanh : Function<Tanh> {
  static Tensor forward(Context& ctx, const Tensor& a) {
    Tensor y = kernels::unary(Unary::tanh, a);
    ctx.save_for_backward({y});
    return y;
  }
  // dy/dx = 1 - y^2
  static Grads backward(Context& ctx, const Grads& g) {
    Tensor y2 = kernels::unary(Unary::square, ctx.saved()[0]);
    return {kernels::binary(Binary::mul, g[0], kernels::binary_scalar(Binary::add, kernels::unary(Unary::neg, y2), 1))};
  }
};

struct Clamp : Function<Clamp> {
  static Tensor forward(Context& ctx, const Tensor& a, double lo, double hi) {
    ctx.save_for_backward({a});
    ctx.saved_data["range"] = std::pair(lo, hi);
    return kernels::clamp(a, lo, hi);
  }
  // dy/dx = [lo <= x <= hi]
  static Grads backward(Context& ctx, const Grads& g) {
    auto [lo, hi] = std::any_cast<std::pair<double, double>>(ctx.saved_data["range"]);
    Tensor a = ctx.saved()[0];
    Tensor inside = kernels::binary(Binary::mul, kernels::binary_scalar(Binary::ge, a, lo),
                                    kernels::binary_scalar(Binary::le, a, hi));
    return {kernels::binary(Binary::mul, g[0], inside)};
  }
};

struct Where : Function<Where> {
  static Tensor forward(Context& ctx, const Tensor& cond, const Tensor& a, const Tensor& b) {
    ctx.save_for_backward({cond});
    ctx.saved_data["shapes"] = std::pair(a.shape(), b.shape());
    return kernels::where(cond, a, b);
  }
  // y = cond ? a : b:  dy/da = [cond], dy/db = [!cond]
  static Grads backward(Context& ctx, const Grads& g) {
    auto [sa, sb] = std::any_cast<std::pair<Shape, Shape>>(ctx.saved_data["shapes"]);
    Tensor cond = ctx.saved()[0];
    Tensor zero = Tensor::scalar(0, g[0].dtype());
    return {Tensor(),
            ctx.needs_input_grad(1) ? reduce_to(kernels::where(cond, g[0], zero), sa) : Tensor(),
            ctx.needs_input_grad(2) ? reduce_to(kernels::where(cond, zero, g[0]), sb) : Tensor()};
  }
};

}  // namespace autograd::ops

using namespace autograd::ops;

Tensor add(const Tensor& a, const Tensor& b) { return Add::apply(a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return Sub::apply(a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return Mul::apply(a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return Div::apply(a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return Maximum::apply(a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return Minimum::apply(a, b); }
Tensor pow(const Tensor& a, double exponent) { return PowScalar::apply(a, exponent); }
Tensor pow(const Tensor& a, const Tensor& exponent) { return PowTensor::apply(a, exponent); }
Tensor neg(const Tensor& a) { return Neg::apply(a); }
Tensor exp(const Tensor& a) { return Exp::apply(a); }
Tensor log(const Tensor& a) { return Log::apply(a); }
Tensor sqrt(const Tensor& a) { return Sqrt::apply(a); }
Tensor rsqrt(const Tensor& a) { return Rsqrt::apply(a); }
Tensor abs(const Tensor& a) { return Abs::apply(a); }
Tensor relu(const Tensor& a) { return Relu::apply(a); }
Tensor sigmoid(const Tensor& a) { return Sigmoid::apply(a); }
Tensor tanh(const Tensor& a) { return Tanh::apply(a); }
Tensor clamp(const Tensor& a, double min, double max) { return Clamp::apply(a, min, max); }
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) { return Where::apply(cond, a, b); }

Tensor eq(const Tensor& a, const Tensor& b) { return kernels::binary(kernels::Binary::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return kernels::binary(kernels::Binary::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return kernels::binary(kernels::Binary::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return kernels::binary(kernels::Binary::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return kernels::binary(kernels::Binary::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return kernels::binary(kernels::Binary::ge, a, b); }

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return AddScalar::apply(a, b); }
Tensor operator-(const Tensor& a, double b) { return AddScalar::apply(a, -b); }
Tensor operator*(const Tensor& a, double b) { return MulScalar::apply(a, b); }
Tensor operator/(const Tensor& a, double b) { return DivScalar::apply(a, b); }
Tensor operator+(double a, const Tensor& b) { return AddScalar::apply(b, a); }
Tensor operator-(double a, const Tensor& b) { return AddScalar::apply(Neg::apply(b), a); }
Tensor operator*(double a, const Tensor& b) { return MulScalar::apply(b, a); }
Tensor operator/(double a, const Tensor& b) { return ScalarDiv::apply(a, b); }
Tensor operator-(const Tensor& a) { return Neg::apply(a); }

}  // namespace kiln
