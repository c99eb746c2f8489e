// Elementwise ops against plain reference loops: broadcasting, non-contiguous operands, dtype
// promotion, and sizes large enough to split into several parallel chunks.
#include <cmath>

#include "../test_util.h"

using namespace kiln;
using kiln::test::broadcast_index;
using kiln::test::error_of;
using kiln::test::require_close;
using kiln::test::unravel;

namespace {

struct BinaryCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  std::function<double(double, double)> ref;
};

std::vector<BinaryCase> binary_cases() {
  return {
      {"add", [](const Tensor& a, const Tensor& b) { return a + b; }, [](double x, double y) { return x + y; }},
      {"sub", [](const Tensor& a, const Tensor& b) { return a - b; }, [](double x, double y) { return x - y; }},
      {"mul", [](const Tensor& a, const Tensor& b) { return a * b; }, [](double x, double y) { return x * y; }},
      {"div", [](const Tensor& a, const Tensor& b) { return a / b; }, [](double x, double y) { return x / y; }},
      {"add()", [](const Tensor& a, const Tensor& b) { return add(a, b); }, [](double x, double y) { return x + y; }},
      {"sub()", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, [](double x, double y) { return x - y; }},
      {"mul()", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, [](double x, double y) { return x * y; }},
      {"div()", [](const Tensor& a, const Tensor& b) { return div(a, b); }, [](double x, double y) { return x / y; }},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }, [](double x, double y) { return std::max(x, y); }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }, [](double x, double y) { return std::min(x, y); }},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(abs(a), b); }, [](double x, double y) { return std::pow(std::fabs(x), y); }},
      {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); }, [](double x, double y) { return double(x == y); }},
      {"ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); }, [](double x, double y) { return double(x != y); }},
      {"lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); }, [](double x, double y) { return double(x < y); }},
      {"le", [](const Tensor& a, const Tensor& b) { return le(a, b); }, [](double x, double y) { return double(x <= y); }},
      {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); }, [](double x, double y) { return double(x > y); }},
      {"ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); }, [](double x, double y) { return double(x >= y); }},
  };
}

// out[i] = ref(a[bcast(i)], b[bcast(i)]) over the broadcast shape.
std::vector<double> reference_binary(const Tensor& a, const Tensor& b, const Shape& out_shape,
                                     const std::function<double(double, double)>& ref) {
  std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  std::vector<double> out(static_cast<size_t>(shape_numel(out_shape)));
  for (size_t i = 0; i < out.size(); ++i) {
    Shape idx = unravel(static_cast<int64_t>(i), out_shape);
    out[i] = ref(va[broadcast_index(idx, a.shape())], vb[broadcast_index(idx, b.shape())]);
  }
  return out;
}

}  // namespace

TEST_CASE("binary ops match a reference loop under broadcasting", "[elementwise]") {
  struct Shapes { Shape a, b, out; };
  const std::vector<Shapes> shapes = {
      {{2, 3}, {2, 3}, {2, 3}},    {{2, 3}, {3}, {2, 3}},      {{4, 1}, {1, 5}, {4, 5}},
      {{3, 1, 2}, {4, 1}, {3, 4, 2}}, {{}, {2, 2}, {2, 2}},    {{2, 2}, {}, {2, 2}},
      {{1}, {3, 1, 1}, {3, 1, 1}}, {{0, 3}, {3}, {0, 3}},      {{5}, {1}, {5}},
  };
  for (DType dtype : {DType::f32, DType::f64}) {
    for (const BinaryCase& c : binary_cases()) {
      for (const Shapes& s : shapes) {
        INFO(c.name << " " << shape_str(s.a) << " with " << shape_str(s.b) << " in " << dtype_name(dtype));
        Tensor a = test::randn(s.a, 1, dtype);
        Tensor b = test::randn(s.b, 2, dtype);
        if (std::string(c.name) == "eq" || std::string(c.name) == "ne" || std::string(c.name) == "le") {
          a = a.clamp(-0.3, 0.3);  // make some ties
          b = b.clamp(-0.3, 0.3);
        }
        Tensor out = c.op(a, b);
        CHECK(out.shape() == s.out);
        CHECK(out.dtype() == dtype);
        require_close(out, reference_binary(a, b, s.out, c.ref), dtype == DType::f32 ? 2e-6 : 1e-14);
      }
    }
  }
}

TEST_CASE("binary ops give the same result on non-contiguous operands", "[elementwise]") {
  Tensor a = test::randn({4, 5}, 3);
  Tensor b = test::randn({4, 5}, 4);
  for (const BinaryCase& c : binary_cases()) {
    INFO(c.name);
    Tensor expected = c.op(a, b);
    test::require_identical(c.op(test::strided_copy(a), test::permuted_copy(b)), expected);
    test::require_identical(c.op(test::permuted_copy(a), test::strided_copy(b)), expected);
    // A broadcast operand that is itself a strided view.
    Tensor row = test::strided_copy(b.slice(0, 0, 1));
    test::require_identical(c.op(a, row), c.op(a, row.contiguous()));
  }
}

TEST_CASE("scalar operators match a reference loop", "[elementwise]") {
  Tensor a = test::randn({3, 4}, 5);
  std::vector<double> va = a.to_vector<double>();
  auto expect = [&](const Tensor& out, auto f) {
    std::vector<double> ref;
    for (double x : va) ref.push_back(f(x));
    require_close(out, ref, 1e-14);
  };
  expect(a + 1.5, [](double x) { return x + 1.5; });
  expect(1.5 + a, [](double x) { return 1.5 + x; });
  expect(a - 2.0, [](double x) { return x - 2.0; });
  expect(2.0 - a, [](double x) { return 2.0 - x; });
  expect(a * 3.0, [](double x) { return x * 3.0; });
  expect(3.0 * a, [](double x) { return 3.0 * x; });
  expect(a / 4.0, [](double x) { return x / 4.0; });
  expect(4.0 / a, [](double x) { return 4.0 / x; });
  expect(-a, [](double x) { return -x; });
  expect(a.pow(2), [](double x) { return x * x; });
  expect(a.pow(3), [](double x) { return x * x * x; });
  expect(a.abs().pow(0.5), [](double x) { return std::sqrt(std::fabs(x)); });
  expect(a.pow(0), [](double) { return 1.0; });
}

TEST_CASE("unary ops match a reference loop, contiguous or not", "[elementwise]") {
  struct UnaryCase {
    const char* name;
    std::function<Tensor(const Tensor&)> op;
    std::function<double(double)> ref;
    bool positive;  // defined on positive inputs only
  };
  const std::vector<UnaryCase> cases = {
      {"neg", [](const Tensor& x) { return x.neg(); }, [](double x) { return -x; }, false},
      {"exp", [](const Tensor& x) { return x.exp(); }, [](double x) { return std::exp(x); }, false},
      {"log", [](const Tensor& x) { return x.log(); }, [](double x) { return std::log(x); }, true},
      {"sqrt", [](const Tensor& x) { return x.sqrt(); }, [](double x) { return std::sqrt(x); }, true},
      {"rsqrt", [](const Tensor& x) { return x.rsqrt(); }, [](double x) { return 1 / std::sqrt(x); }, true},
      {"abs", [](const Tensor& x) { return x.abs(); }, [](double x) { return std::fabs(x); }, false},
      {"relu", [](const Tensor& x) { return x.relu(); }, [](double x) { return x > 0 ? x : 0; }, false},
      {"sigmoid", [](const Tensor& x) { return x.sigmoid(); }, [](double x) { return 1 / (1 + std::exp(-x)); }, false},
      {"tanh", [](const Tensor& x) { return x.tanh(); }, [](double x) { return std::tanh(x); }, false},
      {"clamp", [](const Tensor& x) { return x.clamp(-0.5, 0.25); }, [](double x) { return std::min(std::max(x, -0.5), 0.25); }, false},
      {"free exp", [](const Tensor& x) { return kiln::exp(x); }, [](double x) { return std::exp(x); }, false},
      {"free clamp", [](const Tensor& x) { return kiln::clamp(x, 0, 1); }, [](double x) { return std::min(std::max(x, 0.0), 1.0); }, false},
  };
  for (DType dtype : {DType::f32, DType::f64}) {
    for (const auto& c : cases) {
      INFO(c.name << " in " << dtype_name(dtype));
      Tensor x = c.positive ? test::uniform({3, 7}, 0.1, 3, 6, dtype) : test::randn({3, 7}, 6, dtype) * 2.0;
      std::vector<double> ref;
      for (double v : x.to_vector<double>()) ref.push_back(c.ref(v));
      Tensor out = c.op(x);
      CHECK(out.dtype() == dtype);
      require_close(out, ref, dtype == DType::f32 ? 2e-6 : 1e-14);
      test::require_identical(c.op(test::strided_copy(x)), out);
      test::require_identical(c.op(test::permuted_copy(x)), out);
    }
  }
}

TEST_CASE("where picks from a or b by a broadcast condition", "[elementwise]") {
  Tensor cond = Tensor::from_vector(std::vector<float>{1, 0, 1}, {3});
  Tensor a = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::full({2, 1}, -1);
  Tensor out = where(cond, a, b);
  CHECK(out.shape() == Shape{2, 3});
  CHECK(out.to_vector<float>() == std::vector<float>{1, -1, 3, 4, -1, 6});
  CHECK(where(cond, a, b.to(DType::f64)).dtype() == DType::f64);
  CHECK_THAT(error_of([&] { where(Tensor::ones({4}), a, b); }),
             Catch::Contains("where: shapes [4] and [2, 3] do not broadcast"));
}

TEST_CASE("comparisons give 1 and 0 in the promoted dtype", "[elementwise]") {
  Tensor a = Tensor::from_vector(std::vector<int64_t>{1, 2, 3});
  Tensor b = Tensor::from_vector(std::vector<int64_t>{3, 2, 1});
  CHECK(lt(a, b).dtype() == DType::i64);
  CHECK(lt(a, b).to_vector<int64_t>() == std::vector<int64_t>{1, 0, 0});
  CHECK(eq(a, b).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 0});
  CHECK(ge(a, b.to(DType::f32)).dtype() == DType::f32);
  CHECK(ge(a, b.to(DType::f32)).to_vector<float>() == std::vector<float>{0, 1, 1});
}

TEST_CASE("dtype promotion follows PyTorch for tensors", "[elementwise][dtype]") {
  Tensor i = Tensor::from_vector(std::vector<int64_t>{1, 2, 7});
  Tensor f = Tensor::from_vector(std::vector<float>{0.5f, 0.5f, 0.5f});
  Tensor d = Tensor::from_vector(std::vector<double>{2, 2, 2});
  CHECK((i + i).dtype() == DType::i64);
  CHECK((i * i).to_vector<int64_t>() == std::vector<int64_t>{1, 4, 49});
  CHECK((i + f).dtype() == DType::f32);
  CHECK((f + d).dtype() == DType::f64);
  CHECK((i + d).dtype() == DType::f64);
  // True division of integers gives floats.
  CHECK((i / i).dtype() == DType::f32);
  require_close(i / Tensor::from_vector(std::vector<int64_t>{2, 4, 2}), {0.5, 0.5, 3.5});
  require_close(i / 2.0, {0.5, 1, 3.5});
  CHECK((i / 2.0).dtype() == DType::f32);
  // An integer power of an integer tensor stays integer, as torch.pow.
  CHECK(i.pow(2).dtype() == DType::i64);
  CHECK(i.pow(2).to_vector<int64_t>() == std::vector<int64_t>{1, 4, 49});
  CHECK(pow(i, i).dtype() == DType::i64);
  CHECK(pow(i, i).to_vector<int64_t>() == std::vector<int64_t>{1, 4, 823543});
  CHECK(i.pow(0.5).dtype() == DType::f32);
  // Integral scalars keep an integer tensor integer; fractional ones make it f32.
  CHECK((i + 2.0).dtype() == DType::i64);
  CHECK((i * 3.0).to_vector<int64_t>() == std::vector<int64_t>{3, 6, 21});
  CHECK((i + 2.5).dtype() == DType::f32);
  CHECK((i * INFINITY).dtype() == DType::f32);
  CHECK(std::isnan((i + NAN).to_vector<float>()[0]));
  require_close(i + 2.5, {3.5, 4.5, 9.5});
  // A 0-dim tensor does not raise the dtype of a dimensioned tensor of the same kind.
  CHECK((f * Tensor::scalar(2, DType::f64)).dtype() == DType::f32);
  CHECK((Tensor::scalar(2, DType::f64) * f).dtype() == DType::f32);
  CHECK((d * Tensor::scalar(2, DType::f32)).dtype() == DType::f64);
  CHECK((i * Tensor::scalar(2, DType::f64)).dtype() == DType::f64);  // a higher kind still wins
  CHECK((Tensor::scalar(2, DType::f32) + Tensor::scalar(2, DType::f64)).dtype() == DType::f64);
  // Float-only unary ops compute integers in f32, like torch.
  CHECK(i.exp().dtype() == DType::f32);
  CHECK(i.sqrt().dtype() == DType::f32);
  CHECK(i.abs().dtype() == DType::i64);
  CHECK((-i).to_vector<int64_t>() == std::vector<int64_t>{-1, -2, -7});
  // clamp keeps integers integer for integral bounds, and computes in f32 otherwise.
  CHECK(i.clamp(2, 5).to_vector<int64_t>() == std::vector<int64_t>{2, 2, 5});
  CHECK(i.clamp(1.5, 6.5).dtype() == DType::f32);
  require_close(i.clamp(1.5, 6.5), {1.5, 2, 6.5});
  CHECK(i.clamp(-INFINITY, 3).to_vector<int64_t>() == std::vector<int64_t>{1, 2, 3});
}

TEST_CASE("broadcasting errors name both shapes and the dim", "[elementwise][errors]") {
  Tensor a = Tensor::zeros({2, 3});
  Tensor b = Tensor::zeros({4});
  CHECK_THAT(error_of([&] { a + b; }),
             Catch::Contains("add: shapes [2, 3] and [4] do not broadcast (dim 1 has sizes 3 and 4)"));
  CHECK_THAT(error_of([&] { a * Tensor::zeros({3, 3}); }),
             Catch::Contains("mul: shapes [2, 3] and [3, 3] do not broadcast (dim 0 has sizes 2 and 3)"));
  CHECK_THAT(error_of([&] { maximum(a, b); }), Catch::Contains("maximum: shapes [2, 3] and [4]"));
  CHECK_THAT(error_of([&] { a.clamp(1, 0); }), Catch::Contains("clamp: expected min <= max, got min 1 and max 0"));
}

TEST_CASE("large elementwise ops split into chunks and match the reference", "[elementwise]") {
  // 3 * 70001 elements is several 2^16-element chunks, with a ragged last one.
  Tensor a = test::randn({3, 70001}, 7, DType::f32);
  Tensor b = test::randn({70001}, 8, DType::f32);
  Tensor out = a * b + a;
  std::vector<float> va = a.to_vector<float>(), vb = b.to_vector<float>(), vo = out.to_vector<float>();
  for (size_t i = 0; i < vo.size(); ++i) {
    float expected = va[i] * vb[i % 70001] + va[i];
    if (vo[i] != expected) FAIL("element " << i << ": " << vo[i] << " vs " << expected);
  }
  // A transposed large operand walks a strided layout across chunk boundaries.
  Tensor t = test::randn({300, 400}, 9, DType::f32);
  Tensor tt = t.transpose(0, 1);
  test::require_identical((tt + 1.0f).contiguous(), tt.contiguous() + 1.0f);
}

TEST_CASE("NaN propagates through maximum, minimum and clamp", "[elementwise]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor a = Tensor::from_vector(std::vector<double>{nan, 1, 2});
  Tensor b = Tensor::from_vector(std::vector<double>{0, nan, 1});
  std::vector<double> mx = maximum(a, b).to_vector<double>();
  CHECK(std::isnan(mx[0]));
  CHECK(std::isnan(mx[1]));
  CHECK(mx[2] == 2);
  std::vector<double> mn = minimum(a, b).to_vector<double>();
  CHECK(std::isnan(mn[0]));
  CHECK(std::isnan(mn[1]));
  CHECK(mn[2] == 1);
  CHECK(std::isnan(a.clamp(0, 1).to_vector<double>()[0]));
}

TEST_CASE("tensors with many non-mergeable dims still index correctly", "[elementwise]") {
  // 18 dims of size 2, permuted so no two neighbours merge.
  Shape shape(18, 2);
  Tensor a = Tensor::arange(int64_t{1} << 18, DType::f32).view(shape);
  std::vector<int64_t> order;
  for (int64_t d = 0; d < 18; d += 2) order.push_back(d);
  for (int64_t d = 1; d < 18; d += 2) order.push_back(d);
  Tensor p = a.permute(order);
  test::require_identical(p + 0.0f, p.contiguous());
}
