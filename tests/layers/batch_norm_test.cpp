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

TEST_CASE("batch_norm_relu gradcheck in float64", "[layers][batch_norm][fused]") {
  manual_seed(17);
  for (const Shape& shape : std::vector<Shape>{{3, 2, 4}, {4, 3}, {2, 2, 2, 3}}) {
    INFO("shape " << shape_str(shape));
    const int64_t C = shape[1];
    Tensor x = (Tensor::randn(shape, DType::f64) * 2.0 + 1.0).requires_grad_();
    Tensor w = Tensor::randn({C}, DType::f64).requires_grad_();
    Tensor b = Tensor::randn({C}, DType::f64).requires_grad_();
    for (bool training : {true, false}) {
      INFO("training " << training);
      Tensor rm = Tensor::randn({C}, DType::f64), rv = Tensor::rand({C}, DType::f64) + 0.5;
      REQUIRE(autograd::gradcheck(
          [&](const std::vector<Tensor>& in) {
            // Running statistics are not touched in training: none are given.
            return training ? nn::functional::batch_norm_relu(in[0], Tensor(), Tensor(), in[1],
                                                              in[2], true)
                            : nn::functional::batch_norm_relu(in[0], rm, rv, in[1], in[2], false);
          },
          {x, w, b}));
    }
  }
}

TEST_CASE("batch_norm_relu has the bits of relu(batch_norm)", "[layers][batch_norm][fused]") {
  manual_seed(18);
  // S = 1, 7, 16 and 37 cover the vector loops' tails; training with running statistics, and eval.
  for (const Shape& shape : std::vector<Shape>{{5, 6}, {3, 4, 7}, {2, 6, 4, 4}, {4, 3, 37, 1}}) {
    for (DType dtype : {DType::f32, DType::f64}) {
      for (bool training : {true, false}) {
        INFO("shape " << shape_str(shape) << " dtype " << dtype_name(dtype) << " training "
                      << training);
        const int64_t C = shape[1];
        Tensor x0 = Tensor::randn(shape, dtype) * 2.0 + 0.5, g = Tensor::randn(shape, dtype);
        Tensor w0 = Tensor::randn({C}, dtype), b0 = Tensor::randn({C}, dtype);
        Tensor rm0 = Tensor::randn({C}, dtype), rv0 = Tensor::rand({C}, dtype) + 0.5;
        auto run = [&](bool fused) {
          Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_();
          Tensor b = b0.clone().requires_grad_();
          Tensor rm = rm0.clone(), rv = rv0.clone();
          Tensor y = fused ? nn::functional::batch_norm_relu(x, rm, rv, w, b, training)
                           : relu(nn::functional::batch_norm(x, rm, rv, w, b, training));
          y.backward(g);
          return std::vector<Tensor>{y, x.grad(), w.grad(), b.grad(), rm, rv};
        };
        auto fused = run(true), apart = run(false);
        for (size_t i = 0; i < fused.size(); ++i) kiln::testing::require_equal(fused[i], apart[i]);
      }
    }
  }
}

TEST_CASE("BatchNorm modules' forward_relu has the bits of forward then relu",
          "[layers][batch_norm][fused]") {
  manual_seed(15);
  struct Case {
    Shape shape;
    bool two_d;
  };
  for (const Case& c : std::vector<Case>{{{3, 4, 7}, false}, {{2, 6, 4, 4}, true}}) {
    INFO("shape " << shape_str(c.shape));
    const int64_t C = c.shape[1];
    auto make = [&]() -> std::shared_ptr<nn::BatchNorm> {
      if (c.two_d) return std::make_shared<nn::BatchNorm2d>(C);
      return std::make_shared<nn::BatchNorm1d>(C);
    };
    auto fused = make(), apart = make();
    Tensor w = Tensor::randn({C}), b = Tensor::randn({C});
    for (auto* bn : {fused.get(), apart.get()}) {
      NoGradGuard no_grad;
      bn->weight.copy_(w);
      bn->bias.copy_(b);
    }
    // Two training steps (the running statistics move), then one in eval.
    for (int step = 0; step < 3; ++step) {
      INFO("step " << step);
      if (step == 2) {
        fused->eval();
        apart->eval();
      }
      Tensor x0 = Tensor::randn(c.shape) * 2.0 + 0.5, g = Tensor::randn(c.shape);
      Tensor x1 = x0.clone().requires_grad_(), x2 = x0.clone().requires_grad_();
      fused->zero_grad();
      apart->zero_grad();
      Tensor y1 = fused->forward_relu(x1), y2 = relu(apart->forward(x2));
      y1.backward(g);
      y2.backward(g);
      kiln::testing::require_equal(y1, y2);
      kiln::testing::require_equal(x1.grad(), x2.grad());
      kiln::testing::require_equal(fused->weight.grad(), apart->weight.grad());
      kiln::testing::require_equal(fused->bias.grad(), apart->bias.grad());
      kiln::testing::require_equal(fused->running_mean, apart->running_mean);
      kiln::testing::require_equal(fused->running_var, apart->running_var);
    }
    REQUIRE(fused->num_batches_tracked.item<int64_t>() == 2);
  }
}
TEST_CASE("Sequential fuses BatchNorm2d and ReLU with the same bits", "[layers][batch_norm][fused]") {
  manual_seed(16);
  auto conv = std::make_shared<nn::Conv2d>(3, 8, 3, nn::Conv2dOptions{.padding = 1});
  auto bn = std::make_shared<nn::BatchNorm2d>(8);
  auto relu_module = std::make_shared<nn::ReLU>();
  nn::Sequential net(conv, bn, relu_module);
  Tensor x0 = Tensor::randn({2, 3, 5, 5}), g = Tensor::randn({2, 8, 5, 5});
  auto run = [&](bool through_sequential) {
    net.zero_grad();
    Tensor x = x0.clone().requires_grad_();
    Tensor y = through_sequential ? net.forward(x)
                                  : relu_module->forward(bn->forward(conv->forward(x)));
    y.backward(g);
    return std::vector<Tensor>{y, x.grad(), conv->weight.grad(), bn->weight.grad(),
                               bn->running_var.clone()};
  };
  auto fused = run(true), apart = run(false);
  // The running statistics moved twice by now; the second run's update starts from the first's.
  for (size_t i = 0; i + 1 < fused.size(); ++i) kiln::testing::require_equal(fused[i], apart[i]);
  REQUIRE(bn->num_batches_tracked.item<int64_t>() == 2);
}
