// BatchNorm1d/2d: gradcheck, parity with PyTorch fixtures (tests/tools/gen_norm_fixtures.py),
// running statistics across train and eval, and errors.
#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include "../test_helpers.h"

using namespace kiln;
using kiln::testing::error_text;
using kiln::testing::load_fixture;

TEST_CASE("batch_norm gradcheck in float64", "[layers][batch_norm]") {
  manual_seed(11);
  for (const Shape& shape : std::vector<Shape>{{3, 2, 2, 3}, {4, 3}, {2, 3, 5}, {1, 2, 3, 1}}) {
    INFO("shape " << shape_str(shape));
    const int64_t c = shape[1];
    Tensor x = Tensor::randn(shape, DType::f64).requires_grad_();
    Tensor w = Tensor::randn({c}, DType::f64).requires_grad_();
    Tensor b = Tensor::randn({c}, DType::f64).requires_grad_();
    REQUIRE(autograd::gradcheck(
        [](const std::vector<Tensor>& in) {
          return nn::functional::batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true);
        },
        {x, w, b}));
    Tensor rm = Tensor::randn({c}, DType::f64), rv = Tensor::rand({c}, DType::f64) + 0.5;
    REQUIRE(autograd::gradcheck(
        [&](const std::vector<Tensor>& in) {
          return nn::functional::batch_norm(in[0], rm, rv, in[1], in[2], false);
        },
        {x, w, b}));
  }
}

TEST_CASE("BatchNorm matches PyTorch in train and eval, with running statistics",
          "[layers][batch_norm][parity]") {
  auto f = load_fixture("norm_fixtures.safetensors");
  for (int i = 0; i < 6; ++i) {
    const std::string name = "bn" + std::to_string(i);
    INFO("fixture case " << name);
    const Tensor& x0 = f.at(name + ".x");
    std::shared_ptr<nn::BatchNorm> bn;
    if (x0.dim() == 4) bn = std::make_shared<nn::BatchNorm2d>(x0.shape()[1]);
    else bn = std::make_shared<nn::BatchNorm1d>(x0.shape()[1]);
    {
      NoGradGuard no_grad;
      bn->weight.copy_(f.at(name + ".weight"));
      bn->bias.copy_(f.at(name + ".bias"));
      bn->running_mean.copy_(f.at(name + ".running_mean_before"));
      bn->running_var.copy_(f.at(name + ".running_var_before"));
    }
    bn->train();
    Tensor x = x0.clone().requires_grad_();
    Tensor y = bn->forward(x);
    y.backward(f.at(name + ".g"));
    KILN_REQUIRE_CLOSE(y, f.at(name + ".y"), 2e-5, 1e-4);
    KILN_REQUIRE_CLOSE(x.grad(), f.at(name + ".dx"), 2e-5, 1e-4);
    KILN_REQUIRE_CLOSE(bn->weight.grad(), f.at(name + ".dweight"), 5e-5, 1e-4);
    KILN_REQUIRE_CLOSE(bn->bias.grad(), f.at(name + ".dbias"), 5e-5, 1e-4);
    KILN_REQUIRE_CLOSE(bn->running_mean, f.at(name + ".running_mean_after"), 1e-6, 1e-5);
    KILN_REQUIRE_CLOSE(bn->running_var, f.at(name + ".running_var_after"), 1e-6, 1e-5);
    REQUIRE(bn->num_batches_tracked.item<int64_t>() == 1);

    bn->eval();
    Tensor xe = f.at(name + ".x_eval").clone().requires_grad_();
    Tensor ye = bn->forward(xe);
    ye.backward(f.at(name + ".g_eval"));
    KILN_REQUIRE_CLOSE(ye, f.at(name + ".y_eval"), 2e-5, 1e-4);
    KILN_REQUIRE_CLOSE(xe.grad(), f.at(name + ".dx_eval"), 2e-5, 1e-4);
    // Eval leaves the running statistics alone.
    KILN_REQUIRE_CLOSE(bn->running_mean, f.at(name + ".running_mean_after"), 1e-6, 1e-5);
    REQUIRE(bn->num_batches_tracked.item<int64_t>() == 1);
  }
}

TEST_CASE("BatchNorm running statistics over several steps", "[layers][batch_norm]") {
  manual_seed(12);
  nn::BatchNorm2d bn(3, 1e-5, 0.25);
  Tensor expected_mean = Tensor::zeros({3}, DType::f64), expected_var = Tensor::ones({3}, DType::f64);
  for (int step = 0; step < 4; ++step) {
    Tensor x = Tensor::randn({2, 3, 4, 4}) * (1.0 + step) + static_cast<double>(step);
    bn.forward(x);
    Tensor xd = x.to(DType::f64);
    Tensor mean = xd.mean({0, 2, 3});
    Tensor var = xd.var({0, 2, 3}, /*correction=*/1);
    expected_mean = expected_mean * 0.75 + mean * 0.25;
    expected_var = expected_var * 0.75 + var * 0.25;
  }
  KILN_REQUIRE_CLOSE(bn.running_mean, expected_mean, 1e-5, 1e-5);
  KILN_REQUIRE_CLOSE(bn.running_var, expected_var, 1e-5, 1e-5);
  REQUIRE(bn.num_batches_tracked.item<int64_t>() == 4);

  SECTION("momentum None (negative) is a cumulative average") {
    nn::BatchNorm1d cumulative(2, 1e-5, -1.0);
    Tensor a = Tensor::from_vector(std::vector<float>{1, 10, 3, 30}, {2, 2});
    Tensor b = Tensor::from_vector(std::vector<float>{5, 50, 7, 70}, {2, 2});
    cumulative.forward(a);
    cumulative.forward(b);
    // mean of the batch means: (2 + 6) / 2 and (20 + 60) / 2
    KILN_REQUIRE_CLOSE(cumulative.running_mean, Tensor::from_vector(std::vector<float>{4, 40}), 1e-6, 0);
  }
  SECTION("without running statistics, eval uses the batch statistics") {
    nn::BatchNorm2d plain(3, 1e-5, 0.1, true, false);
    REQUIRE(plain.state_dict().size() == 2);
    plain.eval();
    Tensor y = plain.forward(Tensor::randn({4, 3, 2, 2}) * 5.0 + 3.0);
    for (double m : y.mean({0, 2, 3}).to_vector<double>()) REQUIRE(std::abs(m) < 1e-5);
  }
}

TEST_CASE("BatchNorm module state and printing", "[layers][batch_norm]") {
  auto bn = std::make_shared<nn::BatchNorm2d>(8);
  auto sd = bn->state_dict();
  std::vector<std::string> keys;
  for (auto& [k, v] : sd) keys.push_back(k);
  REQUIRE(keys == std::vector<std::string>{"weight", "bias", "running_mean", "running_var",
                                           "num_batches_tracked"});
  REQUIRE(bn->parameters().size() == 2);
  REQUIRE(bn->repr() == "BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)");
}

TEST_CASE("BatchNorm statistics are stable", "[layers][batch_norm][numerics]") {
  manual_seed(13);
  nn::BatchNorm2d bn(4, /*eps=*/0.0);  // eps would scale the variance by sigma2 / (sigma2 + eps)
  Tensor y = bn.forward(Tensor::randn({8, 4, 8, 8}) * 1e-2 + 1e4);
  for (double v : y.var({0, 2, 3}, 0).to_vector<double>()) REQUIRE(std::abs(v - 1.0) < 1e-3);
  nn::BatchNorm2d with_eps(4);
  Tensor c = with_eps.forward(Tensor::full({2, 4, 3, 3}, -3.5));
  for (float v : c.to_vector<float>()) REQUIRE(v == 0.0f);
  for (float v : bn.running_var.to_vector<float>()) REQUIRE(v >= 0.0f);
}

TEST_CASE("BatchNorm errors name the shapes", "[layers][batch_norm][errors]") {
  nn::BatchNorm1d bn1(5);
  REQUIRE_THAT(error_text([&] { bn1.forward(Tensor::zeros({1, 5})); }),
               Catch::Contains("expected more than 1 value per channel when training, got input [1, 5]"));
  bn1.eval();
  REQUIRE_NOTHROW(bn1.forward(Tensor::zeros({1, 5})));
  nn::BatchNorm2d bn2(3);
  REQUIRE_THAT(error_text([&] { bn2.forward(Tensor::zeros({2, 3, 4})); }),
               Catch::Contains("expected a 4-D input [N, C, H, W], got [2, 3, 4]"));
  REQUIRE_THAT(error_text([&] { bn2.forward(Tensor::zeros({2, 4, 3, 3})); }),
               Catch::Contains("expected 3 channels, got input [2, 4, 3, 3]"));
  REQUIRE(bn2.num_batches_tracked.item<int64_t>() == 0);
}

TEST_CASE("BatchNorm is bit-identical at 1 and 2 threads", "[layers][batch_norm][determinism]") {
  manual_seed(14);
  Tensor x0 = Tensor::randn({2, 64, 32, 32});
  Tensor g = Tensor::randn({2, 64, 32, 32});
  auto run = [&](int threads) {
    set_num_threads(threads);
    nn::BatchNorm2d bn(64);
    Tensor x = x0.clone().requires_grad_();
    Tensor y = bn.forward(x);
    y.backward(g);
    return std::vector<Tensor>{y, x.grad(), bn.weight.grad(), bn.running_var};
  };
  auto one = run(1), two = run(2);
  set_num_threads(2);
  for (size_t i = 0; i < one.size(); ++i) kiln::testing::require_equal(one[i], two[i]);
}
