// The custom-op API: autograd::Function<T> with a Context, non-tensor arguments, needs_input_grad,
// saved_data, multiple outputs, and the errors a wrong backward gets.
#include <cmath>

#include "../test_util.h"

using namespace kiln;
using autograd::Context;

namespace {

// y = scale * x^2 + b, where scale is a plain double between the tensors.
struct ScaledSquare : autograd::Function<ScaledSquare> {
  static inline int backward_calls = 0;
  static inline std::vector<bool> seen_needs;
  static Tensor forward(Context& ctx, const Tensor& x, double scale, const Tensor& b) {
    ctx.save_for_backward({x});
    ctx.saved_data["scale"] = scale;
    return x * x * scale + b;
  }
  // dy/dx = 2 scale x;  dy/db = 1 (summed back to b's shape)
  static std::vector<Tensor> backward(Context& ctx, const std::vector<Tensor>& grad) {
    ++backward_calls;
    seen_needs = {ctx.needs_input_grad(0), ctx.needs_input_grad(1), ctx.needs_input_grad(2)};
    const double scale = std::any_cast<double>(ctx.saved_data["scale"]);
    Tensor grad_x, grad_b;
    if (ctx.needs_input_grad(0)) grad_x = grad[0] * ctx.saved()[0] * (2 * scale);
    if (ctx.needs_input_grad(2)) grad_b = grad[0].sum({0}, true);
    return {grad_x, Tensor(), grad_b};  // one per argument, the double included
  }
};

// Splits x [N, 2] into its two columns and returns them with their product:
// (x[:, 0], x[:, 1], x[:, 0] * x[:, 1]).
struct SplitColumns : autograd::Function<SplitColumns> {
  static std::vector<Tensor> forward(Context& ctx, const Tensor& x) {
    Tensor a = x.slice(1, 0, 1).squeeze(1).contiguous(), b = x.slice(1, 1, 2).squeeze(1).contiguous();
    ctx.save_for_backward({a, b});
    return {a, b, a * b};
  }
  static std::vector<Tensor> backward(Context& ctx, const std::vector<Tensor>& grad) {
    auto s = ctx.saved();
    // d/da: grad[0] + grad[2] * b;  d/db: grad[1] + grad[2] * a
    return {stack({grad[0] + grad[2] * s[1], grad[1] + grad[2] * s[0]}, 1)};
  }
};

// y = x, returned as is; w (which needs a gradient) only makes the op recorded.
struct PassThrough : autograd::Function<PassThrough> {
  static Tensor forward(Context&, const Tensor&, const Tensor& x) { return x; }
  static std::vector<Tensor> backward(Context&, const std::vector<Tensor>& grad) {
    return {Tensor(), grad[0]};
  }
};

struct Identity : autograd::Function<Identity> {
  static Tensor forward(Context&, const Tensor& x) { return x; }
  static std::vector<Tensor> backward(Context&, const std::vector<Tensor>& grad) { return {grad[0]}; }
};

struct WrongCount : autograd::Function<WrongCount> {
  static Tensor forward(Context&, const Tensor& x) { return x * 2.0; }
  static std::vector<Tensor> backward(Context&, const std::vector<Tensor>& grad) { return {grad[0], grad[0], grad[0]}; }
};

struct WrongShape : autograd::Function<WrongShape> {
  static Tensor forward(Context&, const Tensor& x) { return x * 2.0; }
  static std::vector<Tensor> backward(Context&, const std::vector<Tensor>& grad) { return {grad[0].sum()}; }
};

struct ToIndex : autograd::Function<ToIndex> {
  static Tensor forward(Context&, const Tensor& x) { return x.argmax(0); }
  static std::vector<Tensor> backward(Context&, const std::vector<Tensor>& grad) { return {grad[0]}; }
};

}  // namespace

TEST_CASE("a custom Function with a non-tensor argument passes gradcheck", "[function]") {
  Tensor x = test::randn({3, 4}, 90).requires_grad_();
  Tensor b = test::randn({1, 4}, 91).requires_grad_();
  auto f = [](const std::vector<Tensor>& in) { return ScaledSquare::apply(in[0], 1.5, in[1]); };
  test::gradcheck_layouts(f, {x, b});
  Tensor y = ScaledSquare::apply(x, 1.5, b);
  CHECK(y.grad_fn()->name() == "ScaledSquareBackward");
  std::vector<double> vx = x.to_vector<double>(), vb = b.to_vector<double>(), vy = y.to_vector<double>();
  for (size_t i = 0; i < vy.size(); ++i) CHECK(vy[i] == Approx(1.5 * vx[i] * vx[i] + vb[i % 4]));
}

TEST_CASE("needs_input_grad says which arguments need a gradient", "[function]") {
  Tensor x = test::randn({2, 3}, 92).requires_grad_();
  Tensor b = test::randn({1, 3}, 93);
  ScaledSquare::backward_calls = 0;
  ScaledSquare::apply(x, 2.0, b).sum().backward();
  CHECK(ScaledSquare::backward_calls == 1);
  CHECK(ScaledSquare::seen_needs == std::vector<bool>{true, false, false});
  std::vector<double> vx = x.to_vector<double>(), g = x.grad().to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) CHECK(g[i] == Approx(4 * vx[i]));
  CHECK_FALSE(b.grad().defined());

  Tensor b2 = b.clone().requires_grad_();
  ScaledSquare::apply(x.detach(), 2.0, b2).sum().backward();
  CHECK(ScaledSquare::seen_needs == std::vector<bool>{false, false, true});
  CHECK(b2.grad().to_vector<double>() == std::vector<double>{2, 2, 2});
}

TEST_CASE("a Function is not recorded when nothing needs a gradient", "[function]") {
  ScaledSquare::backward_calls = 0;
  Tensor x = test::randn({2}, 94);
  Tensor y = ScaledSquare::apply(x, 1.0, Tensor::zeros({2}, DType::f64));
  CHECK_FALSE(y.requires_grad());
  CHECK(y.grad_fn() == nullptr);
  Tensor w = x.clone().requires_grad_();
  {
    NoGradGuard g;
    CHECK_FALSE(ScaledSquare::apply(w, 1.0, x).requires_grad());
  }
}

TEST_CASE("saved_data and saved tensors are freed after backward", "[function]") {
  Tensor x = test::randn({1, 2}, 95).requires_grad_();
  Tensor y = ScaledSquare::apply(x, 3.0, x).sum();
  std::shared_ptr<autograd::Node> node = y.grad_fn()->next_edges()[0].node;
  auto* fn = dynamic_cast<autograd::FunctionNode<ScaledSquare>*>(node.get());
  REQUIRE(fn != nullptr);
  CHECK(fn->ctx.saved_data.count("scale") == 1);
  y.backward();
  CHECK(fn->ctx.saved_data.empty());
  CHECK(fn->ctx.released());
  CHECK_THAT(test::error_of([&] { fn->ctx.saved(); }),
             Catch::Contains("ScaledSquareBackward: its saved tensors were freed by an earlier backward"));
}

TEST_CASE("a Function returning std::vector<Tensor> differentiates every output", "[function]") {
  Tensor x = test::randn({3, 2}, 96).requires_grad_();
  for (size_t k = 0; k < 3; ++k) {
    INFO("output " << k);
    test::gradcheck_layouts([k](const std::vector<Tensor>& in) { return SplitColumns::apply(in[0])[k]; }, {x});
  }
  // All three outputs in one loss; outputs with no gradient get zeros.
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) {
    std::vector<Tensor> out = SplitColumns::apply(in[0]);
    return out[0] * 2.0 + out[1].exp() + out[2];
  }, {x}));
  std::vector<Tensor> out = SplitColumns::apply(x);
  REQUIRE(out.size() == 3);
  CHECK(out[0].grad_fn() == out[2].grad_fn());
  CHECK(out[1].unsafe_impl()->output_nr == 1);
}

TEST_CASE("an input returned by forward gets a fresh handle, and the input is left alone", "[function]") {
  Tensor x = test::randn({3}, 97).requires_grad_();
  Tensor y = Identity::apply(x);
  CHECK_FALSE(y.is_same(x));
  CHECK(x.is_leaf());
  CHECK(y.grad_fn()->name() == "IdentityBackward");
  (y * 2.0).sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 2, 2});

  // An input that needs no gradient is not given history either.
  Tensor w = test::randn({3}, 98).requires_grad_();
  Tensor c = test::randn({3}, 99);
  Tensor out = PassThrough::apply(w, c);
  CHECK(out.requires_grad());
  CHECK_FALSE(c.requires_grad());
  CHECK(c.grad_fn() == nullptr);
}

TEST_CASE("integer outputs of a Function are not differentiable", "[function]") {
  Tensor x = test::randn({4}, 100).requires_grad_();
  Tensor i = ToIndex::apply(x);
  CHECK(i.dtype() == DType::i64);
  CHECK_FALSE(i.requires_grad());
}

TEST_CASE("a backward that returns the wrong number or shape of gradients is an error", "[function][errors]") {
  Tensor x = test::randn({3}, 101).requires_grad_();
  CHECK_THAT(test::error_of([&] { WrongCount::apply(x).sum().backward(); }),
             Catch::Contains("WrongCountBackward: backward returned 3 gradients, expected one per Tensor argument (1) or one per argument (1)"));
  CHECK_THAT(test::error_of([&] { WrongShape::apply(x).sum().backward(); }),
             Catch::Contains("WrongShapeBackward returned a gradient of shape [] for input 0, whose shape is [3]"));
}
