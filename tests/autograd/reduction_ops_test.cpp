// Gradients of the reductions and of (log_)softmax (autograd/reduction_ops.cpp).
#include <cmath>

#include "../test_util.h"

using namespace kiln;
using kiln::test::gradcheck_layouts;

namespace {
Tensor input(const Shape& shape, uint64_t seed) { return test::randn(shape, seed).requires_grad_(); }
}  // namespace

TEST_CASE("sum, mean, max, min and var pass gradcheck over dim subsets", "[ops][reduce]") {
  using Reduction = std::function<Tensor(const Tensor&, const std::vector<int64_t>&, bool)>;
  const std::vector<std::pair<const char*, Reduction>> ops = {
      {"sum", [](const Tensor& x, const std::vector<int64_t>& d, bool k) { return x.sum(d, k); }},
      {"mean", [](const Tensor& x, const std::vector<int64_t>& d, bool k) { return x.mean(d, k); }},
      {"max", [](const Tensor& x, const std::vector<int64_t>& d, bool k) { return x.max(d, k); }},
      {"min", [](const Tensor& x, const std::vector<int64_t>& d, bool k) { return x.min(d, k); }},
      {"var", [](const Tensor& x, const std::vector<int64_t>& d, bool k) { return x.var(d, 1, k); }},
      {"var(0)", [](const Tensor& x, const std::vector<int64_t>& d, bool k) { return var(x, d, 0, k); }},
      {"var(2)", [](const Tensor& x, const std::vector<int64_t>& d, bool k) { return var(x, d, 2, k); }},
      {"sum()", [](const Tensor& x, const std::vector<int64_t>& d, bool k) { return sum(x, d, k); }},
      {"mean()", [](const Tensor& x, const std::vector<int64_t>& d, bool k) { return mean(x, d, k); }},
      {"max()", [](const Tensor& x, const std::vector<int64_t>& d, bool k) { return max(x, d, k); }},
      {"min()", [](const Tensor& x, const std::vector<int64_t>& d, bool k) { return min(x, d, k); }},
  };
  const std::vector<std::vector<int64_t>> dim_sets = {{}, {0}, {1}, {-1}, {0, 2}, {2, 1}, {0, 1, 2}};
  Tensor x = input({3, 3, 4}, 31);
  for (const auto& [name, op] : ops) {
    for (const auto& dims : dim_sets) {
      for (bool keepdim : {false, true}) {
        INFO(name << " over " << shape_str(dims) << " keepdim " << keepdim);
        test::Fn f = [&, op = op](const std::vector<Tensor>& in) { return op(in[0], dims, keepdim); };
        // Every layout for a few dim sets; the plain layout for the rest.
        if (keepdim && (dims == std::vector<int64_t>{1} || dims == std::vector<int64_t>{0, 2})) gradcheck_layouts(f, {x});
        else CHECK(autograd::gradcheck(f, {x}));
      }
    }
  }
}

TEST_CASE("reductions of views pass gradcheck", "[ops][reduce]") {
  Tensor x = input({4, 6}, 32);
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0].transpose(0, 1).slice(0, 1, 6, 2).sum({1}); }, {x}));
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0].slice(1, 0, 1).expand({4, 5}).mean({0}); }, {x}));
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0].view({2, 12}).var({1}); }, {x}));
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0].permute({1, 0}).max({0}, true); }, {x}));
}

TEST_CASE("reductions of 0-dim tensors pass gradcheck", "[ops][reduce]") {
  Tensor s = input({}, 33);
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0].sum(); }, {s}));
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0].mean({0}, true); }, {s}));
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0].max(); }, {s}));
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0].min({-1}); }, {s}));
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) { return log_softmax(in[0], 0); }, {s}));
}

TEST_CASE("max and min share the gradient evenly between ties, as torch.amax", "[ops][reduce]") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 3, 3, 2, 2, 0}, {2, 3}).requires_grad_();
  x.max({1}).sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 0.5, 0.5, 0.5, 0.5, 0});
  x.set_grad(Tensor());
  x.max().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 0.5, 0.5, 0, 0, 0});
  x.set_grad(Tensor());
  x.min({0}).sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{1, 0, 0, 0, 1, 1});
  x.set_grad(Tensor());
  Tensor flat = Tensor::ones({4}, DType::f64).requires_grad_();
  flat.min().backward();
  CHECK(flat.grad().to_vector<double>() == std::vector<double>(4, 0.25));
}

TEST_CASE("var's gradient is 2 (x - mean) / (n - correction)", "[ops][reduce]") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3, 6}).requires_grad_();
  x.var().backward();  // mean 3, n - 1 = 3
  test::require_close(x.grad(), {-4.0 / 3, -2.0 / 3, 0, 2});
  x.set_grad(Tensor());
  x.var({0}, 0).backward();
  test::require_close(x.grad(), {-1, -0.5, 0, 1.5});
}

TEST_CASE("log_softmax and softmax pass gradcheck along every dim", "[ops][reduce]") {
  Tensor x = input({3, 4, 2}, 34);
  for (int64_t dim : {0, 1, 2, -1}) {
    INFO("dim " << dim);
    gradcheck_layouts([dim](const std::vector<Tensor>& in) { return log_softmax(in[0], dim); }, {x});
    gradcheck_layouts([dim](const std::vector<Tensor>& in) { return softmax(in[0], dim); }, {x});
  }
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) { return log_softmax(in[0].transpose(0, 2) * 3.0, 1); }, {x}));
}

TEST_CASE("argmax and argmin are not differentiable", "[ops][reduce]") {
  Tensor x = input({3, 4}, 35);
  CHECK_FALSE(x.argmax(1).requires_grad());
  CHECK_FALSE(argmin(x, 0).requires_grad());
}
