#include <cmath>

#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include "../test_helpers.h"

using namespace kiln;
using namespace kiln::testing;

TEST_CASE("Dropout: the same seed gives the same mask at 1 and 2 threads", "[dropout][threads]") {
  // 49159 elements = 12290 Philox blocks: several chunks of the parallel loop.
  Tensor x = Tensor::ones({7, 7023});
  const int before = num_threads();
  auto run = [&](int threads, uint64_t seed) {
    set_num_threads(threads);
    Generator gen(seed);
    nn::Dropout dp(0.3, &gen);
    return dp.forward(x);
  };
  Tensor a = run(1, 17), b = run(2, 17), c = run(2, 18);
  set_num_threads(before);
  require_equal(a, b);
  REQUIRE(a.to_vector<float>() != c.to_vector<float>());

  // f32 and f64 draw the same mask from the same seed.
  Generator g32(4), g64(4);
  Tensor m32 = nn::functional::dropout(Tensor::ones({5, 9}), 0.5, true, &g32);
  Tensor m64 = nn::functional::dropout(Tensor::ones({5, 9}, DType::f64), 0.5, true, &g64);
  REQUIRE(m32.to_vector<double>() == m64.to_vector<double>());
}

TEST_CASE("Dropout keeps 1 - p of the elements, scaled by 1 / (1 - p)", "[dropout]") {
  Generator gen(123);
  const double p = 0.3;
  Tensor x = Tensor::ones({100000});
  Tensor y = nn::functional::dropout(x, p, true, &gen);
  auto v = y.to_vector<float>();
  int64_t zeros = 0, other = 0;
  double sum = 0;
  for (float e : v) {
    if (e == 0) ++zeros;
    else if (e != static_cast<float>(1 / (1 - p))) ++other;
    sum += e;
  }
  REQUIRE(other == 0);
  const double n = static_cast<double>(v.size());
  // Binomial: sd of the dropped fraction is sqrt(p (1 - p) / n) ~ 0.0015.
  REQUIRE(static_cast<double>(zeros) / n == Approx(p).margin(0.008));
  REQUIRE(sum / n == Approx(1.0).margin(0.012));  // the mean is preserved
  // The next call continues the stream: a different mask.
  Tensor y2 = nn::functional::dropout(x, p, true, &gen);
  REQUIRE(y2.to_vector<float>() != v);
}

TEST_CASE("Dropout backward multiplies by the same scaled mask", "[dropout]") {
  Generator gen(9);
  nn::Dropout dp(0.4, &gen);
  Tensor x = (Tensor::randn({3, 5, 7}) + 3.0f).detach().requires_grad_();
  Tensor y = dp.forward(x);
  Tensor grad_y = Tensor::randn(y.shape());
  y.backward(grad_y);
  // grad_x = grad_y * mask, mask = y / x
  KILN_REQUIRE_CLOSE(x.grad(), grad_y * (y.detach() / x.detach()), 1e-6, 1e-5);
}

TEST_CASE("dropout passes gradcheck with a fixed generator", "[dropout][gradcheck]") {
  manual_seed(2);
  Tensor x = Tensor::randn({3, 7}, DType::f64).requires_grad_();
  REQUIRE(autograd::gradcheck(
      [](const std::vector<Tensor>& in) {
        Generator gen(77);  // the same mask at every evaluation
        return nn::functional::dropout(in[0], 0.35, true, &gen);
      },
      {x}));
}

TEST_CASE("Dropout: eval mode, p = 0 and p = 1", "[dropout]") {
  Tensor x = Tensor::randn({4, 6});
  auto dp = std::make_shared<nn::Dropout>(0.5);
  REQUIRE(dp->repr() == "Dropout(p=0.5, inplace=False)");
  REQUIRE(nn::Dropout(0.1).repr() == "Dropout(p=0.1, inplace=False)");
  dp->eval();
  const uint64_t offset = default_generator().offset();
  REQUIRE(dp->forward(x).is_same(x));                  // identity, and no draw
  REQUIRE(default_generator().offset() == offset);
  dp->train();
  Tensor y = dp->forward(x);
  REQUIRE(default_generator().offset() == offset + 6);  // ceil(24 / 4) blocks
  REQUIRE(y.shape() == x.shape());

  REQUIRE(nn::functional::dropout(x, 0.0).is_same(x));
  REQUIRE(nn::functional::dropout(x, 1.0).to_vector<float>() == std::vector<float>(24, 0.0f));

  // Seeded through the default generator.
  manual_seed(31);
  Tensor a = nn::Dropout(0.5).forward(x);
  manual_seed(31);
  Tensor b = nn::Dropout(0.5).forward(x);
  require_equal(a, b);
}

TEST_CASE("Dropout errors name p", "[dropout][errors]") {
  REQUIRE_THAT(error_text([] { nn::Dropout(1.5); }),
               Catch::StartsWith("Dropout: p is the probability of dropping an element and must be in"
                                 " [0, 1], got 1.5"));
  REQUIRE_THAT(error_text([] { nn::functional::dropout(Tensor::zeros({3}, DType::i64), 0.5); }),
               Catch::Contains("expected a floating input (f32 or f64), got i64"));
}
