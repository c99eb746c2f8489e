// Gradients of the views and copies (autograd/view_ops.cpp): each maps the gradient back onto its
// base's shape, including through chains of views and non-contiguous bases.
#include "../test_util.h"

using namespace kiln;
using kiln::test::gradcheck_layouts;

namespace {
Tensor input(const Shape& shape, uint64_t seed) { return test::randn(shape, seed).requires_grad_(); }
// A fixed, non-uniform weighting of the output, so gradcheck sees where each element went.
Tensor weigh(const Tensor& t) {
  Tensor w = Tensor::arange(t.numel(), DType::f64).view(t.shape()) * 0.1 + 1.0;
  return t * w;
}
}  // namespace

TEST_CASE("every view op passes gradcheck, on contiguous and non-contiguous bases", "[ops][views]") {
  const std::vector<std::pair<const char*, test::Fn>> ops = {
      // Splits and size-1 dims: views that every layout of the input allows.
      {"view", [](const std::vector<Tensor>& in) { return weigh(in[0].view({2, 3, 2, -1})); }},
      {"view()", [](const std::vector<Tensor>& in) { return weigh(view(in[0], {2, 1, 3, 4, 1})); }},
      {"view of contiguous", [](const std::vector<Tensor>& in) { return weigh(in[0].contiguous().view({6, 4})); }},
      {"reshape", [](const std::vector<Tensor>& in) { return weigh(in[0].reshape({3, 8})); }},
      {"reshape()", [](const std::vector<Tensor>& in) { return weigh(reshape(in[0], {-1})); }},
      {"permute", [](const std::vector<Tensor>& in) { return weigh(in[0].permute({2, 0, 1})); }},
      {"permute()", [](const std::vector<Tensor>& in) { return weigh(permute(in[0], {1, 2, 0})); }},
      {"transpose", [](const std::vector<Tensor>& in) { return weigh(in[0].transpose(0, 2)); }},
      {"transpose()", [](const std::vector<Tensor>& in) { return weigh(transpose(in[0], -1, -2)); }},
      {"slice", [](const std::vector<Tensor>& in) { return weigh(in[0].slice(2, 1, 4, 2)); }},
      {"slice()", [](const std::vector<Tensor>& in) { return weigh(slice(in[0], 0, -1, 2)); }},
      {"slice empty", [](const std::vector<Tensor>& in) { return weigh(in[0].slice(1, 2, 2)) + in[0].sum(); }},
      {"expand", [](const std::vector<Tensor>& in) { return weigh(in[0].slice(1, 0, 1).expand({5, 2, 3, 4})); }},
      {"expand()", [](const std::vector<Tensor>& in) { return weigh(expand(in[0], {2, 2, 3, 4})); }},
      {"squeeze", [](const std::vector<Tensor>& in) { return weigh(in[0].slice(1, 1, 2).squeeze()); }},
      {"squeeze(dim)", [](const std::vector<Tensor>& in) { return weigh(squeeze(in[0].slice(1, 1, 2), 1)); }},
      {"squeeze()", [](const std::vector<Tensor>& in) { return weigh(squeeze(in[0])); }},
      {"unsqueeze", [](const std::vector<Tensor>& in) { return weigh(in[0].unsqueeze(1)); }},
      {"unsqueeze()", [](const std::vector<Tensor>& in) { return weigh(unsqueeze(in[0], -1)); }},
      {"flatten", [](const std::vector<Tensor>& in) { return weigh(in[0].flatten(1)); }},
      {"flatten()", [](const std::vector<Tensor>& in) { return weigh(flatten(in[0], 0, 1)); }},
      {"contiguous", [](const std::vector<Tensor>& in) { return weigh(in[0].transpose(0, 1).contiguous()); }},
      {"contiguous()", [](const std::vector<Tensor>& in) { return weigh(contiguous(in[0])); }},
      {"clone", [](const std::vector<Tensor>& in) { return weigh(in[0].clone()); }},
      {"clone()", [](const std::vector<Tensor>& in) { return weigh(clone(in[0])); }},
      {"to()", [](const std::vector<Tensor>& in) { return weigh(to(in[0], DType::f64)); }},
      {"cat", [](const std::vector<Tensor>& in) { return weigh(cat({in[0], in[0].slice(1, 0, 1) * 2.0}, 1)); }},
      {"cat last", [](const std::vector<Tensor>& in) { return weigh(cat({in[0].slice(2, 0, 1), in[0]}, -1)); }},
      {"stack", [](const std::vector<Tensor>& in) { return weigh(stack({in[0], in[0].exp()}, 1)); }},
      {"chain", [](const std::vector<Tensor>& in) {
         return weigh(in[0].permute({2, 0, 1}).slice(0, 1, 4).reshape({3, 6}).transpose(0, 1).unsqueeze(0).expand({2, 6, 3}));
       }},
  };
  Tensor x = input({2, 3, 4}, 41);
  for (const auto& [name, fn] : ops) {
    INFO(name);
    gradcheck_layouts(fn, {x});
  }
}

TEST_CASE("a slice's gradient is zero outside the slice", "[ops][views]") {
  Tensor x = Tensor::zeros({2, 5}, DType::f64).requires_grad_();
  x.slice(1, 1, 5, 2).sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 1, 0, 1, 0, 0, 1, 0, 1, 0});
}

TEST_CASE("an expanded tensor's gradient sums over the copies", "[ops][views]") {
  Tensor x = Tensor::zeros({3, 1}, DType::f64).requires_grad_();
  x.expand({2, 3, 4}).sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{8, 8, 8});
}

TEST_CASE("cat sends each input its part, and skips inputs that need none", "[ops][views]") {
  Tensor a = Tensor::zeros({2}, DType::f64).requires_grad_();
  Tensor b = Tensor::zeros({3}, DType::f64);
  Tensor c = Tensor::zeros({1}, DType::f32).requires_grad_();
  Tensor w = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6});
  (cat({a, b, c}) * w).sum().backward();
  CHECK(a.grad().to_vector<double>() == std::vector<double>{1, 2});
  CHECK_FALSE(b.grad().defined());
  CHECK(c.grad().dtype() == DType::f32);
  CHECK(c.grad().to_vector<float>() == std::vector<float>{6});
}

TEST_CASE("views of a non-leaf carry the gradient back through it", "[ops][views]") {
  Tensor x = input({3, 4}, 42);
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) {
    Tensor h = in[0].exp();
    return h.transpose(0, 1).slice(0, 1, 4) * h.slice(1, 0, 3).transpose(0, 1);
  }, {x}));
}
