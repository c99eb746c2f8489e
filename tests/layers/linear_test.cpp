#include <cmath>

#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include "../test_helpers.h"
#include "fixture_cases.h"

using namespace kiln;
using namespace kiln::testing;

TEST_CASE("Linear matches PyTorch forward and backward", "[linear]") {
  auto fixture = load_fixture("linear.safetensors");
  auto cases = fixture_cases(fixture);
  REQUIRE(cases.size() == 5);
  for (const std::string& name : cases) {
    INFO("case " << name);
    auto config = fixture_tensor(fixture, name, "config").to_vector<int64_t>();
    const bool has_bias = config[2] != 0;
    nn::Linear fc(config[0], config[1], has_bias);
    NamedTensors state{{"weight", fixture_tensor(fixture, name, "weight")}};
    if (has_bias) state.emplace_back("bias", fixture_tensor(fixture, name, "bias"));
    fc.load_state_dict(state);

    Tensor x = leaf_copy(fixture_tensor(fixture, name, "x"));
    Tensor y = fc.forward(x);
    KILN_REQUIRE_CLOSE(y, fixture_tensor(fixture, name, "y"), 1e-6, 1e-5);
    y.backward(fixture_tensor(fixture, name, "grad_y"));
    KILN_REQUIRE_CLOSE(x.grad(), fixture_tensor(fixture, name, "grad_x"), 1e-6, 1e-5);
    KILN_REQUIRE_CLOSE(fc.weight.grad(), fixture_tensor(fixture, name, "grad_weight"), 1e-6, 1e-5);
    if (has_bias) {
      KILN_REQUIRE_CLOSE(fc.bias.grad(), fixture_tensor(fixture, name, "grad_bias"), 1e-6, 1e-5);
    }
  }
}

TEST_CASE("linear passes gradcheck in float64", "[linear][gradcheck]") {
  manual_seed(11);
  Tensor w = Tensor::randn({4, 5}, DType::f64).requires_grad_();
  Tensor b = Tensor::randn({4}, DType::f64).requires_grad_();
  SECTION("leading dims and bias") {
    Tensor x = Tensor::randn({2, 3, 5}, DType::f64).requires_grad_();
    REQUIRE(autograd::gradcheck(
        [](const std::vector<Tensor>& in) { return nn::functional::linear(in[0], in[1], in[2]); },
        {x, w, b}));
  }
  SECTION("no bias, one row") {
    Tensor x = Tensor::randn({1, 5}, DType::f64).requires_grad_();
    REQUIRE(autograd::gradcheck(
        [](const std::vector<Tensor>& in) { return nn::functional::linear(in[0], in[1]); }, {x, w}));
  }
  SECTION("a 1-D input") {
    Tensor x = Tensor::randn({5}, DType::f64).requires_grad_();
    REQUIRE(autograd::gradcheck(
        [](const std::vector<Tensor>& in) { return nn::functional::linear(in[0], in[1], in[2]); },
        {x, w, b}));
  }
  SECTION("through an f64 Module, for every parameter") {
    nn::Linear fc(5, 3, true, DType::f64);
    Tensor x = Tensor::randn({4, 5}, DType::f64).requires_grad_();
    REQUIRE(autograd::gradcheck(
        [](const std::vector<Tensor>& in) { return nn::functional::linear(in[0], in[1], in[2]); },
        {x, fc.weight, fc.bias}));
  }
  SECTION("a non-contiguous input") {
    Tensor x = Tensor::randn({5, 3}, DType::f64).requires_grad_();
    REQUIRE(autograd::gradcheck(
        [](const std::vector<Tensor>& in) {
          return nn::functional::linear(in[0].transpose(0, 1), in[1], in[2]);
        },
        {x, w, b}));
  }
}

TEST_CASE("Linear: shapes, parameters, gradients and repr", "[linear]") {
  manual_seed(0);
  auto fc = std::make_shared<nn::Linear>(8, 10);
  REQUIRE(fc->weight.shape() == Shape{10, 8});
  REQUIRE(fc->bias.shape() == Shape{10});
  REQUIRE(fc->repr() == "Linear(in_features=8, out_features=10, bias=True)");
  auto names = fc->state_dict();
  REQUIRE(names.size() == 2);
  REQUIRE(names[0].first == "weight");
  REQUIRE(names[1].first == "bias");

  Tensor x = Tensor::randn({2, 3, 8});
  Tensor y = fc->forward(x);
  REQUIRE(y.shape() == Shape{2, 3, 10});
  y.sum().backward();
  for (const auto& [name, p] : fc->named_parameters()) {
    INFO(name);
    REQUIRE(p.grad().defined());
    REQUIRE(p.grad().shape() == p.shape());
  }
  // d(sum y)/db = number of rows
  for (float g : fc->bias.grad().to_vector<float>()) REQUIRE(g == 6.0f);

  nn::Linear no_bias(3, 2, false);
  REQUIRE(no_bias.repr() == "Linear(in_features=3, out_features=2, bias=False)");
  REQUIRE(no_bias.state_dict().size() == 1);
  REQUIRE(no_bias.parameters().size() == 1);
}

TEST_CASE("Linear default init is PyTorch's: U(-1/sqrt(in), 1/sqrt(in))", "[linear][init]") {
  manual_seed(3);
  nn::Linear fc(100, 300);
  const double bound = 1.0 / std::sqrt(100.0);
  auto w = fc.weight.to_vector<double>();
  double sum = 0, sum_sq = 0, lo = 1, hi = -1;
  for (double v : w) {
    sum += v;
    sum_sq += v * v;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  const double n = static_cast<double>(w.size());
  REQUIRE(lo >= -bound);
  REQUIRE(hi <= bound);
  REQUIRE(lo < -0.99 * bound);  // the whole range is used
  REQUIRE(hi > 0.99 * bound);
  REQUIRE(std::fabs(sum / n) < 0.003);
  REQUIRE(std::sqrt(sum_sq / n) == Approx(bound / std::sqrt(3.0)).epsilon(0.03));
  for (double v : fc.bias.to_vector<double>()) REQUIRE(std::fabs(v) <= bound);

  // Seeded: the same default-generator seed gives the same parameters.
  manual_seed(3);
  nn::Linear again(100, 300);
  require_equal(again.weight, fc.weight);
  require_equal(again.bias, fc.bias);
  Generator gen(9);
  again.reset_parameters(&gen);
  REQUIRE(again.weight.to_vector<float>() != fc.weight.to_vector<float>());
}

TEST_CASE("Linear is bit-identical at 1 and 2 threads", "[linear][threads]") {
  // Large enough that gemm and the bias column sums split into several chunks.
  manual_seed(5);
  nn::Linear fc(96, 700);
  Tensor x0 = Tensor::randn({300, 96});
  auto run = [&](int threads) {
    set_num_threads(threads);
    fc.zero_grad();
    Tensor x = x0.clone().requires_grad_();
    Tensor y = fc.forward(x);
    y.backward(Tensor::ones(y.shape()));
    return std::vector<Tensor>{y.detach(), x.grad(), fc.weight.grad(), fc.bias.grad()};
  };
  const int before = num_threads();
  auto one = run(1);
  auto two = run(2);
  set_num_threads(before);
  for (size_t i = 0; i < one.size(); ++i) require_equal(one[i], two[i]);
}

TEST_CASE("Linear errors name the expected and actual shapes", "[linear][errors]") {
  nn::Linear fc(8, 10);
  REQUIRE_THAT(error_text([&] { fc.forward(Tensor::randn({4, 7})); }),
               Catch::StartsWith("Linear: expected an input [*, in_features=8], got shape [4, 7]"
                                 " (its last dim is 7)"));
  std::string text = error_text([&] {
    nn::functional::linear(Tensor::randn({2, 5}), Tensor::randn({3, 4}));
  });
  REQUIRE_THAT(text, Catch::Contains("the input's last dim is 5 (shape [2, 5])") &&
                         Catch::Contains("weight [3, 4] expects in_features 4"));
  text = error_text([&] { fc.forward(Tensor::randn({2, 8}, DType::f64)); });
  REQUIRE_THAT(text, Catch::Contains("the input is f64 but the weight is f32"));
  text = error_text([&] {
    nn::functional::linear(Tensor::randn({2, 4}), Tensor::randn({3, 4}), Tensor::randn({4}));
  });
  REQUIRE_THAT(text, Catch::Contains("expected a bias [3]") && Catch::Contains("got shape [4]"));
}
