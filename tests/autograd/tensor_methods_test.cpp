// The Tensor op methods (autograd/tensor_methods.cpp) are the free functions under another
// spelling: same values, same gradients.
#include "../test_util.h"

using namespace kiln;

TEST_CASE("each method equals its free function", "[ops][methods]") {
  Tensor x = test::uniform({3, 4}, 0.5, 2, 80);
  Tensor y = test::randn({4, 2}, 81);
  using test::require_identical;
  require_identical(x.sum({1}, true), sum(x, {1}, true));
  require_identical(x.mean({0}), mean(x, {0}));
  require_identical(x.max({1}), max(x, {1}));
  require_identical(x.min(), min(x));
  require_identical(x.var({1}, 0, true), var(x, {1}, 0, true));
  require_identical(x.argmax(1), argmax(x, 1));
  require_identical(x.neg(), neg(x));
  require_identical(x.exp(), exp(x));
  require_identical(x.log(), log(x));
  require_identical(x.sqrt(), sqrt(x));
  require_identical(x.rsqrt(), rsqrt(x));
  require_identical(x.abs(), abs(x));
  require_identical(x.pow(1.5), pow(x, 1.5));
  require_identical(x.relu(), relu(x));
  require_identical(x.sigmoid(), sigmoid(x));
  require_identical(x.tanh(), tanh(x));
  require_identical(x.clamp(0.7, 1.2), clamp(x, 0.7, 1.2));
  require_identical(x.matmul(y), matmul(x, y));
  require_identical(x.to(DType::f32), to(x, DType::f32));
  require_identical(x.transpose(0, 1).contiguous(), contiguous(x.transpose(0, 1)));
  require_identical(x.clone(), clone(x));
  require_identical(x.view({12}), view(x, {12}));
  require_identical(x.reshape({2, 6}), reshape(x, {2, 6}));
  require_identical(x.permute({1, 0}), permute(x, {1, 0}));
  require_identical(x.transpose(1, 0), transpose(x, 1, 0));
  require_identical(x.slice(1, 0, 4, 3), slice(x, 1, 0, 4, 3));
  require_identical(x.slice(0, 0, 1).expand({2, 4}), expand(x.slice(0, 0, 1), {2, 4}));
  require_identical(x.unsqueeze(0).squeeze(), squeeze(unsqueeze(x, 0)));
  require_identical(x.unsqueeze(2).squeeze(2), squeeze(unsqueeze(x, 2), 2));
  require_identical(x.flatten(), flatten(x));
}

TEST_CASE("methods record the same gradients as their free functions", "[ops][methods]") {
  Tensor x = test::uniform({2, 3}, 0.5, 2, 82).requires_grad_();
  CHECK(autograd::gradcheck([](const std::vector<Tensor>& in) {
    const Tensor& t = in[0];
    return t.exp().log().sqrt().rsqrt().abs().pow(2).relu().sigmoid().tanh().clamp(-1, 0.9).neg() +
           t.sum({1}, true) + t.mean({0}) - t.max({1}, true) + t.min() + t.var({1}, 1, true);
  }, {x}));
}
