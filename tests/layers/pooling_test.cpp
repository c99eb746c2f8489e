#include <array>
#include <cmath>

#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include "../test_helpers.h"
#include "fixture_cases.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// The module of a fixture case; config = [kind, kernel, stride, padding, count_include_pad, oh, ow]
// with kind 0 max, 1 avg, 2 adaptive avg.
std::shared_ptr<nn::Module> module_for(const std::vector<int64_t>& c) {
  const nn::Pool2dOptions options{.stride = c[2], .padding = c[3]};
  if (c[0] == 0) return std::make_shared<nn::MaxPool2d>(c[1], options);
  if (c[0] == 1) return std::make_shared<nn::AvgPool2d>(c[1], options, c[4] != 0);
  return std::make_shared<nn::AdaptiveAvgPool2d>(c[5], c[6]);
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

}  // namespace

TEST_CASE("pooling matches PyTorch forward and backward", "[pooling]") {
  auto fixture = load_fixture("pooling.safetensors");
  auto cases = fixture_cases(fixture);
  REQUIRE(cases.size() == 14);
  for (const std::string& name : cases) {
    INFO("case " << name);
    auto config = fixture_tensor(fixture, name, "config").to_vector<int64_t>();
    auto module = module_for(config);
    Tensor x = leaf_copy(fixture_tensor(fixture, name, "x"));
    Tensor y = module->forward(x);
    y.backward(fixture_tensor(fixture, name, "grad_y"));
    if (config[0] == 0) {
      // Max pooling picks an element and routes the gradient to it: exact, ties included.
      require_equal(y, fixture_tensor(fixture, name, "y"));
      require_equal(x.grad(), fixture_tensor(fixture, name, "grad_x"));
    } else {
      KILN_REQUIRE_CLOSE(y, fixture_tensor(fixture, name, "y"), 1e-6, 1e-5);
      KILN_REQUIRE_CLOSE(x.grad(), fixture_tensor(fixture, name, "grad_x"), 1e-6, 1e-5);
    }
  }
}

TEST_CASE("pooling functionals pass gradcheck in float64", "[pooling][gradcheck]") {
  manual_seed(4);
  Tensor x = Tensor::randn({2, 3, 7, 5}, DType::f64).requires_grad_();
  std::vector<std::pair<std::string, Fn>> fns = {
      {"max k3 s2 p1", [](const std::vector<Tensor>& in) {
         return nn::functional::max_pool2d(in[0], 3, {.stride = 2, .padding = 1});
       }},
      {"max k2 s1 (overlapping)", [](const std::vector<Tensor>& in) {
         return nn::functional::max_pool2d(in[0], 2, {.stride = 1});
       }},
      {"avg k3 s2 p1", [](const std::vector<Tensor>& in) {
         return nn::functional::avg_pool2d(in[0], 3, {.stride = 2, .padding = 1});
       }},
      {"avg k3 s1 p1 without pad counting", [](const std::vector<Tensor>& in) {
         return nn::functional::avg_pool2d(in[0], 3, {.stride = 1, .padding = 1}, false);
       }},
      {"adaptive 3x2", [](const std::vector<Tensor>& in) {
         return nn::functional::adaptive_avg_pool2d(in[0], 3, 2);
       }},
      {"adaptive upsampling 9x6", [](const std::vector<Tensor>& in) {
         return nn::functional::adaptive_avg_pool2d(in[0], 9, 6);
       }},
      {"max on a 3-D [C, H, W] slice", [](const std::vector<Tensor>& in) {
         return nn::functional::max_pool2d(in[0].slice(0, 1, 2).squeeze(0), 3, {.stride = 2});
       }},
      {"avg on a permuted (non-contiguous) input", [](const std::vector<Tensor>& in) {
         return nn::functional::avg_pool2d(in[0].permute({0, 1, 3, 2}), 2);
       }},
  };
  for (auto& [name, fn] : fns) {
    INFO(name);
    REQUIRE(autograd::gradcheck(fn, {x}));
  }
}

TEST_CASE("pooling output shapes, strides and repr", "[pooling]") {
  Tensor x = Tensor::randn({2, 8, 5, 5});
  auto mp = std::make_shared<nn::MaxPool2d>(3, nn::Pool2dOptions{.stride = 2, .padding = 1});
  auto ap = std::make_shared<nn::AvgPool2d>(2, nn::Pool2dOptions{.stride = 2});
  auto gap = std::make_shared<nn::AdaptiveAvgPool2d>(1);
  REQUIRE(mp->forward(x).shape() == Shape{2, 8, 3, 3});
  REQUIRE(ap->forward(x).shape() == Shape{2, 8, 2, 2});
  REQUIRE(gap->forward(x).shape() == Shape{2, 8, 1, 1});
  REQUIRE(nn::MaxPool2d(2).forward(Tensor::randn({1, 1, 7, 4})).shape() == Shape{1, 1, 3, 2});
  REQUIRE(nn::AdaptiveAvgPool2d(2, 3).forward(Tensor::randn({3, 7, 5})).shape() == Shape{3, 2, 3});

  REQUIRE(mp->repr() == "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)");
  // stride 0 (the default) means the kernel size, as PyTorch's stride=None
  REQUIRE(nn::MaxPool2d(2).repr() == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)");
  REQUIRE(nn::MaxPool2d(2).stride == 2);
  REQUIRE(ap->repr() == "AvgPool2d(kernel_size=2, stride=2, padding=0)");
  REQUIRE(nn::AvgPool2d(3).repr() == "AvgPool2d(kernel_size=3, stride=3, padding=0)");
  REQUIRE(gap->repr() == "AdaptiveAvgPool2d(output_size=1)");
  REQUIRE(nn::AdaptiveAvgPool2d(2, 3).repr() == "AdaptiveAvgPool2d(output_size=(2, 3))");

  // Global average pooling is the mean over H, W.
  KILN_REQUIRE_CLOSE(gap->forward(x).flatten(1), x.mean({2, 3}), 1e-6, 1e-5);
}

TEST_CASE("max pooling takes the first maximum in scan order", "[pooling]") {
  // Two equal maxima in one 2x2 window: the gradient goes to the first (row-major).
  Tensor x = Tensor::from_vector(std::vector<float>{1, 5, 5, 2}, {1, 1, 2, 2}).requires_grad_();
  Tensor y = nn::functional::max_pool2d(x, 2);
  y.sum().backward();
  REQUIRE(x.grad().to_vector<float>() == std::vector<float>{0, 1, 0, 0});
  // A NaN wins, as in PyTorch.
  Tensor z = Tensor::from_vector(std::vector<float>{1, NAN, 3, 2}, {1, 1, 2, 2});
  REQUIRE(std::isnan(nn::functional::max_pool2d(z, 2).item<float>()));
}

TEST_CASE("2x2 stride-2 max pooling agrees with a plain loop on odd sizes, ties and NaNs", "[pooling]") {
  // The 2x2 stride-2 case has its own kernel, with selects for branches; this plain loop is its oracle.
  auto reference = [](const std::vector<float>& x, int64_t planes, int64_t H, int64_t W) {
    const int64_t OH = H / 2, OW = W / 2;
    std::vector<float> y;
    std::vector<int64_t> at;
    for (int64_t plane = 0; plane < planes; ++plane)
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j) {
          float best = -INFINITY;
          int64_t best_at = 2 * i * W + 2 * j;
          for (int64_t h = 2 * i; h < 2 * i + 2; ++h)
            for (int64_t w = 2 * j; w < 2 * j + 2; ++w) {
              const float v = x[plane * H * W + h * W + w];
              if (v > best || std::isnan(v)) {
                best = v;
                best_at = h * W + w;
              }
            }
          y.push_back(best);
          at.push_back(best_at);
        }
    return std::pair(y, at);
  };
  manual_seed(21);
  // Batches of planes up to 16 wide with a power-of-two height go 16 windows at a time (with
  // AVX-512), with any windows left over plane by plane: {2, 13, 2, 2} is one block of 16 and 10
  // left, {2, 3, 4, 4} one block and 8 left, {1, 5, 8, 8} five blocks.
  for (auto [N, C, H, W] : std::vector<std::array<int64_t, 4>>{
           {2, 3, 2, 2}, {2, 3, 7, 5}, {2, 3, 3, 9}, {2, 3, 32, 32}, {2, 3, 17, 2}, {2, 13, 2, 2},
           {2, 3, 4, 4}, {1, 5, 8, 8}, {2, 3, 16, 16}, {1, 3, 16, 4}, {3, 1, 2, 8}, {3, 2, 6, 4}}) {
    INFO(N << "x" << C << "x" << H << "x" << W);
    const int64_t planes = N * C;
    // Values from {0, 1, 2} make ties common; one element in 13 is NaN, some windows get two.
    std::vector<float> values = Tensor::rand({planes * H * W}).to_vector<float>();
    for (float& v : values) v = std::floor(v * 3);
    for (size_t k = 0; k < values.size(); k += 13) values[k] = NAN;
    for (size_t k = 5; k < values.size(); k += 29) values[k] = -INFINITY;
    Tensor x = Tensor::from_vector(values, {N, C, H, W}).requires_grad_();
    Tensor y = nn::functional::max_pool2d(x, 2);
    auto [want_y, want_at] = reference(values, planes, H, W);
    std::vector<float> got_y = y.to_vector<float>();
    REQUIRE(got_y.size() == want_y.size());
    for (size_t k = 0; k < got_y.size(); ++k) {
      INFO("output " << k);
      if (std::isnan(want_y[k])) REQUIRE(std::isnan(got_y[k]));
      else REQUIRE(got_y[k] == want_y[k]);
    }
    // The gradient lands on the reference's argmax.
    y.backward(Tensor::ones(y.shape()));
    std::vector<float> want_grad(values.size(), 0.0f);
    const int64_t OH = H / 2, OW = W / 2;
    for (size_t k = 0; k < want_at.size(); ++k) want_grad[(k / (OH * OW)) * H * W + want_at[k]] += 1;
    REQUIRE(x.grad().to_vector<float>() == want_grad);
  }
}

TEST_CASE("pooling is bit-identical at 1 and 2 threads", "[pooling][threads]") {
  manual_seed(8);
  Tensor x0 = Tensor::randn({4, 64, 17, 13});
  std::vector<std::pair<std::string, Fn>> fns = {
      {"max", [](const std::vector<Tensor>& in) { return nn::functional::max_pool2d(in[0], 3, {.stride = 2, .padding = 1}); }},
      {"max 2x2", [](const std::vector<Tensor>& in) { return nn::functional::max_pool2d(in[0], 2); }},
      {"avg", [](const std::vector<Tensor>& in) { return nn::functional::avg_pool2d(in[0], 3, {.stride = 1, .padding = 1}); }},
      {"adaptive", [](const std::vector<Tensor>& in) { return nn::functional::adaptive_avg_pool2d(in[0], 5, 4); }},
  };
  const int before = num_threads();
  for (auto& [name, fn] : fns) {
    INFO(name);
    auto run = [&](int threads) {
      set_num_threads(threads);
      Tensor x = x0.clone().requires_grad_();
      Tensor y = fn({x});
      y.backward(Tensor::ones(y.shape()));
      return std::pair(y.detach(), x.grad());
    };
    auto one = run(1);
    auto two = run(2);
    require_equal(one.first, two.first);
    require_equal(one.second, two.second);
  }
  set_num_threads(before);
}

TEST_CASE("pooling errors name the shape and the window", "[pooling][errors]") {
  auto mp = std::make_shared<nn::MaxPool2d>(3, nn::Pool2dOptions{.stride = 2, .padding = 1});
  REQUIRE_THAT(error_text([&] { mp->forward(Tensor::randn({2, 3})); }),
               Catch::StartsWith("max_pool2d: expected a 4-D input [N, C, H, W] (or 3-D [C, H, W]),"
                                 " got shape [2, 3]"));
  REQUIRE_THAT(error_text([] { nn::AvgPool2d(4).forward(Tensor::randn({1, 2, 3, 8})); }),
               Catch::StartsWith("avg_pool2d: the input of shape [1, 2, 3, 8] is smaller than"
                                 " kernel_size 4 even with padding 0"));
  REQUIRE_THAT(error_text([] { nn::MaxPool2d(3, {.padding = 2}); }),
               Catch::Contains("0 <= padding <= kernel_size / 2, got kernel_size=3, stride=3, padding=2"));
  REQUIRE_THAT(error_text([] { nn::functional::avg_pool2d(Tensor::randn({1, 1, 4, 4}), 2, {.stride = -1}); }),
               Catch::Contains("stride must be positive (or 0 for the kernel size), got -1"));
  REQUIRE_THAT(error_text([] { nn::AdaptiveAvgPool2d(0); }),
               Catch::Contains("the output size must be positive, got 0x0"));
  REQUIRE_THAT(error_text([] { nn::functional::adaptive_avg_pool2d(Tensor::randn({1, 2, 0, 3}), 1); }),
               Catch::Contains("has an empty spatial dim"));
}
