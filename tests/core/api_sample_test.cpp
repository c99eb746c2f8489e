// The tensor and autograd lines of DESIGN.md's public API sample, as written there, with checks
// that the values they produce are right. (The nn/optim/data lines belong to later modules.)
#include <cmath>

#include "../test_util.h"

using kiln::test::error_of;

TEST_CASE("DESIGN.md's public API sample: tensors and autograd", "[api]") {
  using namespace kiln;
  const int threads_before = num_threads();
  Tensor param = Tensor::zeros({3}).requires_grad_();  // the sample's `param` and `other`
  Tensor other = Tensor::from_vector(std::vector<float>{4, 5, 6}, {3});

  // ---- the sample, line by line ----
  manual_seed(0); set_num_threads(2);
  Tensor x = Tensor::randn({2, 8, 5, 5}).requires_grad_();          // f32 by default
  Tensor v = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3});   // copies; f64/i64 overloads
  std::vector<float> back = v.to_vector<float>();
  Tensor y = ((x * 2.0f + 1.0f).relu()).sum();
  y.backward();  x.grad();                                             // gradients accumulate
  // ops are free functions in namespace kiln; the common ones are also methods
  Tensor a = Tensor::arange(24).to(DType::f32).reshape({2, 3, 4});
  Tensor s = a.permute({2, 0, 1}).slice(/*dim=*/0, /*start=*/1, /*end=*/3).sum({0, 2}, /*keepdim=*/true);
  const std::string m_error = error_of([&] {
  Tensor m = matmul(a, a.transpose(1, 2)) + exp(a).mean({2}, true) - log_softmax(a, /*dim=*/1);
  });
  Tensor d = Tensor::randn({4}, DType::f64);                           // every factory takes a dtype
  { NoGradGuard g; param.copy_(other); }
  // ---- end of the sample ----

  CHECK(num_threads() == 2);
  CHECK(x.dtype() == DType::f32);
  CHECK(x.shape() == Shape{2, 8, 5, 5});
  CHECK(x.requires_grad());
  CHECK(back == std::vector<float>{1, 2, 3});

  // y = sum relu(2x + 1), so dy/dx = 2 [2x + 1 > 0].
  std::vector<float> xs = x.to_vector<float>(), gs = x.grad().to_vector<float>();
  double expected_y = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const float h = xs[i] * 2.0f + 1.0f;
    expected_y += h > 0 ? h : 0;
    REQUIRE(gs[i] == (h > 0 ? 2.0f : 0.0f));
  }
  CHECK(y.dim() == 0);
  CHECK(y.item<double>() == Approx(expected_y).epsilon(1e-6));
  // A second backward through a new graph adds to x.grad.
  ((x * 2.0f + 1.0f).relu()).sum().backward();
  std::vector<float> twice = x.grad().to_vector<float>();
  for (size_t i = 0; i < xs.size(); ++i) REQUIRE(twice[i] == 2 * gs[i]);

  // s[0, i, 0] = sum over k in {1, 2}, j in {0, 1, 2} of a[i, j, k] = 12i + 4j + k = 72i + 33.
  CHECK(s.shape() == Shape{1, 2, 1});
  CHECK(s.to_vector<float>() == std::vector<float>{33, 105});

  // The sample's `m` line cannot run as written: matmul(a, a^T) is [2, 3, 3] while
  // log_softmax(a, 1) is [2, 3, 4]. The library says so, with both shapes.
  CHECK_THAT(m_error, Catch::Contains("sub: shapes [2, 3, 3] and [2, 3, 4] do not broadcast"));
  // Its pieces are right on their own: (a a^T)[0, 0, 0] = 0 + 1 + 4 + 9, mean_k exp(a[0, 0, k]),
  // and each column of softmax over dim 1 sums to 1.
  Tensor mm = matmul(a, a.transpose(1, 2)) + exp(a).mean({2}, true);
  CHECK(mm.shape() == Shape{2, 3, 3});
  const double mean_exp = (1 + std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) / 4;
  CHECK(mm.to_vector<float>()[0] == Approx(14 + mean_exp).epsilon(1e-6));
  test::require_close(exp(log_softmax(a, /*dim=*/1)).sum({1}), std::vector<double>(8, 1.0), 1e-6);

  CHECK(d.dtype() == DType::f64);
  CHECK(d.shape() == Shape{4});
  CHECK(param.to_vector<float>() == std::vector<float>{4, 5, 6});
  CHECK(param.requires_grad());
  CHECK(GradMode::is_enabled());  // the guard restored recording

  set_num_threads(threads_before);
}
