// Gradients of matmul (autograd/linalg_ops.cpp): 2-D, 1-D operands, broadcast batch dims,
// transposed and sliced operands.
#include "../test_util.h"

using namespace kiln;
using kiln::test::gradcheck_layouts;

namespace {
Tensor input(const Shape& shape, uint64_t seed) { return test::randn(shape, seed).requires_grad_(); }
}  // namespace

TEST_CASE("matmul passes gradcheck for every operand rank combination", "[ops][linalg]") {
  struct Case { Shape a, b; };
  const std::vector<Case> cases = {
      {{3, 4}, {4, 2}},       {{4}, {4}},          {{3, 4}, {4}},       {{4}, {4, 2}},
      {{2, 3, 4}, {2, 4, 2}}, {{2, 3, 4}, {4, 2}}, {{3, 4}, {2, 4, 2}}, {{2, 1, 2, 3}, {3, 3, 2}},
      {{2, 3, 4}, {4}},       {{4}, {2, 4, 3}},    {{1, 4}, {4, 1}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO(shape_str(cases[i].a) << " @ " << shape_str(cases[i].b));
    Tensor a = input(cases[i].a, 50 + i), b = input(cases[i].b, 60 + i);
    auto f = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
    gradcheck_layouts(f, {a, b});
    CHECK(autograd::gradcheck(f, {a, b.detach()}));
    CHECK(autograd::gradcheck(f, {a.detach(), b}));
    CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0].matmul(in[1]); }, {a, b}));
  }
}

TEST_CASE("matmul of views passes gradcheck", "[ops][linalg]") {
  Tensor a = input({5, 3}, 70), b = input({5, 6}, 71);
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) {
    return matmul(in[0].transpose(0, 1), in[1].slice(1, 0, 6, 2));
  }, {a, b}));
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) {
    return matmul(in[0].unsqueeze(0).expand({2, 5, 3}), in[1].slice(0, 0, 3));
  }, {a, b}));
}

TEST_CASE("matmul's gradient is G B^T and A^T G", "[ops][linalg]") {
  Tensor a = Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}).requires_grad_();
  Tensor b = Tensor::from_vector(std::vector<double>{5, 6, 7, 8}, {2, 2}).requires_grad_();
  matmul(a, b).sum().backward();
  // G = ones: dA[i, k] = sum_j B[k, j], dB[k, j] = sum_i A[i, k].
  CHECK(a.grad().to_vector<double>() == std::vector<double>{11, 15, 11, 15});
  CHECK(b.grad().to_vector<double>() == std::vector<double>{4, 4, 6, 6});
}
