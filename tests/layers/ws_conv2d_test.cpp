#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include "../test_helpers.h"

using namespace kiln;
using kiln::testing::load_fixture;

TEST_CASE("WSConv2d: gradcheck through the standardization and the convolution") {
  manual_seed(11);
  for (bool bias : {true, false}) {
    INFO("bias " << bias);
    auto conv = std::make_shared<nn::WSConv2d>(
        4, 6, 3, nn::Conv2dOptions{.stride = 2, .padding = 1, .groups = 2, .bias = bias},
        DType::f64);
    Tensor x = Tensor::randn({2, 4, 5, 6}, DType::f64).requires_grad_();
    // gradcheck perturbs the parameters in place, so the module sees every perturbation.
    std::vector<Tensor> inputs{x};
    for (const Tensor& p : conv->parameters()) inputs.push_back(p);
    REQUIRE(autograd::gradcheck(
        [&](const std::vector<Tensor>& in) { return conv->forward(in[0]); }, inputs));
  }
}

TEST_CASE("WSConv2d: matches PyTorch (tests/data/ws_conv2d.safetensors)") {
  auto data = load_fixture("ws_conv2d.safetensors");
  for (const std::string name : {"basic", "strided_groups_no_bias"}) {
    INFO(name);
    auto at = [&](const std::string& key) { return data.at(name + "." + key); };
    const std::vector<int64_t> p = at("params").to_vector<int64_t>();
    Tensor x = at("x").clone().requires_grad_();
    const Tensor& w = at("weight");
    const bool has_bias = data.count(name + ".bias") > 0;
    nn::WSConv2d conv(w.size(1) * p[3], w.size(0), w.size(2),
                      {.stride = p[0], .padding = p[1], .dilation = p[2], .groups = p[3],
                       .bias = has_bias});
    NamedTensors state{{"weight", w}};
    if (has_bias) state.emplace_back("bias", at("bias"));
    conv.load_state_dict(state);
    Tensor y = conv.forward(x);
    y.backward(at("grad_y"));
    KILN_REQUIRE_CLOSE(y, at("y"), 1e-4, 1e-4);
    KILN_REQUIRE_CLOSE(x.grad(), at("grad_x"), 1e-4, 1e-4);
    KILN_REQUIRE_CLOSE(conv.weight.grad(), at("grad_weight"), 1e-4, 1e-4);
    if (has_bias) KILN_REQUIRE_CLOSE(conv.bias.grad(), at("grad_bias"), 1e-4, 1e-4);
  }
}

TEST_CASE("WSConv2d: the output ignores each filter's scale and offset") {
  // W and a W + c (per output channel, a > 0) standardize to the same W_hat.
  manual_seed(12);
  nn::WSConv2d conv(3, 4, 3, {.padding = 1}, DType::f64);
  Tensor x = Tensor::randn({2, 3, 6, 5}, DType::f64);
  Tensor before = conv.forward(x);
  {
    NoGradGuard no_grad;
    Tensor scale = Tensor::from_vector(std::vector<double>{0.5, 2, 3, 10}, {4, 1, 1, 1});
    Tensor shift = Tensor::from_vector(std::vector<double>{1, -2, 0.25, 7}, {4, 1, 1, 1});
    conv.weight.copy_(conv.weight * scale + shift);
  }
  // eps breaks the invariance only by about eps / var relative.
  KILN_REQUIRE_CLOSE(conv.forward(x), before, 1e-3, 1e-3);
}

TEST_CASE("WSConv2d: parameters, state_dict and repr are Conv2d's") {
  auto conv = std::make_shared<nn::WSConv2d>(3, 8, 3, nn::Conv2dOptions{.padding = 1});
  REQUIRE(conv->repr() == "WSConv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))");
  NamedTensors state = conv->state_dict();
  REQUIRE(state.size() == 2);
  REQUIRE(state[0].first == "weight");
  REQUIRE(state[1].first == "bias");
  Tensor y = conv->forward(Tensor::randn({1, 3, 5, 5}));
  REQUIRE(y.shape() == Shape{1, 8, 5, 5});
  y.sum().backward();
  for (const Tensor& p : conv->parameters()) REQUIRE(p.grad().defined());
}
