// The Philox generator: reproducible streams, sane distributions, and no dependence on the thread
// count or on how a request is split.
#include <cmath>
#include <set>

#include "../test_util.h"

using namespace kiln;

namespace {
struct ThreadCount {
  int previous = num_threads();
  explicit ThreadCount(int n) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(previous); }
};
}  // namespace

TEST_CASE("the same seed gives the same stream, and other seeds differ", "[generator]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    Generator g1(42), g2(42), g3(43);
    Tensor a = Tensor::randn({1000}, dtype, &g1);
    Tensor b = Tensor::randn({1000}, dtype, &g2);
    Tensor c = Tensor::randn({1000}, dtype, &g3);
    test::require_identical(a, b);
    CHECK(a.to_vector<double>() != c.to_vector<double>());
    // The stream moves on: a second draw differs from the first.
    CHECK(Tensor::randn({1000}, dtype, &g1).to_vector<double>() != a.to_vector<double>());
    Tensor::randn({1000}, dtype, &g2);  // g2 catches up with g1
    test::require_identical(Tensor::rand({7}, dtype, &g1), Tensor::rand({7}, dtype, &g2));
  }
}

TEST_CASE("manual_seed resets the default generator", "[generator]") {
  manual_seed(7);
  Tensor a = Tensor::randn({64});
  Tensor b = Tensor::rand({5}, DType::f64);
  manual_seed(7);
  test::require_identical(Tensor::randn({64}), a);
  test::require_identical(Tensor::rand({5}, DType::f64), b);
  CHECK(default_generator().seed() == 7);
  CHECK(default_generator().offset() > 0);
}

TEST_CASE("randn has mean 0 and std 1, and rand is uniform below 1", "[generator]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    Generator g(1);
    const int64_t n = 200000;
    Tensor x = Tensor::randn({n}, dtype, &g);
    const double mean = x.mean().item<double>();
    const double std = std::sqrt(x.var().item<double>());
    // The standard error of the mean is 1/sqrt(n) ~ 0.0022.
    CHECK(std::fabs(mean) < 0.01);
    CHECK(std::fabs(std - 1) < 0.01);
    std::vector<double> v = x.to_vector<double>();
    int64_t beyond_two = 0;
    for (double e : v) beyond_two += std::fabs(e) > 2;
    CHECK(std::fabs(static_cast<double>(beyond_two) / n - 0.0455) < 0.003);  // P(|z| > 2)
    for (double e : v) REQUIRE(std::isfinite(e));

    Tensor u = Tensor::rand({n}, dtype, &g);
    CHECK(u.min().item<double>() >= 0);
    CHECK(u.max().item<double>() < 1);
    CHECK(std::fabs(u.mean().item<double>() - 0.5) < 0.005);
    CHECK(std::fabs(u.var().item<double>() - 1.0 / 12) < 0.002);
  }
}

TEST_CASE("the stream does not depend on the thread count", "[generator][determinism]") {
  // Large enough for several parallel chunks of Philox blocks.
  const Shape shape{3, 100001};
  Tensor one_n, one_u, two_n, two_u;
  {
    ThreadCount t(1);
    Generator g(5);
    one_n = Tensor::randn(shape, DType::f32, &g);
    one_u = Tensor::rand(shape, DType::f64, &g);
  }
  {
    ThreadCount t(2);
    Generator g(5);
    two_n = Tensor::randn(shape, DType::f32, &g);
    two_u = Tensor::rand(shape, DType::f64, &g);
  }
  test::require_identical(one_n, two_n);
  test::require_identical(one_u, two_u);
}

TEST_CASE("the stream does not depend on how a draw is split", "[generator]") {
  // One draw of 8 f32 normals uses two Philox blocks; two draws of 4 use the same two blocks.
  Generator whole(9), parts(9);
  Tensor all = Tensor::randn({8}, DType::f32, &whole);
  Tensor first = Tensor::randn({4}, DType::f32, &parts);
  Tensor second = Tensor::randn({4}, DType::f32, &parts);
  test::require_identical(all, cat({first, second}));
  CHECK(whole.offset() == 2);
  CHECK(parts.offset() == 2);
  // State is (seed, offset): restoring it replays the stream.
  Generator resumed;
  resumed.set_state(9, 1);
  test::require_identical(Tensor::randn({4}, DType::f32, &resumed), second);
}

TEST_CASE("scalar draws: next_u64, next_double, next_below", "[generator]") {
  Generator g(3), h(3);
  CHECK(g.next_u64() == h.next_u64());
  std::set<uint64_t> seen;
  for (int i = 0; i < 2000; ++i) {
    const uint64_t k = g.next_below(10);
    REQUIRE(k < 10);
    seen.insert(k);
    const double d = g.next_double();
    REQUIRE(d >= 0);
    REQUIRE(d < 1);
  }
  CHECK(seen.size() == 10);
  CHECK(g.next_below(1) == 0);
  CHECK(g.next_below(0) == 0);
}

TEST_CASE("random factories refuse integer dtypes", "[generator][errors]") {
  CHECK_THAT(test::error_of([] { Tensor::randn({2}, DType::i64); }),
             Catch::Contains("randn: expected a floating dtype, got i64"));
  CHECK_THAT(test::error_of([] { Tensor::rand({2}, DType::i64); }),
             Catch::Contains("rand: expected a floating dtype, got i64"));
  CHECK(Tensor::randn({0}).numel() == 0);
  CHECK(Tensor::randn({}).dim() == 0);
}
