// Fixed-chunk determinism: a graph large enough to split every kernel into several parallel chunks
// gives bit-identical outputs and gradients at 1 and 2 threads.
#include "../test_util.h"

using namespace kiln;

namespace {

struct Results {
  std::vector<Tensor> tensors;
};

Results run_graph(int threads) {
  const int previous = num_threads();
  set_num_threads(threads);
  Generator gen(2024);
  Tensor a = Tensor::randn({512, 384}, DType::f32, &gen).requires_grad_();
  Tensor b = (Tensor::randn({384, 256}, DType::f32, &gen) * 0.05f).detach().requires_grad_();
  Tensor bias = Tensor::randn({256}, DType::f32, &gen).requires_grad_();
  Tensor w = Tensor::randn({4, 256, 96}, DType::f64, &gen).requires_grad_();

  // h: [512, 256] = 131072 elements; every reduction below runs over > 100k elements or over
  // long rows and columns.
  Tensor h = (matmul(a, b) + bias).tanh();
  Tensor total = h.sum();                      // one long row
  Tensor columns = h.sum({0});                 // column sums
  Tensor rows = h.mean({1}, true);             // row means
  Tensor spread = h.var({0});                  // column variances
  Tensor flat_var = h.view({-1}).var();        // one long row, two passes
  Tensor peak = h.max({1}).sum() + h.min();
  Tensor lsm = log_softmax(h, 1);
  Tensor batched = matmul(h.to(DType::f64).view({2, 256, 256}).slice(2, 0, 256, 1), w.slice(0, 0, 2));
  Tensor loss = total * 1e-3f + columns.pow(2).mean() + (h - rows).abs().mean() + spread.sum() +
                flat_var + peak + lsm.mean() + (h * h).relu().sum() * 1e-4f;
  Tensor loss64 = loss.to(DType::f64) + batched.sigmoid().mean();
  loss64.backward();

  Results r{{h, total, columns, rows, spread, flat_var, peak, lsm, batched, loss64, a.grad(),
             b.grad(), bias.grad(), w.grad()}};
  set_num_threads(previous);
  return r;
}

}  // namespace

TEST_CASE("forward and backward are bit-identical at 1 and 2 threads", "[determinism]") {
  Results one = run_graph(1);
  Results two = run_graph(2);
  REQUIRE(one.tensors.size() == two.tensors.size());
  for (size_t i = 0; i < one.tensors.size(); ++i) {
    INFO("result " << i);
    REQUIRE(one.tensors[i].defined());
    test::require_identical(one.tensors[i], two.tensors[i]);
  }
  // And repeatable at the same thread count.
  Results again = run_graph(2);
  for (size_t i = 0; i < one.tensors.size(); ++i) test::require_identical(again.tensors[i], two.tensors[i]);
}

TEST_CASE("large reductions combine chunk partials in a fixed order", "[determinism]") {
  // Values spanning many magnitudes make the sum depend on the order of additions.
  Generator gen(7);
  Tensor x = (Tensor::randn({300001}, DType::f32, &gen) * 10.0f).exp();
  std::vector<double> sums;
  for (int threads : {1, 2, 1, 2}) {
    const int previous = num_threads();
    set_num_threads(threads);
    sums.push_back(x.sum().item<double>());
    sums.push_back(x.view({300001, 1}).sum({0}).item<double>());
    sums.push_back(x.mean().item<double>());
    set_num_threads(previous);
  }
  for (size_t i = 3; i < sums.size(); ++i) CHECK(sums[i] == sums[i % 3]);
}
