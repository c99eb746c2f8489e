// The backward engine and its contract: accumulation, graph freeing and retain_graph, requires_grad
// propagation, detach, NoGradGuard, in-place checks, and the errors for each misuse.
#include <cmath>
#include <limits>

#include "../test_util.h"

using namespace kiln;
using kiln::test::error_of;
using kiln::test::require_close;

namespace {
Tensor leaf(std::vector<double> values, const Shape& shape = {}) {
  return Tensor::from_vector(values, shape).requires_grad_();
}
}  // namespace

TEST_CASE("backward fills leaf gradients", "[engine]") {
  Tensor x = leaf({1, 2, 3});
  Tensor w = leaf({4, 5, 6});
  Tensor y = (x * w).sum();
  CHECK_FALSE(x.grad().defined());
  y.backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{4, 5, 6});
  CHECK(w.grad().to_vector<double>() == std::vector<double>{1, 2, 3});
  CHECK(x.grad().dtype() == DType::f64);
  CHECK(x.grad().shape() == x.shape());
}

TEST_CASE("gradients accumulate across backward calls", "[engine]") {
  Tensor x = leaf({1, -2});
  (x * 3.0).sum().backward();
  (x * x).sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{3 + 2, 3 - 4});
  x.set_grad(Tensor());
  CHECK_FALSE(x.grad().defined());
  x.sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{1, 1});
  x.grad().zero_();
  (x * 2.0).sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 2});
}

TEST_CASE("a tensor used twice gets both contributions", "[engine]") {
  // y = h^2 + log(h) with h = exp(x), a diamond in the graph: dy/dx = 2 exp(2x) + 1.
  Tensor x = leaf({1, 2, 3});
  Tensor h = x.exp();
  Tensor y = (h * h + h.log()).sum();
  y.backward();
  std::vector<double> g = x.grad().to_vector<double>();
  for (int i = 0; i < 3; ++i) CHECK(g[i] == Approx(2 * std::exp(2.0 * (i + 1)) + 1));
  Tensor z = leaf({2});
  (z + z + z).backward(Tensor::ones({1}, DType::f64));
  CHECK(z.grad().item<double>() == 3);
}

TEST_CASE("backward twice without retain_graph is a clear error", "[engine]") {
  Tensor x = leaf({1, 2});
  Tensor y = (x * x).sum();
  y.backward();
  const std::string message = error_of([&] { y.backward(); });
  CHECK_THAT(message, Catch::Contains("backward: SumBackward was reached a second time after its graph was freed"));
  CHECK_THAT(message, Catch::Contains("pass retain_graph=true"));
  // A node that saved tensors says so too, when reached first.
  Tensor z = x * x;
  z.sum().backward();
  CHECK_THAT(error_of([&] { z.backward(Tensor::ones({2}, DType::f64)); }),
             Catch::Contains("MulBackward was reached a second time after its graph was freed"));
}

TEST_CASE("retain_graph keeps the graph, and the second backward accumulates", "[engine]") {
  Tensor x = leaf({1, 2});
  Tensor y = (x * x).sum();
  y.backward(Tensor(), /*retain_graph=*/true);
  CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 4});
  y.backward(Tensor(), /*retain_graph=*/true);
  CHECK(x.grad().to_vector<double>() == std::vector<double>{4, 8});
  y.backward();  // the last one may free it
  CHECK(x.grad().to_vector<double>() == std::vector<double>{6, 12});
  CHECK_THROWS_AS(y.backward(), Error);
}

TEST_CASE("requires_grad propagates through ops and views", "[engine]") {
  Tensor x = leaf({1, 2, 3, 4}, {2, 2});
  Tensor c = Tensor::ones({2, 2}, DType::f64);
  CHECK(x.is_leaf());
  CHECK(x.requires_grad());
  CHECK_FALSE(c.requires_grad());
  CHECK_FALSE((c * 2.0).requires_grad());
  for (const Tensor& t : {x + c, c * x, x.exp(), x.transpose(0, 1), x.view({4}), x.slice(0, 0, 1),
                          x.sum(), matmul(c, x), x.to(DType::f32), x.clone(), x.expand({3, 2, 2})}) {
    CHECK(t.requires_grad());
    CHECK_FALSE(t.is_leaf());
    CHECK(t.grad_fn() != nullptr);
  }
  CHECK(x.contiguous().is_same(x));  // contiguous already: the tensor itself
  CHECK((x * 2.0).grad_fn()->name() == "MulScalarBackward");
  CHECK(x.sum().grad_fn()->name() == "SumBackward");
  CHECK(cat({x, c}).grad_fn()->name() == "CatBackward");
  // Integer results are not differentiable.
  CHECK_FALSE(x.argmax(0).requires_grad());
  CHECK_FALSE(x.to(DType::i64).requires_grad());
  CHECK_FALSE(eq(x, c).requires_grad());
}

TEST_CASE("detach shares storage but cuts the graph", "[engine]") {
  Tensor x = leaf({1, 2});
  Tensor y = x * 3.0;
  Tensor d = y.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  CHECK(d.raw_data_ptr() == y.raw_data_ptr());
  Tensor z = (d * x).sum();  // only the x path is differentiated
  z.backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{3, 6});
}

TEST_CASE("NoGradGuard stops recording, and restores the mode on exit", "[engine]") {
  Tensor x = leaf({1, 2});
  {
    NoGradGuard guard;
    CHECK_FALSE(GradMode::is_enabled());
    Tensor y = x * 2.0 + x.exp();
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
    {
      EnableGradGuard enable;
      CHECK((x * 2.0).requires_grad());
    }
    CHECK_FALSE(GradMode::is_enabled());
    {
      NoGradGuard nested;
    }
    CHECK_FALSE(GradMode::is_enabled());
  }
  CHECK(GradMode::is_enabled());
  CHECK((x * 2.0).requires_grad());
}

TEST_CASE("an in-place write to a tensor saved for backward is reported", "[engine][inplace]") {
  Tensor w = leaf({1, 2, 3});
  Tensor a = Tensor::from_vector(std::vector<double>{4, 5, 6});
  Tensor y = (w * a).sum();  // Mul saved a
  a.mul_(2.0);
  const std::string message = error_of([&] { y.backward(); });
  CHECK_THAT(message, Catch::Contains("MulBackward: saved tensor 1 of shape [3] was modified in place after it was saved"));
  CHECK_THAT(message, Catch::Contains("clone() it before the in-place write"));

  // Through a view of the saved tensor's storage as well.
  Tensor b = Tensor::from_vector(std::vector<double>{1, 2, 3, 4});
  Tensor z = (w.exp() * b.slice(0, 0, 3)).sum();
  b.slice(0, 3, 4).fill_(0);  // a different element, same storage: still refused, as torch
  CHECK_THROWS_WITH(z.backward(), Catch::Contains("was modified in place"));

  // An output that is saved (exp saves its result) and then written.
  Tensor e = w.exp();
  Tensor loss = e.sum();
  {
    NoGradGuard g;
    e.add_(Tensor::ones({3}, DType::f64));
  }
  CHECK_THROWS_WITH(loss.backward(), Catch::Contains("ExpBackward: saved tensor 0 of shape [3] was modified in place"));
}

TEST_CASE("in-place on a tensor that requires grad is refused while recording", "[engine][inplace]") {
  Tensor w = leaf({1, 2, 3});
  CHECK_THAT(error_of([&] { w.add_(Tensor::ones({3}, DType::f64)); }),
             Catch::Contains("add_: a tensor of shape [3] that requires grad cannot be modified in place while autograd records"));
  CHECK_THAT(error_of([&] { w.mul_(2.0); }), Catch::Contains("wrap the update in NoGradGuard"));
  CHECK_THROWS_AS(w.copy_(Tensor::zeros({3})), Error);
  CHECK_THROWS_AS(w.fill_(1), Error);
  CHECK_THROWS_AS(w.zero_(), Error);
  CHECK_THROWS_AS(w.slice(0, 0, 1).fill_(1), Error);  // a view of it is watched too
  CHECK(w.to_vector<double>() == std::vector<double>{1, 2, 3});
  {
    NoGradGuard g;
    w.add_(Tensor::ones({3}, DType::f64), -0.5);  // an optimizer step
  }
  CHECK(w.to_vector<double>() == std::vector<double>{0.5, 1.5, 2.5});
  CHECK(w.requires_grad());
}

TEST_CASE("backward argument errors", "[engine][errors]") {
  Tensor x = leaf({1, 2});
  CHECK_THAT(error_of([&] { (x * 2.0).backward(); }),
             Catch::Contains("backward: a gradient can be created implicitly only for a one-element output, got shape [2]"));
  CHECK_THAT(error_of([&] { (x * 2.0).backward(Tensor::ones({3}, DType::f64)); }),
             Catch::Contains("backward: the gradient has shape [3] but the output has shape [2]"));
  CHECK_THAT(error_of([] { Tensor::ones({1}).backward(); }),
             Catch::Contains("backward: the tensor of shape [1] does not require grad and has no grad_fn"));
  CHECK_THAT(error_of([] { Tensor::arange(3).requires_grad_(); }),
             Catch::Contains("requires_grad_: only floating tensors can require gradients, got i64"));
  CHECK_THAT(error_of([&] { (x * 2.0).requires_grad_(false); }),
             Catch::Contains("requires_grad_: cannot turn off requires_grad on a non-leaf tensor; use detach()"));
  CHECK_THAT(error_of([&] { x.set_grad(Tensor::zeros({3}, DType::f64)); }),
             Catch::Contains("set_grad: the gradient has shape [3] but the tensor has shape [2]"));
  CHECK_THAT(error_of([&] { x.set_grad(Tensor::zeros({2}, DType::f32)); }),
             Catch::Contains("set_grad: the gradient is f32 but the tensor is f64"));
}

TEST_CASE("backward with a gradient seeds a non-scalar output", "[engine]") {
  Tensor x = leaf({1, 2, 3});
  Tensor y = x * x;
  y.backward(Tensor::from_vector(std::vector<double>{1, 0, -1}));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 0, -6});
  // A leaf can be its own root.
  Tensor z = leaf({5});
  z.backward();
  CHECK(z.grad().item<double>() == 1);
}

TEST_CASE("gradients arrive in the leaf's dtype", "[engine][dtype]") {
  Tensor x32 = Tensor::from_vector(std::vector<float>{1, 2}).requires_grad_();
  Tensor x64 = leaf({3, 4});
  (x32 * x64).sum().backward();  // the product is f64
  CHECK(x32.grad().dtype() == DType::f32);
  CHECK(x32.grad().to_vector<float>() == std::vector<float>{3, 4});
  CHECK(x64.grad().dtype() == DType::f64);
  Tensor y = x32.to(DType::f64).sum();
  y.backward();
  CHECK(x32.grad().to_vector<float>() == std::vector<float>{4, 5});
}

TEST_CASE("the gradient a leaf receives is its own tensor", "[engine]") {
  // y = x + 0 passes the seed through: the leaf must not alias the caller's seed tensor.
  Tensor x = leaf({1, 2});
  Tensor seed = Tensor::ones({2}, DType::f64);
  (x + 0.0).backward(seed);
  x.grad().mul_(5.0);
  CHECK(seed.to_vector<double>() == std::vector<double>{1, 1});
  // Two leaves fed by one gradient tensor each get their own.
  Tensor a = leaf({1}), b = leaf({2});
  (a + b).backward(Tensor::ones({1}, DType::f64));
  a.grad().fill_(7);
  CHECK(b.grad().item<double>() == 1);
}

TEST_CASE("a graph is freed once its tensors go out of scope", "[engine]") {
  Tensor x = leaf({1, 2});
  std::weak_ptr<autograd::Node> node;
  {
    Tensor y = (x * x).exp();
    node = y.grad_fn();
    CHECK_FALSE(node.expired());
  }
  CHECK(node.expired());
  // Saved tensors do not keep their own outputs' nodes alive (no reference cycles).
  {
    Tensor y = x.exp();  // saves its own output
    node = y.grad_fn();
  }
  CHECK(node.expired());
}

TEST_CASE("anomaly detection names the op that made a NaN", "[engine]") {
  set_detect_anomaly(true);
  Tensor x = leaf({-1, 1});
  const std::string forward_error = error_of([&] { x.log(); });
  Tensor z = leaf({0, 1});
  Tensor w = z.sqrt().sum();  // a finite forward, but d sqrt(z)/dz at 0 is inf
  const std::string backward_error = error_of([&] { w.backward(); });
  set_detect_anomaly(false);
  CHECK_THAT(forward_error, Catch::Contains("anomaly detected: forward of Log produced NaN or Inf (shape [2])"));
  CHECK_THAT(backward_error, Catch::Contains("anomaly detected: backward of SqrtBackward produced NaN or Inf"));
  CHECK(std::isnan(x.log().to_vector<double>()[0]));  // off again: no check
}
