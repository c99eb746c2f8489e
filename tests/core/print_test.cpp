// operator<< prints tensors the way PyTorch does: one number format chosen for the whole tensor,
// right-aligned columns, nested brackets, and the dtype and autograd state at the end.
#include <limits>
#include <sstream>

#include "../test_util.h"

using namespace kiln;

namespace {
template <class T>
std::string str(const T& t) {
  std::ostringstream out;
  out << t;
  return out.str();
}
Tensor f32(std::vector<float> v, const Shape& shape = {}) { return Tensor::from_vector(v, shape); }
}  // namespace

TEST_CASE("floats print with four decimals, aligned", "[print]") {
  CHECK(str(f32({-1.5f, 2.25f})) == "tensor([-1.5000,  2.2500])");
  CHECK(str(f32({0.001f, 1.0f})) == "tensor([0.0010, 1.0000])");
  CHECK(str(f32({1, -2.5f, 0, 3}, {2, 2})) ==
        "tensor([[ 1.0000, -2.5000],\n"
        "        [ 0.0000,  3.0000]])");
}

TEST_CASE("integral floats print as '1.' like PyTorch", "[print]") {
  CHECK(str(f32({1, 2, 3, 4}, {2, 2})) ==
        "tensor([[1., 2.],\n"
        "        [3., 4.]])");
  CHECK(str(f32({-10, 5})) == "tensor([-10.,   5.])");
}

TEST_CASE("a wide range of magnitudes switches the whole tensor to scientific notation", "[print]") {
  CHECK(str(f32({1e-5f, 1.0f, 100.0f})) == "tensor([1.0000e-05, 1.0000e+00, 1.0000e+02])");
  CHECK(str(f32({123456.0f, 1.0f})) == "tensor([1.2346e+05, 1.0000e+00])");
  CHECK(str(f32({1e9f, 2.0f})) == "tensor([1.0000e+09, 2.0000e+00])");
}

TEST_CASE("nan and inf print as words", "[print]") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  CHECK(str(f32({nan, 1, inf})) == "tensor([nan, 1., inf])");
  CHECK(str(f32({-inf, 0.5f})) == "tensor([  -inf, 0.5000])");
}

TEST_CASE("dtype, 0-dim and empty tensors", "[print]") {
  CHECK(str(Tensor::from_vector(std::vector<double>{0.5, 2})) == "tensor([0.5000, 2.0000], dtype=f64)");
  CHECK(str(Tensor::from_vector(std::vector<int64_t>{1, -20, 3})) == "tensor([  1, -20,   3])");
  CHECK(str(Tensor::from_vector(std::vector<int64_t>{int64_t{1} << 62})) == "tensor([4611686018427387904])");
  CHECK(str(Tensor::scalar(3)) == "tensor(3.)");
  CHECK(str(Tensor::scalar(2.5, DType::f64)) == "tensor(2.5000, dtype=f64)");
  CHECK(str(Tensor::zeros({0})) == "tensor([])");
  CHECK(str(Tensor::zeros({0, 3}, DType::f64)) == "tensor([], size=[0, 3], dtype=f64)");
  CHECK(str(Tensor()) == "tensor(undefined)");
  CHECK(str(DType::f64) == "f64");
}

TEST_CASE("3-D tensors separate blocks with a blank line", "[print]") {
  Tensor a = Tensor::arange(8, DType::f32).view({2, 2, 2});
  CHECK(str(a) ==
        "tensor([[[0., 1.],\n"
        "         [2., 3.]],\n"
        "\n"
        "        [[4., 5.],\n"
        "         [6., 7.]]])");
}

TEST_CASE("non-contiguous tensors print in logical order", "[print]") {
  Tensor a = Tensor::arange(6, DType::f32).view({2, 3}).transpose(0, 1);
  CHECK(str(a) ==
        "tensor([[0., 3.],\n"
        "        [1., 4.],\n"
        "        [2., 5.]])");
}

TEST_CASE("large tensors are summarized with three items at each end", "[print]") {
  Tensor a = Tensor::arange(2000).view({2, 1000});
  CHECK(str(a) ==
        "tensor([[   0,    1,    2,  ...,  997,  998,  999],\n"
        "        [1000, 1001, 1002,  ..., 1997, 1998, 1999]])");
  Tensor b = Tensor::arange(1001);
  CHECK(str(b) == "tensor([   0,    1,    2,  ...,  998,  999, 1000])");
  Tensor c = Tensor::zeros({1001, 1});
  CHECK(str(c) ==
        "tensor([[0.],\n"
        "        [0.],\n"
        "        [0.],\n"
        "        ...,\n"
        "        [0.],\n"
        "        [0.],\n"
        "        [0.]])");
}

TEST_CASE("autograd state shows as requires_grad or grad_fn", "[print]") {
  Tensor x = f32({1, 2}).requires_grad_();
  CHECK(str(x) == "tensor([1., 2.], requires_grad=true)");
  CHECK(str(x * 2.0f) == "tensor([2., 4.], grad_fn=<MulScalarBackward>)");
  CHECK(str(x.exp().sum()) == "tensor(10.1073, grad_fn=<SumBackward>)");
  CHECK(str(x.detach()) == "tensor([1., 2.])");
}

TEST_CASE("long rows wrap at 80 columns, aligned under the first item", "[print]") {
  CHECK(str(Tensor::arange(20, DType::f32) * 1.5) ==
        "tensor([ 0.0000,  1.5000,  3.0000,  4.5000,  6.0000,  7.5000,  9.0000, 10.5000,\n"
        "        12.0000, 13.5000, 15.0000, 16.5000, 18.0000, 19.5000, 21.0000, 22.5000,\n"
        "        24.0000, 25.5000, 27.0000, 28.5000])");
  CHECK(str(Tensor::arange(24, DType::f32).view({2, 12}) * 1.25) ==
        "tensor([[ 0.0000,  1.2500,  2.5000,  3.7500,  5.0000,  6.2500,  7.5000,  8.7500,\n"
        "         10.0000, 11.2500, 12.5000, 13.7500],\n"
        "        [15.0000, 16.2500, 17.5000, 18.7500, 20.0000, 21.2500, 22.5000, 23.7500,\n"
        "         25.0000, 26.2500, 27.5000, 28.7500]])");
}

TEST_CASE("a suffix that does not fit on the last line goes on its own line", "[print]") {
  Tensor x = Tensor::from_vector(std::vector<double>{-1.5, 2.25, 3.5, -4.75, 5.125, 6.5, -7.25, 8.0});
  CHECK(str(x) ==
        "tensor([-1.5000,  2.2500,  3.5000, -4.7500,  5.1250,  6.5000, -7.2500,  8.0000],\n"
        "       dtype=f64)");
}
