// gradcheck itself: it passes correct gradients, catches wrong ones with a message naming the
// element and both values, and refuses inputs it cannot check.
#include "../test_util.h"

using namespace kiln;
using autograd::Context;

namespace {
// y = x^3 with a deliberately wrong derivative, 3x^2 + 0.1 at element 2 only.
struct SlightlyWrong : autograd::Function<SlightlyWrong> {
  static Tensor forward(Context& ctx, const Tensor& x) {
    ctx.save_for_backward({x});
    return x * x * x;
  }
  static std::vector<Tensor> backward(Context& ctx, const std::vector<Tensor>& grad) {
    Tensor x = ctx.saved()[0];
    Tensor bump = Tensor::zeros(x.shape(), DType::f64);
    bump.data_ptr<double>()[2] = 0.1;
    return {grad[0] * (x * x * 3.0 + bump)};
  }
};
}  // namespace

TEST_CASE("gradcheck passes a correct gradient", "[gradcheck]") {
  Tensor x = test::randn({2, 3}, 110).requires_grad_();
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0].tanh(); }, {x}));
  // Inputs that need no gradient are held fixed and skipped.
  Tensor c = test::randn({2, 3}, 111);
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0] * in[1]; }, {x, c}));
}

TEST_CASE("gradcheck names the wrong element with both values", "[gradcheck]") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}).requires_grad_();
  const std::string message = test::error_of([&] {
    autograd::gradcheck([](const std::vector<Tensor>& in) { return SlightlyWrong::apply(in[0]); }, {x});
  });
  CHECK_THAT(message, Catch::Contains("gradcheck: input 0 of shape [2, 2], element [1, 0]: analytical 27.1 vs numerical 27"));
  CHECK_THAT(message, Catch::Contains("output element [1, 0]"));
  // A loose enough tolerance lets it through.
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) { return SlightlyWrong::apply(in[0]); }, {x},
                            autograd::GradcheckOptions{.eps = 1e-6, .atol = 0.2, .rtol = 0}));
}

TEST_CASE("gradcheck checks large outputs through random projections", "[gradcheck]") {
  Tensor x = test::randn({300}, 112).requires_grad_();
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0].sigmoid() * 2.0; }, {x}));
  Tensor w = Tensor::from_vector(std::vector<double>(300, 1.0)).requires_grad_();
  const std::string message = test::error_of([&] {
    autograd::gradcheck([](const std::vector<Tensor>& in) { return SlightlyWrong::apply(in[0]); }, {w});
  });
  CHECK_THAT(message, Catch::Contains("element [2]"));
  CHECK_THAT(message, Catch::Contains("random projection"));
}

TEST_CASE("gradcheck leaves the inputs and their gradients as they were", "[gradcheck]") {
  Tensor x = test::randn({4}, 113).requires_grad_();
  x.set_grad(Tensor::full({4}, 7, DType::f64));
  const std::vector<double> before = x.to_vector<double>();
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0].exp(); }, {x}));
  CHECK(x.to_vector<double>() == before);
  CHECK(x.grad().to_vector<double>() == std::vector<double>(4, 7));
}

TEST_CASE("gradcheck refuses f32 inputs and outputs it cannot differentiate", "[gradcheck][errors]") {
  Tensor x32 = Tensor::ones({2}).requires_grad_();
  CHECK_THAT(test::error_of([&] {
               autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0] * 2.0; }, {x32});
             }),
             Catch::Contains("gradcheck: input 0 is f32; central differences need f64 inputs"));
  Tensor x = Tensor::ones({2}, DType::f64).requires_grad_();
  CHECK_THAT(test::error_of([&] {
               autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0].to(DType::f32); }, {x});
             }),
             Catch::Contains("gradcheck: the function returned f32; expected f64"));
  CHECK_THAT(test::error_of([&] {
               autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0].detach() * 2.0; }, {x});
             }),
             Catch::Contains("gradcheck: the output does not require grad"));
}
