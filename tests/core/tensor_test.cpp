// Factories, metadata, element access, conversions and in-place writes of core/tensor.h.
#include <cstring>
#include <limits>

#include "../test_util.h"

using namespace kiln;
using kiln::test::error_of;
using kiln::test::require_close;

TEST_CASE("zeros, ones, full and empty have the asked shape, dtype and values", "[tensor]") {
  for (DType dtype : {DType::f32, DType::f64, DType::i64}) {
    Tensor z = Tensor::zeros({2, 3}, dtype);
    CHECK(z.shape() == Shape{2, 3});
    CHECK(z.dtype() == dtype);
    CHECK(z.is_contiguous());
    CHECK(z.strides() == Shape{3, 1});
    CHECK(z.to_vector<double>() == std::vector<double>(6, 0.0));
    CHECK(Tensor::ones({4}, dtype).to_vector<double>() == std::vector<double>(4, 1.0));
    CHECK(Tensor::full({2, 2}, 7, dtype).to_vector<double>() == std::vector<double>(4, 7.0));
    Tensor e = Tensor::empty({3, 0, 2}, dtype);
    CHECK(e.numel() == 0);
    CHECK(e.shape() == Shape{3, 0, 2});
  }
  CHECK(Tensor::zeros({2}).dtype() == DType::f32);  // f32 by default
  CHECK(Tensor::full({2}, -2.5, DType::f64).to_vector<double>() == std::vector<double>{-2.5, -2.5});
  CHECK(Tensor::full({1}, 2.9, DType::i64).item<int64_t>() == 2);  // truncates like a C++ cast
}

TEST_CASE("a 0-dim tensor has one element and no dims", "[tensor]") {
  Tensor s = Tensor::scalar(3.5, DType::f64);
  CHECK(s.dim() == 0);
  CHECK(s.numel() == 1);
  CHECK(s.shape().empty());
  CHECK(s.is_contiguous());
  CHECK(s.item<double>() == 3.5);
  CHECK(Tensor::zeros({}).numel() == 1);
  CHECK(Tensor::scalar(1).dtype() == DType::f32);
  CHECK_THAT(error_of([&] { s.size(0); }), Catch::Contains("size: dim 0 is out of range for a tensor with 0 dims"));
}

TEST_CASE("arange counts like torch.arange", "[tensor]") {
  Tensor a = Tensor::arange(5);
  CHECK(a.dtype() == DType::i64);
  CHECK(a.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(Tensor::arange(4, DType::f32).to_vector<float>() == std::vector<float>{0, 1, 2, 3});
  CHECK(Tensor::arange(2, 11, 3).to_vector<int64_t>() == std::vector<int64_t>{2, 5, 8});
  CHECK(Tensor::arange(5, 0, -2).to_vector<int64_t>() == std::vector<int64_t>{5, 3, 1});
  CHECK(Tensor::arange(0, 1, 0.25, DType::f64).to_vector<double>() ==
        std::vector<double>{0, 0.25, 0.5, 0.75});
  CHECK(Tensor::arange(0).numel() == 0);
  CHECK(Tensor::arange(3, 1).numel() == 0);  // an empty range, as torch
  CHECK_THAT(error_of([] { Tensor::arange(0, 3, 0); }), Catch::Contains("arange: step must be non-zero"));
}

TEST_CASE("from_vector copies f32, f64 and i64 values into the given shape", "[tensor]") {
  std::vector<float> f{1.5f, -2, 3, 4, 5, 6};
  Tensor a = Tensor::from_vector(f, {2, 3});
  CHECK(a.dtype() == DType::f32);
  CHECK(a.shape() == Shape{2, 3});
  f[0] = 100;  // copies: the tensor does not see later writes to the vector
  CHECK(a.to_vector<float>() == std::vector<float>{1.5f, -2, 3, 4, 5, 6});

  Tensor b = Tensor::from_vector(std::vector<double>{0.1, 0.2, 0.3});
  CHECK(b.dtype() == DType::f64);
  CHECK(b.shape() == Shape{3});  // 1-D when no shape is given
  CHECK(b.to_vector<double>() == std::vector<double>{0.1, 0.2, 0.3});

  Tensor c = Tensor::from_vector(std::vector<int64_t>{int64_t{1} << 60, -7}, {2, 1});
  CHECK(c.dtype() == DType::i64);
  CHECK(c.to_vector<int64_t>() == std::vector<int64_t>{int64_t{1} << 60, -7});  // exact, no double trip

  Tensor s = Tensor::from_vector(std::vector<float>{4}, Shape{1});
  CHECK(s.item<float>() == 4);
  Tensor empty = Tensor::from_vector(std::vector<float>{});
  CHECK(empty.shape() == Shape{0});

  CHECK_THAT(error_of([] { Tensor::from_vector(std::vector<float>{1, 2, 3}, {2, 2}); }),
             Catch::Contains("from_vector: shape [2, 2] holds 4 elements, but 3 values were given"));
}

TEST_CASE("to_vector and item convert between dtypes", "[tensor]") {
  Tensor a = Tensor::from_vector(std::vector<double>{1.75, -2.25}, {2});
  CHECK(a.to_vector<float>() == std::vector<float>{1.75f, -2.25f});
  CHECK(a.to_vector<int64_t>() == std::vector<int64_t>{1, -2});  // truncation toward zero
  CHECK(Tensor::arange(3).to_vector<double>() == std::vector<double>{0, 1, 2});
  CHECK(Tensor::full({1, 1, 1}, 9, DType::i64).item<float>() == 9.0f);
  CHECK_THAT(error_of([&] { a.item<double>(); }),
             Catch::Contains("item: expected a tensor with one element, got shape [2]"));
}

TEST_CASE("to(DType) converts, and returns the same tensor for its own dtype", "[tensor]") {
  Tensor a = Tensor::from_vector(std::vector<float>{1.5f, -2.5f, 3.99f}, {3});
  Tensor d = a.to(DType::f64);
  CHECK(d.dtype() == DType::f64);
  require_close(d, {1.5, -2.5, 3.99}, 1e-6);
  Tensor i = a.to(DType::i64);
  CHECK(i.dtype() == DType::i64);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{1, -2, 3});
  CHECK(a.to(DType::f32).is_same(a));
  // The conversion copies: writing the result leaves the source alone.
  d.fill_(0);
  CHECK(a.to_vector<float>()[0] == 1.5f);
}

TEST_CASE("data_ptr checks the element type", "[tensor]") {
  Tensor a = Tensor::zeros({2});
  CHECK(a.data_ptr<float>() != nullptr);
  CHECK_THAT(error_of([&] { a.data_ptr<double>(); }),
             Catch::Contains("data_ptr: the tensor is f32, but data_ptr<f64> was asked for"));
  // Fresh storage is 64-byte aligned, so kernels may use aligned vector loads.
  CHECK(reinterpret_cast<uintptr_t>(Tensor::empty({33}).raw_data_ptr()) % 64 == 0);
}

TEST_CASE("size, dim and numel, with negative dims counting from the end", "[tensor]") {
  Tensor a = Tensor::zeros({2, 3, 4});
  CHECK(a.dim() == 3);
  CHECK(a.numel() == 24);
  CHECK(a.size(0) == 2);
  CHECK(a.size(-1) == 4);
  CHECK(a.size(-3) == 2);
  CHECK_THAT(error_of([&] { a.size(3); }),
             Catch::Contains("size: dim 3 is out of range for a tensor with 3 dims (expected -3 to 2)"));
  CHECK_THAT(error_of([&] { a.size(-4); }), Catch::Contains("dim -4 is out of range"));
}

TEST_CASE("bad shapes are refused with the shape in the message", "[tensor]") {
  CHECK_THAT(error_of([] { Tensor::zeros({2, -1}); }),
             Catch::Contains("shape: sizes must be non-negative, got [2, -1]"));
  CHECK_THAT(error_of([] { Tensor::empty({int64_t{1} << 40, int64_t{1} << 40}); }),
             Catch::Contains("overflows int64"));
  CHECK_THAT(error_of([] { Tensor::empty({int64_t{1} << 31, int64_t{1} << 20}); }),
             Catch::Contains("needs more memory than any machine has"));
  CHECK_THAT(error_of([] { Tensor().shape(); }), Catch::Contains("this tensor is undefined"));
}

TEST_CASE("size-0 dims: factories, to_vector and copies work on empty tensors", "[tensor]") {
  Tensor e = Tensor::zeros({0, 3});
  CHECK(e.to_vector<float>().empty());
  CHECK(e.clone().shape() == Shape{0, 3});
  CHECK(e.to(DType::f64).shape() == Shape{0, 3});
  CHECK(e.contiguous().numel() == 0);
  e.fill_(1);
  e.add_(Tensor::ones({3}));
  CHECK((e * 2.0f + e).shape() == Shape{0, 3});
}

TEST_CASE("contiguous() copies a non-contiguous tensor into row-major order", "[tensor]") {
  Tensor a = Tensor::arange(6, DType::f32).reshape({2, 3});
  Tensor t = a.transpose(0, 1);
  CHECK_FALSE(t.is_contiguous());
  Tensor c = t.contiguous();
  CHECK(c.is_contiguous());
  CHECK(c.shape() == Shape{3, 2});
  CHECK(c.to_vector<float>() == std::vector<float>{0, 3, 1, 4, 2, 5});
  CHECK(a.contiguous().is_same(a));  // already contiguous: no copy
  // Size-1 dims do not break contiguity, whatever their stride.
  CHECK(a.unsqueeze(1).is_contiguous());
  CHECK(a.slice(0, 1, 2).is_contiguous());
  CHECK_FALSE(a.slice(1, 0, 3, 2).is_contiguous());
}

TEST_CASE("clone makes an independent contiguous copy", "[tensor]") {
  Tensor a = Tensor::arange(6, DType::f64).reshape({2, 3}).transpose(0, 1);
  Tensor c = a.clone();
  CHECK(c.is_contiguous());
  CHECK(c.to_vector<double>() == a.to_vector<double>());
  c.fill_(-1);
  CHECK(a.to_vector<double>()[1] == 3);
}

TEST_CASE("in-place writes: copy_, fill_, zero_, add_, mul_", "[tensor][inplace]") {
  Tensor a = Tensor::zeros({2, 3}, DType::f64);
  a.copy_(Tensor::from_vector(std::vector<float>{1, 2, 3}, {3}));  // broadcasts and converts
  CHECK(a.to_vector<double>() == std::vector<double>{1, 2, 3, 1, 2, 3});
  a.add_(Tensor::from_vector(std::vector<double>{10, 20}, {2, 1}), 0.5);
  CHECK(a.to_vector<double>() == std::vector<double>{6, 7, 8, 11, 12, 13});
  a.mul_(2);
  CHECK(a.to_vector<double>() == std::vector<double>{12, 14, 16, 22, 24, 26});
  a.mul_(Tensor::from_vector(std::vector<double>{1, 0, -1}, {3}));
  CHECK(a.to_vector<double>() == std::vector<double>{12, 0, -16, 22, 0, -26});
  a.fill_(3);
  CHECK(a.to_vector<double>() == std::vector<double>(6, 3));
  a.zero_();
  CHECK(a.to_vector<double>() == std::vector<double>(6, 0));

  // Writes through a non-contiguous view land in the base.
  Tensor base = Tensor::zeros({3, 4});
  base.slice(1, 1, 4, 2).fill_(5);
  CHECK(base.to_vector<float>() == std::vector<float>{0, 5, 0, 5, 0, 5, 0, 5, 0, 5, 0, 5});
  base.transpose(0, 1).slice(0, 0, 1).copy_(Tensor::from_vector(std::vector<float>{7, 8, 9}, {1, 3}));
  CHECK(base.to_vector<float>() == std::vector<float>{7, 5, 0, 5, 8, 5, 0, 5, 9, 5, 0, 5});

  CHECK_THAT(error_of([&] { a.copy_(Tensor::zeros({4})); }),
             Catch::Contains("copy_: shapes [2, 3] and [4] do not broadcast"));
  CHECK_THAT(error_of([&] { a.add_(Tensor::zeros({3, 3})); }),
             Catch::Contains("add_: shapes [2, 3] and [3, 3] do not broadcast"));
  CHECK_THAT(error_of([&] { Tensor::zeros({3}).copy_(Tensor::zeros({2, 3})); }),
             Catch::Contains("copy_: the source of shape [2, 3] does not broadcast to the destination's shape [3]"));
}

TEST_CASE("in-place writes into an expanded tensor are refused, except fill_", "[tensor][inplace]") {
  Tensor e = Tensor::zeros({3, 1}).expand({3, 4});
  CHECK_THAT(error_of([&] { e.add_(Tensor::ones({3, 4})); }),
             Catch::Contains("add_: the destination of shape [3, 4] and strides [1, 0] has elements that share memory"));
  CHECK_THAT(error_of([&] { e.mul_(2.0); }), Catch::Contains("mul_: the destination of shape [3, 4]"));
  CHECK_THAT(error_of([&] { e.mul_(e); }), Catch::Contains("clone() it before writing in place"));
  CHECK_THAT(error_of([&] { e.copy_(Tensor::ones({3, 4})); }), Catch::Contains("copy_: the destination"));
  e.fill_(2);  // one value everywhere: allowed, as PyTorch
  CHECK(e.to_vector<float>() == std::vector<float>(12, 2));
  Tensor::zeros({1, 4}).expand({1, 4}).add_(Tensor::ones({4}));  // size-1 dims may have any stride
}

TEST_CASE("in-place writes bump the storage version that all views share", "[tensor][inplace]") {
  Tensor a = Tensor::zeros({4});
  Tensor v = a.slice(0, 0, 2);
  const uint64_t before = a.unsafe_impl()->storage->version();
  v.fill_(1);
  CHECK(a.unsafe_impl()->storage->version() == before + 1);
  a.add_(Tensor::ones({4}));
  a.mul_(2.0);
  a.mul_(a);
  a.copy_(Tensor::ones({4}));
  a.zero_();
  CHECK(v.unsafe_impl()->storage->version() == before + 6);
}

TEST_CASE("a default-constructed tensor is undefined", "[tensor]") {
  Tensor t;
  CHECK_FALSE(t.defined());
  CHECK(Tensor::zeros({1}).defined());
}
