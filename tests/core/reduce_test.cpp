// Reductions against plain reference loops over every subset of dims, keepdim or not, contiguous
// or not; and their edge cases: 0-dim inputs, size-0 dims, NaN, long rows split into chunks.
#include <cmath>
#include <limits>

#include "../test_util.h"

using namespace kiln;
using kiln::test::error_of;
using kiln::test::require_close;

namespace {

enum class Op { sum, mean, max, min, var0, var1, var2 };

// Reduces `t` over the dims in `mask` with a plain loop: groups elements by their kept index.
std::vector<double> reference(const Tensor& t, const std::vector<bool>& mask, Op op) {
  const Shape& shape = t.shape();
  const int64_t ndim = t.dim();
  // out_stride[d]: the step in the (kept-dims) output for a step along input dim d; 0 if reduced.
  Shape out_stride(static_cast<size_t>(ndim), 0);
  int64_t n_out = 1;
  for (int64_t d = ndim - 1; d >= 0; --d) {
    if (mask[d]) continue;
    out_stride[d] = n_out;
    n_out *= shape[d];
  }
  std::vector<std::vector<double>> groups(static_cast<size_t>(n_out));
  std::vector<double> v = t.to_vector<double>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    int64_t rest = i, group = 0;
    for (int64_t d = ndim - 1; d >= 0; --d) {
      group += (rest % shape[d]) * out_stride[d];
      rest /= shape[d];
    }
    groups[static_cast<size_t>(group)].push_back(v[static_cast<size_t>(i)]);
  }
  std::vector<double> out;
  for (const auto& g : groups) {
    double s = 0;
    for (double x : g) s += x;
    const double n = static_cast<double>(g.size());
    switch (op) {
      case Op::sum: out.push_back(s); break;
      case Op::mean: out.push_back(s / n); break;
      case Op::max: out.push_back(*std::max_element(g.begin(), g.end())); break;
      case Op::min: out.push_back(*std::min_element(g.begin(), g.end())); break;
      default: {
        const int correction = op == Op::var0 ? 0 : op == Op::var1 ? 1 : 2;
        double ss = 0;
        for (double x : g) ss += (x - s / n) * (x - s / n);
        out.push_back(ss / std::max(0.0, n - correction));
      }
    }
  }
  return out;
}

Tensor apply(const Tensor& t, const std::vector<int64_t>& dims, bool keepdim, Op op) {
  switch (op) {
    case Op::sum: return t.sum(dims, keepdim);
    case Op::mean: return t.mean(dims, keepdim);
    case Op::max: return t.max(dims, keepdim);
    case Op::min: return t.min(dims, keepdim);
    case Op::var0: return t.var(dims, 0, keepdim);
    case Op::var1: return t.var(dims, 1, keepdim);
    case Op::var2: return t.var(dims, 2, keepdim);
  }
  return {};
}

const char* op_name(Op op) {
  const char* names[] = {"sum", "mean", "max", "min", "var(correction=0)", "var(correction=1)", "var(correction=2)"};
  return names[static_cast<int>(op)];
}

}  // namespace

TEST_CASE("reductions match a reference loop over every subset of dims", "[reduce]") {
  const Shape shape{3, 4, 5};
  const Tensor x = test::randn(shape, 11);
  const Tensor layouts[] = {x, test::strided_copy(x), test::permuted_copy(x)};
  for (Op op : {Op::sum, Op::mean, Op::max, Op::min, Op::var0, Op::var1, Op::var2}) {
    for (int subset = 0; subset < 8; ++subset) {
      std::vector<int64_t> dims;
      std::vector<bool> mask(3, false);
      for (int64_t d = 0; d < 3; ++d) {
        if (subset & (1 << d)) { dims.push_back(d); mask[d] = true; }
      }
      if (dims.empty()) mask.assign(3, true);  // no dims means all dims
      std::vector<double> expected = reference(x, mask, op);
      for (bool keepdim : {false, true}) {
        Shape out_shape;
        for (int64_t d = 0; d < 3; ++d) {
          if (!mask[d]) out_shape.push_back(shape[d]);
          else if (keepdim) out_shape.push_back(1);
        }
        for (size_t layout = 0; layout < 3; ++layout) {
          INFO(op_name(op) << " over " << shape_str(dims) << " keepdim " << keepdim << " layout " << layout);
          Tensor out = apply(layouts[layout], dims, keepdim, op);
          CHECK(out.shape() == out_shape);
          require_close(out, expected, 1e-12, 1e-12);
        }
      }
    }
  }
}

TEST_CASE("negative dims and unordered dim lists reduce the same dims", "[reduce]") {
  Tensor x = test::randn({2, 3, 4}, 12);
  test::require_identical(x.sum({-1}), x.sum({2}));
  test::require_identical(x.sum({2, 0}), x.sum({0, 2}));
  test::require_identical(x.mean({-3, -1}, true), x.mean({0, 2}, true));
  test::require_identical(x.var({-2}), x.var({1}));
}

TEST_CASE("f32 sums accumulate in double", "[reduce]") {
  // A million 0.1f: a float running sum drifts to about 100958; a double one rounds to 100000.
  Tensor tenths = Tensor::full({1000000}, 0.1);
  CHECK(tenths.sum().item<float>() == 100000.0f);
  CHECK(tenths.view({1000, 1000}).sum({1}).sum().item<float>() == 100000.0f);
  CHECK(tenths.view({1000, 1000}).sum({0}).sum().item<float>() == 100000.0f);
  // 1e8 + many small values keeps the small part.
  std::vector<float> v(1000, 0.25f);
  v[0] = 1e8f;
  CHECK(Tensor::from_vector(v).sum().item<float>() == 1e8f + 249.75f);
}

TEST_CASE("long rows split into chunks give the reference sum", "[reduce]") {
  // > 2^15 elements per row, several rows, and a single row: every path of the sum kernel.
  for (const Shape& shape : {Shape{100003}, Shape{3, 40001}, Shape{40001, 3}}) {
    Tensor x = test::randn(shape, 13);
    std::vector<double> v = x.to_vector<double>();
    for (int64_t dim = 0; dim < x.dim(); ++dim) {
      std::vector<bool> mask(x.dim(), false);
      mask[dim] = true;
      require_close(x.sum({dim}), reference(x, mask, Op::sum), 1e-12, 1e-10);
      require_close(x.var({dim}), reference(x, mask, Op::var1), 1e-12, 1e-12);
    }
    double total = 0;
    for (double e : v) total += e;
    require_close(x.sum(), {total}, 1e-12, 1e-9);
    require_close(x.mean(), {total / static_cast<double>(v.size())}, 1e-12, 1e-12);
  }
}

TEST_CASE("integer reductions stay integer, and mean and var need floats", "[reduce][dtype]") {
  Tensor i = Tensor::arange(6).view({2, 3});
  CHECK(i.sum().dtype() == DType::i64);
  CHECK(i.sum().item<int64_t>() == 15);
  CHECK(i.sum({1}).to_vector<int64_t>() == std::vector<int64_t>{3, 12});
  CHECK(i.max({0}).to_vector<int64_t>() == std::vector<int64_t>{3, 4, 5});
  CHECK(i.min().item<int64_t>() == 0);
  CHECK_THAT(error_of([&] { i.mean(); }), Catch::Contains("mean: expected a floating tensor, got i64 of shape [2, 3]"));
  CHECK_THAT(error_of([&] { i.var(); }), Catch::Contains("var: expected a floating tensor, got i64"));
}

TEST_CASE("0-dim inputs reduce to themselves", "[reduce]") {
  Tensor s = Tensor::scalar(2.5, DType::f64);
  CHECK(s.sum().dim() == 0);
  CHECK(s.sum().item<double>() == 2.5);
  CHECK(s.sum({0}).item<double>() == 2.5);
  CHECK(s.sum({-1}, true).dim() == 0);
  CHECK(s.mean().item<double>() == 2.5);
  CHECK(s.max().item<double>() == 2.5);
  CHECK(s.min({0}).item<double>() == 2.5);
  CHECK(s.var({}, 0).item<double>() == 0);
  CHECK(s.argmax(0).item<int64_t>() == 0);
  CHECK_THAT(error_of([&] { s.sum({1}); }), Catch::Contains("sum: dim 1 is out of range for a tensor with 0 dims"));
}

TEST_CASE("size-0 dims: sums are 0, means NaN, max has no identity", "[reduce]") {
  Tensor e = Tensor::zeros({0, 3}, DType::f64);
  CHECK(e.sum().item<double>() == 0);
  CHECK(e.sum({0}).to_vector<double>() == std::vector<double>{0, 0, 0});
  CHECK(e.sum({1}).shape() == Shape{0});
  CHECK(std::isnan(e.mean().item<double>()));
  CHECK(e.max({1}).shape() == Shape{0});  // reducing a non-empty dim of an empty tensor is fine
  CHECK_THAT(error_of([&] { e.max(); }),
             Catch::Contains("max: cannot reduce over dim 0 of size 0 in shape [0, 3] (there is no identity)"));
  CHECK_THAT(error_of([&] { e.argmax(0); }), Catch::Contains("argmax: cannot reduce over dim 0 of size 0 in shape [0, 3]"));
}

TEST_CASE("var with correction: biased, unbiased, and too few elements", "[reduce]") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3, 4});
  CHECK(x.var().item<double>() == Approx(5.0 / 3.0));
  CHECK(x.var({}, 0).item<double>() == Approx(1.25));
  CHECK(x.var({0}, 2).item<double>() == Approx(2.5));
  // n - correction <= 0: inf when the deviations are non-zero, NaN when they are all zero (torch).
  CHECK(std::isinf(x.var({0}, 4).item<double>()));
  CHECK(std::isinf(x.var({0}, 5).item<double>()));
  CHECK(std::isnan(Tensor::ones({1}, DType::f64).var().item<double>()));
  CHECK_THAT(error_of([&] { x.var({0}, -1); }), Catch::Contains("var: expected correction >= 0, got -1"));
}

TEST_CASE("variance stays accurate for a large mean and is never negative", "[reduce]") {
  // 1e4 + 1e-2 * randn: a one-pass formula in float would lose every digit.
  Tensor noise = test::randn({4096}, 14, DType::f32);
  Tensor x = noise * 0.01f + 1e4f;
  const double v = x.var().item<double>();
  const double expected = reference(x, {true}, Op::var1)[0];
  CHECK(v == Approx(expected).epsilon(1e-5));
  CHECK(Tensor::full({100}, 1e4, DType::f32).var().item<double>() == 0);
}

TEST_CASE("max and min propagate NaN", "[reduce]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor x = Tensor::from_vector(std::vector<double>{1, nan, 3, 4, 5, 6}, {2, 3});
  std::vector<double> mx = x.max({1}).to_vector<double>();
  CHECK(std::isnan(mx[0]));
  CHECK(mx[1] == 6);
  CHECK(std::isnan(x.min().item<double>()));
  CHECK(x.argmax(1).to_vector<int64_t>() == std::vector<int64_t>{1, 2});
}

TEST_CASE("argmax and argmin return the first extreme index as i64", "[reduce]") {
  Tensor x = Tensor::from_vector(std::vector<float>{1, 5, 5, 0, -2, 3, 3, -2}, {2, 4});
  Tensor am = x.argmax(1);
  CHECK(am.dtype() == DType::i64);
  CHECK(am.to_vector<int64_t>() == std::vector<int64_t>{1, 1});
  CHECK(argmin(x, 1).to_vector<int64_t>() == std::vector<int64_t>{3, 0});
  CHECK(x.argmax(0).to_vector<int64_t>() == std::vector<int64_t>{0, 0, 0, 0});
  CHECK(x.argmax(-1, true).shape() == Shape{2, 1});
  CHECK(x.transpose(0, 1).argmax(0).to_vector<int64_t>() == std::vector<int64_t>{1, 1});
  CHECK_THAT(error_of([&] { x.argmax(2); }), Catch::Contains("argmax: dim 2 is out of range for a tensor with 2 dims"));
}

TEST_CASE("reduction dim errors name the dims", "[reduce][errors]") {
  Tensor x = Tensor::zeros({2, 3});
  CHECK_THAT(error_of([&] { x.sum({0, -2}); }), Catch::Contains("sum: dim -2 appears more than once in [0, -2]"));
  CHECK_THAT(error_of([&] { x.mean({2}); }),
             Catch::Contains("mean: dim 2 is out of range for a tensor with 2 dims (expected -2 to 1)"));
  CHECK_THAT(error_of([&] { x.max({-3}); }), Catch::Contains("max: dim -3 is out of range"));
}

TEST_CASE("log_softmax and softmax match a reference loop", "[reduce]") {
  Tensor x = test::randn({3, 5}, 15) * 3.0;
  std::vector<double> v = x.to_vector<double>();
  for (int64_t dim : {0, 1, -1}) {
    const int64_t d = dim < 0 ? dim + 2 : dim;
    std::vector<double> ls(v.size());
    for (int64_t i = 0; i < 3; ++i) {
      for (int64_t j = 0; j < 5; ++j) {
        double s = 0;
        for (int64_t k = 0; k < (d == 0 ? 3 : 5); ++k) s += std::exp(d == 0 ? v[k * 5 + j] : v[i * 5 + k]);
        ls[i * 5 + j] = v[i * 5 + j] - std::log(s);
      }
    }
    require_close(log_softmax(x, dim), ls, 1e-12, 1e-12);
    std::vector<double> sm;
    for (double l : ls) sm.push_back(std::exp(l));
    require_close(softmax(x, dim), sm, 1e-12, 1e-14);
    require_close(log_softmax(test::permuted_copy(x), dim), ls, 1e-12, 1e-12);
  }
  // Stable for large logits.
  Tensor big = Tensor::from_vector(std::vector<float>{1000, 1001, 1002});
  require_close(log_softmax(big, 0), {-2.4076059644, -1.4076059644, -0.4076059644}, 1e-6);
}
