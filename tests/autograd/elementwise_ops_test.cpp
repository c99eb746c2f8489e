// Gradients of the elementwise ops (autograd/elementwise_ops.cpp): gradcheck in f64 on plain,
// broadcast, non-contiguous and view inputs, plus the exact gradients at kinks and ties.
#include <cmath>
#include <limits>

#include "../test_util.h"

using namespace kiln;
using kiln::test::Fn;
using kiln::test::gradcheck_layouts;

namespace {
Tensor input(const Shape& shape, uint64_t seed) { return test::randn(shape, seed).requires_grad_(); }
Tensor positive(const Shape& shape, uint64_t seed) {
  return test::uniform(shape, 0.5, 2.0, seed).requires_grad_();
}
std::vector<double> grad_of(const Tensor& t) { return t.grad().to_vector<double>(); }

struct BinaryOp {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  bool positive_b;  // b must be positive (a divisor or an exponent's base)
};

std::vector<BinaryOp> binary_ops() {
  return {
      {"add", [](const Tensor& a, const Tensor& b) { return a + b; }, false},
      {"add()", [](const Tensor& a, const Tensor& b) { return add(a, b); }, false},
      {"sub", [](const Tensor& a, const Tensor& b) { return a - b; }, false},
      {"sub()", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, false},
      {"mul", [](const Tensor& a, const Tensor& b) { return a * b; }, false},
      {"mul()", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, false},
      {"div", [](const Tensor& a, const Tensor& b) { return a / b; }, true},
      {"div()", [](const Tensor& a, const Tensor& b) { return div(a, b); }, true},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }, false},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }, false},
      // b^a: b is the base (positive), a the exponent.
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(b, a); }, true},
  };
}
}  // namespace

TEST_CASE("binary ops pass gradcheck on same-shape, broadcast and non-contiguous inputs", "[ops][elementwise]") {
  struct Shapes { Shape a, b; };
  const std::vector<Shapes> shapes = {{{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{3, 1}, {1, 4}},
                                      {{2, 3}, {}}, {{}, {2, 3}}, {{2, 1, 3}, {4, 1}}};
  for (const BinaryOp& c : binary_ops()) {
    for (size_t i = 0; i < shapes.size(); ++i) {
      INFO(c.name << " " << shape_str(shapes[i].a) << " with " << shape_str(shapes[i].b));
      Tensor a = input(shapes[i].a, 100 + i);
      Tensor b = c.positive_b ? positive(shapes[i].b, 200 + i) : input(shapes[i].b, 200 + i);
      gradcheck_layouts([&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); }, {a, b});
      // Only one side requiring grad.
      CHECK(autograd::gradcheck([&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); },
                                {a, b.detach()}));
      CHECK(autograd::gradcheck([&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); },
                                {a.detach(), b}));
    }
  }
}

TEST_CASE("binary ops pass gradcheck on view inputs", "[ops][elementwise]") {
  // The leaf is viewed (transposed, sliced with a step, expanded) before the op.
  Tensor a = input({4, 3}, 1);
  Tensor b = positive({3, 8}, 2);
  for (const BinaryOp& c : binary_ops()) {
    INFO(c.name);
    CHECK(autograd::gradcheck(
        [&](const std::vector<Tensor>& in) {
          return c.op(in[0].transpose(0, 1), in[1].slice(1, 1, 8, 2));
        },
        {a, b}));
    CHECK(autograd::gradcheck(
        [&](const std::vector<Tensor>& in) {
          return c.op(in[0].slice(0, 0, 1).expand({2, 3}), in[1].slice(1, 0, 1).view({1, 3}));
        },
        {a, b}));
  }
}

TEST_CASE("unary ops pass gradcheck, contiguous or not, and on views", "[ops][elementwise]") {
  struct UnaryOp {
    const char* name;
    std::function<Tensor(const Tensor&)> op;
    bool positive;
  };
  const std::vector<UnaryOp> ops = {
      {"neg", [](const Tensor& x) { return x.neg(); }, false},
      {"neg()", [](const Tensor& x) { return neg(x); }, false},
      {"unary -", [](const Tensor& x) { return -x; }, false},
      {"exp", [](const Tensor& x) { return x.exp(); }, false},
      {"log", [](const Tensor& x) { return x.log(); }, true},
      {"sqrt", [](const Tensor& x) { return x.sqrt(); }, true},
      {"rsqrt", [](const Tensor& x) { return x.rsqrt(); }, true},
      {"abs", [](const Tensor& x) { return x.abs(); }, false},
      {"relu", [](const Tensor& x) { return x.relu(); }, false},
      {"sigmoid", [](const Tensor& x) { return x.sigmoid(); }, false},
      {"tanh", [](const Tensor& x) { return x.tanh(); }, false},
      {"clamp", [](const Tensor& x) { return x.clamp(-0.5, 0.7); }, false},
      {"pow 2", [](const Tensor& x) { return x.pow(2); }, false},
      {"pow 3", [](const Tensor& x) { return pow(x, 3.0); }, false},
      {"pow -1.5", [](const Tensor& x) { return x.pow(-1.5); }, true},
      {"pow 0", [](const Tensor& x) { return x.pow(0); }, false},
      {"+ s", [](const Tensor& x) { return x + 1.5; }, false},
      {"s +", [](const Tensor& x) { return 1.5 + x; }, false},
      {"- s", [](const Tensor& x) { return x - 2.0; }, false},
      {"s -", [](const Tensor& x) { return 2.0 - x; }, false},
      {"* s", [](const Tensor& x) { return x * -3.0; }, false},
      {"s *", [](const Tensor& x) { return -3.0 * x; }, false},
      {"/ s", [](const Tensor& x) { return x / 4.0; }, false},
      {"s /", [](const Tensor& x) { return 4.0 / x; }, true},
  };
  for (const UnaryOp& c : ops) {
    INFO(c.name);
    Tensor x = c.positive ? positive({3, 5}, 3) : input({3, 5}, 3);
    gradcheck_layouts([&](const std::vector<Tensor>& in) { return c.op(in[0]); }, {x});
    CHECK(autograd::gradcheck(
        [&](const std::vector<Tensor>& in) { return c.op(in[0].transpose(0, 1).slice(0, 0, 5, 2)); }, {x}));
    CHECK(autograd::gradcheck([&](const std::vector<Tensor>& in) { return c.op(in[0]); },
                              {c.positive ? positive({}, 4) : input({}, 4)}));  // 0-dim
  }
}

TEST_CASE("where passes gradcheck and gives the condition no gradient", "[ops][elementwise]") {
  Tensor cond = Tensor::from_vector(std::vector<double>{1, 0, 0, 1}, {4});
  Tensor a = input({3, 4}, 5), b = input({3, 1}, 6);
  gradcheck_layouts([&](const std::vector<Tensor>& in) { return where(cond, in[0], in[1]); }, {a, b});
  Tensor c = cond.clone().requires_grad_();
  where(c, a, b).sum().backward();
  CHECK_FALSE(c.grad().defined());
  CHECK(grad_of(a) == std::vector<double>{1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1});
  CHECK(grad_of(b) == std::vector<double>{2, 2, 2});
}

TEST_CASE("maximum and minimum split the gradient evenly at ties", "[ops][elementwise]") {
  Tensor a = Tensor::from_vector(std::vector<double>{1, 2, 3}).requires_grad_();
  Tensor b = Tensor::from_vector(std::vector<double>{1, 0, 5}).requires_grad_();
  maximum(a, b).sum().backward();
  CHECK(grad_of(a) == std::vector<double>{0.5, 1, 0});
  CHECK(grad_of(b) == std::vector<double>{0.5, 0, 1});
  a.set_grad(Tensor());
  b.set_grad(Tensor());
  minimum(a, b).sum().backward();
  CHECK(grad_of(a) == std::vector<double>{0.5, 0, 1});
  CHECK(grad_of(b) == std::vector<double>{0.5, 1, 0});
  // A broadcast operand sums its shares.
  Tensor s = Tensor::scalar(2, DType::f64).requires_grad_();
  maximum(a.detach(), s).sum().backward();
  CHECK(s.grad().item<double>() == 1.5);
}

TEST_CASE("gradients at kinks follow PyTorch", "[ops][elementwise]") {
  Tensor x = Tensor::from_vector(std::vector<double>{-1, 0, 2}).requires_grad_();
  x.abs().sum().backward();
  CHECK(grad_of(x) == std::vector<double>{-1, 0, 1});  // sign(0) = 0
  x.set_grad(Tensor());
  x.relu().sum().backward();
  CHECK(grad_of(x) == std::vector<double>{0, 0, 1});
  x.set_grad(Tensor());
  x.clamp(0, 2).sum().backward();
  CHECK(grad_of(x) == std::vector<double>{0, 1, 1});  // the bounds pass the gradient
  x.set_grad(Tensor());
  x.pow(0).sum().backward();
  CHECK(grad_of(x) == std::vector<double>{0, 0, 0});
  x.set_grad(Tensor());
  x.pow(1).sum().backward();
  CHECK(grad_of(x) == std::vector<double>{1, 1, 1});
}

TEST_CASE("relu's gradient is PyTorch's threshold_backward", "[ops][elementwise]") {
  // Where the unit is off (y <= 0) the gradient is +0 whatever arrives, NaN and inf included;
  // where it is on, the incoming gradient passes unchanged, NaN included. (torch.relu gives
  // [0, 0, nan, 0, -2] with no negative zero for these.)
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(dtype_name(dtype));
    Tensor x = Tensor::from_vector(std::vector<double>{-1, 0, 2, -3, 4}).to(dtype).requires_grad_();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    x.relu().backward(Tensor::from_vector(std::vector<double>{nan, inf, nan, -5, -2}).to(dtype));
    const std::vector<double> g = x.grad().to(DType::f64).to_vector<double>();
    for (int i : {0, 1, 3}) {
      CHECK(g[i] == 0);
      CHECK_FALSE(std::signbit(g[i]));
    }
    CHECK(std::isnan(g[2]));
    CHECK(g[4] == -2);
  }
}

TEST_CASE("pow(tensor, tensor) at a zero base follows PyTorch", "[ops][elementwise]") {
  // d(b^e)/db = e b^(e-1), 0 where e == 0;  d(b^e)/de = b^e log b, 0 where b == 0 and e >= 0.
  Tensor b = Tensor::from_vector(std::vector<double>{0, 1, 2, 0}).requires_grad_();
  Tensor e = Tensor::from_vector(std::vector<double>{0, 2, 0, 3}).requires_grad_();
  pow(b, e).sum().backward();
  test::require_close(b.grad(), {0, 2, 0, 0});
  test::require_close(e.grad(), {0, 0, std::log(2.0), 0});
}

TEST_CASE("mixed-dtype ops differentiate the f64 input", "[ops][elementwise][dtype]") {
  Tensor c32 = Tensor::from_vector(std::vector<float>{0.5f, -1.5f, 2.0f});
  Tensor x = input({2, 3}, 7);
  CHECK(autograd::gradcheck([&](const std::vector<Tensor>& in) { return in[0] * c32 + c32; }, {x}));
  CHECK(autograd::gradcheck([&](const std::vector<Tensor>& in) { return in[0] / (c32 * c32); }, {x}));
}

TEST_CASE("f32 gradients agree with f64 gradients", "[ops][elementwise]") {
  Tensor x64 = input({4, 5}, 8);
  Tensor x32 = x64.detach().to(DType::f32).requires_grad_();
  auto f = [](const Tensor& x) { return (x.sigmoid() * x.tanh() + (x * x + 1.0).sqrt().log()).sum(); };
  f(x64).backward();
  f(x32).backward();
  CHECK(x32.grad().dtype() == DType::f32);
  test::require_close(x32.grad(), x64.grad(), 1e-5, 1e-6);
}
