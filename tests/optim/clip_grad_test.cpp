// clip_grad_norm_ and clip_grad_value_ against PyTorch (tests/tools/optim_fixtures.py).
#include "../test_helpers.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

std::vector<Tensor> params_with_grads(const std::map<std::string, Tensor>& fx) {
  std::vector<Tensor> params;
  for (int i = 0; i < 3; ++i) {
    const Tensor g = fx.at("grad." + std::to_string(i));
    Tensor p = Tensor::zeros(g.shape(), DType::f64).requires_grad_();
    p.set_grad(g.clone());
    params.push_back(p);
  }
  return params;
}

}  // namespace

TEST_CASE("clip_grad_norm_ matches PyTorch for each norm type", "[optim][clip]") {
  const auto fx = load_fixture("clip_grad.safetensors");
  const std::map<std::string, std::pair<double, double>> cases = {
      {"l2", {0.5, 2.0}}, {"l1", {1.0, 1.0}}, {"inf", {0.3, INFINITY}}, {"l3", {0.7, 3.0}}, {"loose", {100.0, 2.0}}};
  for (const auto& [name, args] : cases) {
    SECTION(name) {
      auto params = params_with_grads(fx);
      const double total = optim::clip_grad_norm_(params, args.first, args.second);
      const double want = fx.at(name + ".total").item<double>();
      REQUIRE(std::fabs(total - want) <= 1e-14 * want);
      for (int i = 0; i < 3; ++i)
        KILN_REQUIRE_CLOSE(params[i].grad(), fx.at(name + ".grad." + std::to_string(i)), 0, 1e-14);
    }
  }
}

TEST_CASE("clip_grad_value_ clamps like PyTorch", "[optim][clip]") {
  const auto fx = load_fixture("clip_grad.safetensors");
  auto params = params_with_grads(fx);
  optim::clip_grad_value_(params, 0.4);
  for (int i = 0; i < 3; ++i) require_equal(params[i].grad(), fx.at("value.grad." + std::to_string(i)));
}

TEST_CASE("clip_grad_norm_ is the same at any thread count", "[optim][clip]") {
  Generator gen(5);
  const Tensor g = Tensor::randn({300001}, DType::f32, &gen);
  auto norm_with = [&](int threads) {
    set_num_threads(threads);
    Tensor p = Tensor::zeros(g.shape()).requires_grad_();
    p.set_grad(g.clone());
    return optim::clip_grad_norm_({p}, 1.0);
  };
  const int before = num_threads();
  const double one = norm_with(1), two = norm_with(2), many = norm_with(7);
  set_num_threads(before);
  REQUIRE(one == two);
  REQUIRE(one == many);
}

TEST_CASE("clip_grad_norm_ skips missing gradients and reports non-finite norms", "[optim][clip]") {
  Tensor a = Tensor::zeros({2}).requires_grad_(), b = Tensor::zeros({2}).requires_grad_();
  a.set_grad(Tensor::from_vector(std::vector<float>{3, 4}));
  REQUIRE(optim::clip_grad_norm_({a, b}, 10) == 5);
  REQUIRE(a.grad().to_vector<float>() == std::vector<float>{3, 4});  // under max_norm: unchanged
  a.set_grad(Tensor::from_vector(std::vector<float>{INFINITY, 1}));
  REQUIRE_THAT(error_text([&] { optim::clip_grad_norm_({a, b}, 1.0, 2.0, /*error_if_nonfinite=*/true); }),
               Catch::Contains("is inf"));
  REQUIRE(a.grad().to_vector<float>()[1] == 1);  // nothing scaled
}
