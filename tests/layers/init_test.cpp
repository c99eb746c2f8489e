#include <cmath>

#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include "../test_helpers.h"

using namespace kiln;
using namespace kiln::testing;
namespace init = kiln::nn::init;

namespace {

struct Stats {
  double mean = 0, std = 0, min = INFINITY, max = -INFINITY;
};

Stats stats_of(const Tensor& t) {
  Stats s;
  auto v = t.to_vector<double>();
  double sum = 0, sum_sq = 0;
  for (double x : v) {
    sum += x;
    s.min = std::min(s.min, x);
    s.max = std::max(s.max, x);
  }
  s.mean = sum / static_cast<double>(v.size());
  for (double x : v) sum_sq += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(sum_sq / static_cast<double>(v.size()));
  return s;
}

}  // namespace

TEST_CASE("calculate_fan_in_and_fan_out follows PyTorch for Linear and Conv2d weights", "[init]") {
  REQUIRE(init::calculate_fan_in_and_fan_out(Tensor::empty({10, 8})) == std::pair<int64_t, int64_t>{8, 10});
  // Conv2d [out, in / groups, kh, kw]: fans scale by the receptive field kh * kw.
  REQUIRE(init::calculate_fan_in_and_fan_out(Tensor::empty({16, 3, 5, 3})) ==
          std::pair<int64_t, int64_t>{45, 240});
  REQUIRE_THAT(error_text([] { init::calculate_fan_in_and_fan_out(Tensor::empty({7})); }),
               Catch::Contains("expected a weight with at least 2 dims [out, in, ...], got shape [7]"));
}

TEST_CASE("calculate_gain matches torch.nn.init.calculate_gain", "[init]") {
  REQUIRE(init::calculate_gain(init::Nonlinearity::linear) == 1.0);
  REQUIRE(init::calculate_gain(init::Nonlinearity::conv2d) == 1.0);
  REQUIRE(init::calculate_gain(init::Nonlinearity::sigmoid) == 1.0);
  REQUIRE(init::calculate_gain(init::Nonlinearity::tanh) == Approx(5.0 / 3.0));
  REQUIRE(init::calculate_gain(init::Nonlinearity::relu) == Approx(std::sqrt(2.0)));
  REQUIRE(init::calculate_gain(init::Nonlinearity::leaky_relu) == Approx(std::sqrt(2.0 / 1.0001)));
  REQUIRE(init::calculate_gain(init::Nonlinearity::leaky_relu, std::sqrt(5.0)) ==
          Approx(std::sqrt(1.0 / 3.0)));
  REQUIRE(init::calculate_gain(init::Nonlinearity::selu) == 0.75);
}

TEST_CASE("uniform_ and normal_ have the asked-for statistics", "[init]") {
  Generator gen(1);
  Tensor u = Tensor::empty({200, 150});
  init::uniform_(u, -2, 3, &gen);
  Stats s = stats_of(u);
  REQUIRE(s.min >= -2);
  REQUIRE(s.max < 3);
  REQUIRE(s.mean == Approx(0.5).margin(0.03));
  REQUIRE(s.std == Approx(5 / std::sqrt(12.0)).epsilon(0.02));

  Tensor n = Tensor::empty({200, 150}, DType::f64);
  init::normal_(n, 1.5, 0.2, &gen);
  s = stats_of(n);
  REQUIRE(s.mean == Approx(1.5).margin(0.003));
  REQUIRE(s.std == Approx(0.2).epsilon(0.02));
}

TEST_CASE("kaiming and xavier scale by the fans", "[init]") {
  Generator gen(2);
  Tensor w = Tensor::empty({64, 32, 3, 3});  // fan_in 288, fan_out 576
  SECTION("kaiming_uniform_, relu, fan_in: bound = sqrt(2) sqrt(3 / fan_in)") {
    init::kaiming_uniform_(w, 0, init::FanMode::fan_in, init::Nonlinearity::relu, &gen);
    const double bound = std::sqrt(2.0) * std::sqrt(3.0 / 288);
    Stats s = stats_of(w);
    REQUIRE(s.min >= -bound);
    REQUIRE(s.max <= bound);
    REQUIRE(s.max > 0.99 * bound);
    REQUIRE(s.std == Approx(bound / std::sqrt(3.0)).epsilon(0.02));
  }
  SECTION("kaiming_uniform_ with a = sqrt(5) (Linear and Conv2d default): bound = 1 / sqrt(fan_in)") {
    init::kaiming_uniform_(w, std::sqrt(5.0), init::FanMode::fan_in, init::Nonlinearity::leaky_relu, &gen);
    Stats s = stats_of(w);
    REQUIRE(s.max <= 1 / std::sqrt(288.0));
    REQUIRE(s.max > 0.99 / std::sqrt(288.0));
  }
  SECTION("kaiming_normal_, fan_out: std = sqrt(2) / sqrt(fan_out)") {
    init::kaiming_normal_(w, 0, init::FanMode::fan_out, init::Nonlinearity::relu, &gen);
    Stats s = stats_of(w);
    REQUIRE(s.mean == Approx(0).margin(0.002));
    REQUIRE(s.std == Approx(std::sqrt(2.0 / 576)).epsilon(0.02));
  }
  SECTION("xavier_uniform_: bound = gain sqrt(6 / (fan_in + fan_out))") {
    init::xavier_uniform_(w, 2.0, &gen);
    const double bound = 2.0 * std::sqrt(6.0 / (288 + 576));
    Stats s = stats_of(w);
    REQUIRE(s.min >= -bound);
    REQUIRE(s.max <= bound);
    REQUIRE(s.std == Approx(bound / std::sqrt(3.0)).epsilon(0.02));
  }
  SECTION("xavier_normal_: std = gain sqrt(2 / (fan_in + fan_out))") {
    init::xavier_normal_(w, 1.0, &gen);
    REQUIRE(stats_of(w).std == Approx(std::sqrt(2.0 / (288 + 576))).epsilon(0.02));
  }
}

TEST_CASE("init functions are seeded and leave parameters usable", "[init]") {
  Tensor a = Tensor::empty({30, 20}).requires_grad_();  // a parameter: filled without a graph
  Tensor b = Tensor::empty({30, 20});
  Generator g1(42), g2(42), g3(43);
  init::kaiming_normal_(a, 0, init::FanMode::fan_in, init::Nonlinearity::relu, &g1);
  init::kaiming_normal_(b, 0, init::FanMode::fan_in, init::Nonlinearity::relu, &g2);
  require_equal(a.detach(), b);
  REQUIRE(a.requires_grad());
  REQUIRE(a.is_leaf());
  init::kaiming_normal_(b, 0, init::FanMode::fan_in, init::Nonlinearity::relu, &g3);
  REQUIRE(a.to_vector<float>() != b.to_vector<float>());

  // The default generator, through manual_seed.
  manual_seed(8);
  init::xavier_uniform_(a);
  manual_seed(8);
  init::xavier_uniform_(b);
  require_equal(a.detach(), b);

  // The same stream at 1 and 2 threads.
  const int before = num_threads();
  Tensor big1 = Tensor::empty({512, 300}), big2 = Tensor::empty({512, 300});
  set_num_threads(1);
  Generator s1(5);
  init::normal_(big1, 0, 1, &s1);
  set_num_threads(2);
  Generator s2(5);
  init::normal_(big2, 0, 1, &s2);
  set_num_threads(before);
  require_equal(big1, big2);

  init::zeros_(a);
  REQUIRE(a.to_vector<float>() == std::vector<float>(600, 0.0f));
  init::ones_(a);
  REQUIRE(a.to_vector<float>() == std::vector<float>(600, 1.0f));
  init::constant_(a, 0.25);
  REQUIRE(a.to_vector<float>() == std::vector<float>(600, 0.25f));
}

TEST_CASE("init errors name the problem", "[init][errors]") {
  REQUIRE_THAT(error_text([] { init::kaiming_uniform_(Tensor::empty({5})); }),
               Catch::Contains("at least 2 dims [out, in, ...], got shape [5]"));
  REQUIRE_THAT(error_text([] { init::uniform_(Tensor::zeros({3}, DType::i64)); }),
               Catch::Contains("uniform_: expected a floating tensor (f32 or f64), got i64"));
  REQUIRE_THAT(error_text([] { init::uniform_(Tensor::empty({3}), 1, 0); }),
               Catch::Contains("expected low <= high"));
}
