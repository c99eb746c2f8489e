#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include "../test_helpers.h"
#include "fixture_cases.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// The module a fixture case is named after ("gelu_tanh.3x7" -> GELU(tanh)).
std::shared_ptr<nn::Module> module_for(const std::string& name) {
  if (name.rfind("relu.", 0) == 0) return std::make_shared<nn::ReLU>();
  if (name.rfind("leaky_relu_0.2.", 0) == 0) return std::make_shared<nn::LeakyReLU>(0.2);
  if (name.rfind("leaky_relu.", 0) == 0) return std::make_shared<nn::LeakyReLU>();
  if (name.rfind("gelu_tanh.", 0) == 0) return std::make_shared<nn::GELU>(nn::GeluApproximation::tanh);
  if (name.rfind("gelu.", 0) == 0) return std::make_shared<nn::GELU>();
  if (name.rfind("silu.", 0) == 0) return std::make_shared<nn::SiLU>();
  if (name.rfind("sigmoid.", 0) == 0) return std::make_shared<nn::Sigmoid>();
  if (name.rfind("tanh.", 0) == 0) return std::make_shared<nn::Tanh>();
  throw Error("no module for fixture case " + name);
}

}  // namespace

TEST_CASE("activations match PyTorch forward and backward", "[activation]") {
  auto fixture = load_fixture("activation.safetensors");
  auto cases = fixture_cases(fixture);
  REQUIRE(cases.size() == 16);
  for (const std::string& name : cases) {
    INFO("case " << name);
    auto module = module_for(name);
    Tensor x = leaf_copy(fixture_tensor(fixture, name, "x"));
    Tensor y = module->forward(x);
    KILN_REQUIRE_CLOSE(y, fixture_tensor(fixture, name, "y"), 1e-6, 1e-5);
    y.backward(fixture_tensor(fixture, name, "grad_y"));
    KILN_REQUIRE_CLOSE(x.grad(), fixture_tensor(fixture, name, "grad_x"), 1e-6, 1e-5);
  }
}

TEST_CASE("activation functionals pass gradcheck in float64", "[activation][gradcheck]") {
  manual_seed(21);
  // Odd sizes, values spread over both sides of 0 (the kink of leaky_relu is avoided by randn).
  Tensor x = (Tensor::randn({3, 7}, DType::f64) * 2.0).detach().requires_grad_();
  using Fn = std::function<Tensor(const std::vector<Tensor>&)>;
  std::vector<std::pair<std::string, Fn>> fns = {
      {"leaky_relu", [](const std::vector<Tensor>& in) { return nn::functional::leaky_relu(in[0], 0.1); }},
      {"gelu", [](const std::vector<Tensor>& in) { return nn::functional::gelu(in[0]); }},
      {"gelu tanh", [](const std::vector<Tensor>& in) {
         return nn::functional::gelu(in[0], nn::GeluApproximation::tanh);
       }},
      {"silu", [](const std::vector<Tensor>& in) { return nn::functional::silu(in[0]); }},
      {"relu", [](const std::vector<Tensor>& in) { return nn::functional::relu(in[0]); }},
      {"leaky_relu on a transposed view", [](const std::vector<Tensor>& in) {
         return nn::functional::leaky_relu(in[0].transpose(0, 1), 0.3);
       }},
  };
  for (auto& [name, fn] : fns) {
    INFO(name);
    REQUIRE(autograd::gradcheck(fn, {x}));
  }
}

TEST_CASE("activation modules: shapes, repr and Flatten", "[activation]") {
  Tensor x = Tensor::randn({2, 3, 4, 5});
  REQUIRE(std::make_shared<nn::ReLU>()->forward(x).shape() == x.shape());
  REQUIRE(nn::GELU().forward(x).shape() == x.shape());

  REQUIRE(nn::ReLU().repr() == "ReLU()");
  REQUIRE(nn::LeakyReLU().repr() == "LeakyReLU(negative_slope=0.01)");
  REQUIRE(nn::LeakyReLU(0.2).repr() == "LeakyReLU(negative_slope=0.2)");
  REQUIRE(nn::GELU().repr() == "GELU(approximate='none')");
  REQUIRE(nn::GELU(nn::GeluApproximation::tanh).repr() == "GELU(approximate='tanh')");
  REQUIRE(nn::SiLU().repr() == "SiLU()");
  REQUIRE(nn::Sigmoid().repr() == "Sigmoid()");
  REQUIRE(nn::Tanh().repr() == "Tanh()");
  REQUIRE(nn::Identity().repr() == "Identity()");
  REQUIRE(nn::Flatten().repr() == "Flatten(start_dim=1, end_dim=-1)");

  nn::Identity identity;
  REQUIRE(identity.forward(x).is_same(x));

  auto flat = std::make_shared<nn::Flatten>();
  REQUIRE(flat->forward(x).shape() == Shape{2, 60});
  REQUIRE(nn::Flatten(0, 2).forward(x).shape() == Shape{24, 5});
  REQUIRE(nn::Flatten(-3, -2).forward(x).shape() == Shape{2, 12, 5});
  // Flatten's gradient flows back to the input's shape.
  Tensor leaf = Tensor::randn({2, 3, 4}).requires_grad_();
  flat->forward(leaf).sum().backward();
  REQUIRE(leaf.grad().shape() == Shape{2, 3, 4});

  // A Sequential of activations, as the DESIGN example builds them.
  auto net = std::make_shared<nn::Sequential>(std::make_shared<nn::ReLU>(), std::make_shared<nn::Flatten>());
  REQUIRE(net->forward(x).shape() == Shape{2, 60});
}

TEST_CASE("activation errors name the input", "[activation][errors]") {
  REQUIRE_THAT(error_text([] { nn::functional::gelu(Tensor::zeros({2, 3}, DType::i64)); }),
               Catch::StartsWith("gelu: expected a floating input (f32 or f64), got i64 of shape [2, 3]"));
  REQUIRE_THAT(error_text([] { nn::Flatten().forward(Tensor::randn({5})); }),
               Catch::StartsWith("Flatten(start_dim=1, end_dim=-1): expected an input with at least"
                                 " 2 dims, got shape [5]"));
}
