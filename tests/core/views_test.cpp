// Views share storage; their geometry (shape, strides, offset) is checked against PyTorch's, and
// their values against plain index arithmetic.
#include "../test_util.h"

using namespace kiln;
using kiln::test::error_of;

namespace {
bool shares_storage(const Tensor& a, const Tensor& b) {
  return a.unsafe_impl()->storage == b.unsafe_impl()->storage;
}
std::vector<float> values(const Tensor& t) { return t.to_vector<float>(); }
Tensor iota(const Shape& shape) { return Tensor::arange(shape_numel(shape), DType::f32).view(shape); }
}  // namespace

TEST_CASE("view shares storage and accepts one -1", "[views]") {
  Tensor a = iota({2, 3, 4});
  Tensor v = a.view({6, -1});
  CHECK(v.shape() == Shape{6, 4});
  CHECK(shares_storage(a, v));
  CHECK(v.raw_data_ptr() == a.raw_data_ptr());
  v.slice(0, 0, 1).fill_(-1);  // a write through the view shows in the base
  CHECK(a.to_vector<float>()[3] == -1);
  CHECK(a.view({24}).shape() == Shape{24});
  CHECK(a.view({2, 1, 12}).strides() == Shape{12, 12, 1});
  CHECK(Tensor::scalar(5).view({1, 1}).shape() == Shape{1, 1});
  CHECK(Tensor::ones({1}).view({}).dim() == 0);
  CHECK(Tensor::zeros({0, 4}).view({-1, 2}).shape() == Shape{0, 2});
}

TEST_CASE("view works on non-contiguous tensors when the strides allow it", "[views]") {
  Tensor a = iota({4, 6});
  // Splitting a dim of a transposed tensor keeps it a view: [6, 4] -> [2, 3, 4].
  Tensor t = a.transpose(0, 1);
  Tensor v = t.view({2, 3, 4});
  CHECK(shares_storage(v, a));
  CHECK(v.strides() == Shape{3, 1, 6});
  CHECK(values(v) == values(t.contiguous().view({2, 3, 4})));
  // A column slice keeps rows separate: [4, 3] with strides [6, 1] can merge nothing, but can split rows.
  Tensor s = a.slice(1, 0, 3);
  CHECK(s.view({2, 2, 3}).strides() == Shape{12, 6, 1});
}

TEST_CASE("view refuses when a copy is needed, and the message names shapes and strides", "[views]") {
  Tensor t = iota({2, 3}).transpose(0, 1);
  CHECK_THAT(error_of([&] { t.view({6}); }),
             Catch::Contains("view: a tensor of shape [3, 2] and strides [1, 3] cannot be viewed as [6] without a copy; use reshape()"));
  CHECK_THAT(error_of([&] { iota({2, 3}).view({4, -1}); }),
             Catch::Contains("view: shape [4, -1] is invalid for an input of 6 elements"));
  CHECK_THAT(error_of([&] { iota({2, 3}).view({-1, -1}); }),
             Catch::Contains("view: only one dimension can be -1, got shape [-1, -1]"));
  CHECK_THAT(error_of([&] { iota({2, 3}).view({7}); }),
             Catch::Contains("view: shape [7] is invalid for an input of 6 elements"));
}

TEST_CASE("reshape is a view when it can be, and copies only when it must", "[views]") {
  Tensor a = iota({2, 3, 4});
  Tensor r = a.reshape({4, 6});
  CHECK(shares_storage(a, r));
  Tensor t = a.transpose(1, 2);  // [2, 4, 3]
  Tensor same_layout = t.reshape({2, 2, 2, 3});  // splits the transposed dim only: a view
  CHECK(shares_storage(same_layout, a));
  Tensor flat = t.reshape({-1});  // needs a copy
  CHECK_FALSE(shares_storage(flat, a));
  CHECK(flat.is_contiguous());
  std::vector<float> expected;
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k)
      for (int j = 0; j < 3; ++j) expected.push_back(static_cast<float>(i * 12 + j * 4 + k));
  CHECK(values(flat) == expected);
  CHECK_THAT(error_of([&] { a.reshape({5, -1}); }),
             Catch::Contains("reshape: shape [5, -1] is invalid for an input of 24 elements"));
}

TEST_CASE("permute and transpose reorder shape and strides", "[views]") {
  Tensor a = iota({2, 3, 4});
  Tensor p = a.permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.strides() == Shape{1, 12, 4});
  CHECK(shares_storage(a, p));
  std::vector<float> expected;
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) expected.push_back(static_cast<float>(i * 12 + j * 4 + k));
  CHECK(values(p) == expected);
  CHECK(a.permute({-1, -3, -2}).shape() == Shape{4, 2, 3});
  Tensor t = a.transpose(-1, 0);
  CHECK(t.shape() == Shape{4, 3, 2});
  CHECK(t.strides() == Shape{1, 4, 12});
  CHECK(a.transpose(1, 1).strides() == a.strides());
  CHECK(Tensor::scalar(2).transpose(0, -1).dim() == 0);  // allowed on 0-dim, as torch

  CHECK_THAT(error_of([&] { a.permute({0, 1}); }),
             Catch::Contains("permute: expected 3 dims for a tensor of shape [2, 3, 4], got [0, 1]"));
  CHECK_THAT(error_of([&] { a.permute({0, 1, 1}); }), Catch::Contains("permute: dim 1 repeats in [0, 1, 1]"));
  CHECK_THAT(error_of([&] { a.permute({0, 1, 3}); }),
             Catch::Contains("permute: dim 3 is out of range for a tensor with 3 dims (expected -3 to 2)"));
  CHECK_THAT(error_of([&] { a.transpose(0, 3); }),
             Catch::Contains("transpose: dim 3 is out of range for a tensor with 3 dims"));
}

TEST_CASE("slice takes start, end and step, with Python-style negative and clamped bounds", "[views]") {
  Tensor a = iota({10});
  CHECK(values(a.slice(0, 2, 5)) == std::vector<float>{2, 3, 4});
  CHECK(values(a.slice(0, 1, 10, 3)) == std::vector<float>{1, 4, 7});
  CHECK(values(a.slice(0, -3, 10)) == std::vector<float>{7, 8, 9});
  CHECK(values(a.slice(0, 0, -8)) == std::vector<float>{0, 1});
  CHECK(values(a.slice(0, -100, 2)) == std::vector<float>{0, 1});
  CHECK(values(a.slice(0, 8, 100)) == std::vector<float>{8, 9});
  CHECK(a.slice(0, 6, 3).numel() == 0);
  CHECK(a.slice(0, 12, 20).numel() == 0);
  Tensor s = a.slice(0, 1, 10, 3);
  CHECK(s.strides() == Shape{3});
  CHECK(s.offset() == 1);
  CHECK(shares_storage(s, a));

  Tensor m = iota({3, 4});
  Tensor c = m.slice(1, 1, 4, 2);  // columns 1 and 3
  CHECK(c.shape() == Shape{3, 2});
  CHECK(values(c) == std::vector<float>{1, 3, 5, 7, 9, 11});
  CHECK(values(m.slice(-2, 1, 2)) == std::vector<float>{4, 5, 6, 7});
  // A slice of a slice composes offsets and steps.
  CHECK(values(iota({20}).slice(0, 1, 20, 2).slice(0, 1, 10, 3)) == std::vector<float>{3, 9, 15});

  CHECK_THAT(error_of([&] { a.slice(0, 0, 5, 0); }), Catch::Contains("slice: expected step >= 1, got 0"));
  CHECK_THAT(error_of([&] { m.slice(2, 0, 1); }),
             Catch::Contains("slice: dim 2 is out of range for a tensor with 2 dims"));
  CHECK_THAT(error_of([&] { Tensor::scalar(1).slice(0, 0, 1); }), Catch::Contains("slice"));
}

TEST_CASE("expand broadcasts size-1 and new leading dims with stride 0", "[views]") {
  Tensor a = iota({3, 1});
  Tensor e = a.expand({2, 3, 4});
  CHECK(e.shape() == Shape{2, 3, 4});
  CHECK(e.strides() == Shape{0, 1, 0});
  CHECK(shares_storage(a, e));
  std::vector<float> expected;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) expected.push_back(static_cast<float>(j));
  CHECK(values(e) == expected);
  CHECK(a.expand({-1, 5}).shape() == Shape{3, 5});
  CHECK(Tensor::scalar(2).expand({2, 2}).shape() == Shape{2, 2});
  CHECK(a.expand({3, 0}).numel() == 0);

  CHECK_THAT(error_of([&] { a.expand({4, 4}); }),
             Catch::Contains("expand: the size 3 of dim 0 of shape [3, 1] must be 1 to expand to [4, 4]"));
  CHECK_THAT(error_of([&] { a.expand({4}); }),
             Catch::Contains("expand: cannot expand shape [3, 1] to fewer dims [4]"));
  CHECK_THAT(error_of([&] { a.expand({-1, 3, 4}); }), Catch::Contains("expand: invalid size -1"));
  CHECK_THAT(error_of([&] { a.expand({3, -2}); }), Catch::Contains("expand: invalid size -2"));
}

TEST_CASE("squeeze and unsqueeze drop and insert size-1 dims", "[views]") {
  Tensor a = iota({1, 3, 1, 2});
  CHECK(a.squeeze().shape() == Shape{3, 2});
  CHECK(a.squeeze(0).shape() == Shape{3, 1, 2});
  CHECK(a.squeeze(-2).shape() == Shape{1, 3, 2});
  CHECK(a.squeeze(1).shape() == Shape{1, 3, 1, 2});  // not size 1: unchanged, as torch
  CHECK(shares_storage(a.squeeze(), a));
  CHECK(Tensor::scalar(1).squeeze().dim() == 0);
  CHECK(Tensor::scalar(1).squeeze(0).dim() == 0);
  CHECK(Tensor::scalar(1).squeeze(-1).dim() == 0);

  Tensor b = iota({2, 3});
  CHECK(b.unsqueeze(0).shape() == Shape{1, 2, 3});
  CHECK(b.unsqueeze(2).shape() == Shape{2, 3, 1});
  CHECK(b.unsqueeze(-1).shape() == Shape{2, 3, 1});
  CHECK(b.unsqueeze(-3).shape() == Shape{1, 2, 3});
  CHECK(b.unsqueeze(1).strides() == Shape{3, 3, 1});
  CHECK(Tensor::scalar(1).unsqueeze(0).shape() == Shape{1});
  CHECK(values(b.unsqueeze(1)) == values(b));
  // unsqueeze of a transposed tensor stays a view that later views can use.
  Tensor u = b.transpose(0, 1).unsqueeze(1);
  CHECK(u.shape() == Shape{3, 1, 2});
  CHECK(shares_storage(u.view({3, 2}), b));

  CHECK_THAT(error_of([&] { b.unsqueeze(3); }),
             Catch::Contains("unsqueeze: dim 3 is out of range for a tensor with 3 dims (expected -3 to 2)"));
  CHECK_THAT(error_of([&] { b.squeeze(2); }),
             Catch::Contains("squeeze: dim 2 is out of range for a tensor with 2 dims"));
}

TEST_CASE("flatten merges a range of dims", "[views]") {
  Tensor a = iota({2, 3, 4, 5});
  CHECK(a.flatten().shape() == Shape{120});
  CHECK(a.flatten(1).shape() == Shape{2, 60});
  CHECK(a.flatten(1, 2).shape() == Shape{2, 12, 5});
  CHECK(a.flatten(-2, -1).shape() == Shape{2, 3, 20});
  CHECK(a.flatten(2, 2).shape() == a.shape());
  CHECK(shares_storage(a.flatten(1), a));
  CHECK(Tensor::scalar(3).flatten().shape() == Shape{1});
  Tensor t = a.transpose(0, 3);  // needs a copy to flatten
  CHECK_FALSE(shares_storage(t.flatten(), a));
  CHECK(values(t.flatten()) == values(t.contiguous().view({-1})));
  CHECK_THAT(error_of([&] { a.flatten(2, 1); }), Catch::Contains("flatten: start_dim 2 comes after end_dim 1"));
}

TEST_CASE("views of views compose, and contiguous() materializes them", "[views]") {
  Tensor a = iota({4, 5, 6});
  Tensor v = a.permute({2, 0, 1}).slice(0, 1, 6, 2).slice(2, -2, 5).unsqueeze(0).squeeze(0);
  CHECK(v.shape() == Shape{3, 4, 2});
  CHECK(shares_storage(v, a));
  std::vector<float> expected;
  for (int k = 1; k < 6; k += 2)
    for (int i = 0; i < 4; ++i)
      for (int j = 3; j < 5; ++j) expected.push_back(static_cast<float>(i * 30 + j * 6 + k));
  CHECK(values(v) == expected);
  Tensor c = v.contiguous();
  CHECK(c.is_contiguous());
  CHECK_FALSE(shares_storage(c, a));
  CHECK(values(c) == expected);
}

TEST_CASE("cat and stack join tensors", "[views]") {
  Tensor a = iota({2, 3});
  Tensor b = iota({1, 3}) + 100.0f;
  Tensor c = cat({a, b}, 0);
  CHECK(c.shape() == Shape{3, 3});
  CHECK(values(c) == std::vector<float>{0, 1, 2, 3, 4, 5, 100, 101, 102});
  Tensor d = cat({a, a.slice(1, 0, 1)}, -1);
  CHECK(values(d) == std::vector<float>{0, 1, 2, 0, 3, 4, 5, 3});
  CHECK(cat({a, a.to(DType::f64)}).dtype() == DType::f64);  // dtypes promote
  Tensor s = stack({a, a}, 1);
  CHECK(s.shape() == Shape{2, 2, 3});
  CHECK(values(s) == std::vector<float>{0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5});
  CHECK(stack({Tensor::scalar(1), Tensor::scalar(2)}).shape() == Shape{2});

  CHECK_THAT(error_of([&] { cat({a, iota({2, 2})}, 0); }),
             Catch::Contains("cat: tensor 1 has shape [2, 2], which differs from tensor 0's [2, 3] outside dim 0"));
  CHECK_THAT(error_of([&] { cat({a, iota({6})}, 0); }),
             Catch::Contains("cat: tensor 1 has shape [6], expected the same rank as tensor 0 of shape [2, 3]"));
  CHECK_THAT(error_of([&] { cat({}, 0); }), Catch::Contains("cat: expected at least one tensor"));
  CHECK_THAT(error_of([&] { cat({Tensor::scalar(1), Tensor::scalar(2)}); }), Catch::Contains("cat"));
}
