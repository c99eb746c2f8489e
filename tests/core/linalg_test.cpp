// matmul against a triple loop: 2-D, 1-D operands, broadcast batch dims, odd sizes, transposed
// operands, sizes above the tiling threshold, integer and empty operands; the OpenBLAS kernels named.
#include <cblas.h>

#include "../test_util.h"

using namespace kiln;
using kiln::test::error_of;
using kiln::test::require_close;

namespace {

// torch.matmul semantics by hand: promote 1-D operands, broadcast batch dims, loop.
std::vector<double> reference_matmul(const Tensor& a_in, const Tensor& b_in, Shape& out_shape) {
  Shape sa = a_in.shape(), sb = b_in.shape();
  const bool a_vec = sa.size() == 1, b_vec = sb.size() == 1;
  if (a_vec) sa.insert(sa.begin(), 1);
  if (b_vec) sb.push_back(1);
  const int64_t M = sa[sa.size() - 2], K = sa.back(), N = sb.back();
  Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
  const size_t nb = std::max(ba.size(), bb.size());
  Shape batch(nb);
  for (size_t i = 0; i < nb; ++i) {
    int64_t x = i < nb - ba.size() ? 1 : ba[i - (nb - ba.size())];
    int64_t y = i < nb - bb.size() ? 1 : bb[i - (nb - bb.size())];
    batch[i] = x == 1 ? y : x;
  }
  std::vector<double> va = a_in.to_vector<double>(), vb = b_in.to_vector<double>();
  const int64_t n_batch = shape_numel(batch);
  std::vector<double> out(static_cast<size_t>(n_batch * M * N));
  for (int64_t bi = 0; bi < n_batch; ++bi) {
    Shape idx = test::unravel(bi, batch);
    const int64_t oa = test::broadcast_index(idx, ba) * M * K, ob = test::broadcast_index(idx, bb) * K * N;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += va[oa + i * K + k] * vb[ob + k * N + j];
        out[(bi * M + i) * N + j] = s;
      }
  }
  out_shape = batch;
  if (!a_vec) out_shape.push_back(M);
  if (!b_vec) out_shape.push_back(N);
  return out;
}

void check_matmul(const Shape& sa, const Shape& sb, DType dtype = DType::f64) {
  INFO(shape_str(sa) << " @ " << shape_str(sb) << " in " << dtype_name(dtype));
  Tensor a = test::randn(sa, 21, dtype), b = test::randn(sb, 22, dtype);
  Shape out_shape;
  std::vector<double> expected = reference_matmul(a, b, out_shape);
  Tensor out = matmul(a, b);
  CHECK(out.shape() == out_shape);
  CHECK(out.dtype() == dtype);
  const double rtol = dtype == DType::f32 ? 1e-4 : 1e-11;
  require_close(out, expected, rtol, rtol);
  // Non-contiguous operands give the same values.
  require_close(matmul(test::strided_copy(a), test::permuted_copy(b)), out, rtol, rtol);
}

}  // namespace

TEST_CASE("2-D matmul matches a triple loop on odd sizes", "[linalg]") {
  for (int64_t m : {1, 3, 17})
    for (int64_t k : {1, 5, 33})
      for (int64_t n : {1, 2, 17}) check_matmul({m, k}, {k, n});
  check_matmul({7, 9}, {9, 4}, DType::f32);
}

TEST_CASE("matmul with 1-D operands follows torch.matmul", "[linalg]") {
  check_matmul({5}, {5});          // dot product: a 0-dim result
  check_matmul({3, 5}, {5});       // matrix-vector
  check_matmul({5}, {5, 4});       // vector-matrix
  check_matmul({2, 3, 5}, {5});    // batched matrix-vector
  check_matmul({5}, {2, 5, 3});    // vector with a batch of matrices
  CHECK(matmul(Tensor::ones({4}), Tensor::ones({4})).dim() == 0);
  CHECK(matmul(Tensor::ones({4}), Tensor::ones({4})).item<float>() == 4);
}

TEST_CASE("matmul broadcasts batch dims", "[linalg]") {
  check_matmul({2, 3, 4}, {2, 4, 5});
  check_matmul({2, 1, 3, 4}, {5, 4, 2});  // [2, 1] with [5] gives batch [2, 5]
  check_matmul({3, 4}, {6, 4, 2});        // a matrix against a batch
  check_matmul({6, 3, 4}, {4, 2});
  check_matmul({1, 3, 4}, {2, 1, 4, 3}, DType::f32);
}

TEST_CASE("matmul on transposed views equals matmul on their copies", "[linalg]") {
  Tensor a = test::randn({6, 4}, 23), b = test::randn({5, 6}, 24);
  Tensor at = a.transpose(0, 1), bt = b.transpose(0, 1);
  require_close(matmul(at, bt), matmul(at.contiguous(), bt.contiguous()), 1e-14, 1e-14);
  require_close(at.matmul(bt), matmul(at.contiguous(), bt.contiguous()), 1e-14, 1e-14);
}

TEST_CASE("large matmuls split into tiles match the reference", "[linalg]") {
  // Above the 2^19 multiply-add threshold: tiles over M (M >= 64) and over N (M < 64).
  check_matmul({130, 70}, {70, 90}, DType::f32);
  check_matmul({20, 300}, {300, 200}, DType::f64);
  check_matmul({3, 40, 60}, {60, 50}, DType::f64);
}

TEST_CASE("integer and mixed-dtype matmul", "[linalg][dtype]") {
  Tensor a = Tensor::arange(6).view({2, 3});
  Tensor b = Tensor::arange(6).view({3, 2});
  Tensor c = matmul(a, b);
  CHECK(c.dtype() == DType::i64);
  CHECK(c.to_vector<int64_t>() == std::vector<int64_t>{10, 13, 28, 40});
  CHECK(matmul(a.to(DType::f32), b.to(DType::f64)).dtype() == DType::f64);
}

TEST_CASE("empty operands: K = 0 gives zeros, M or N = 0 gives an empty result", "[linalg]") {
  Tensor z = matmul(Tensor::ones({3, 0}), Tensor::ones({0, 4}));
  CHECK(z.shape() == Shape{3, 4});
  CHECK(z.to_vector<float>() == std::vector<float>(12, 0));
  CHECK(matmul(Tensor::ones({0, 3}), Tensor::ones({3, 4})).shape() == Shape{0, 4});
  CHECK(matmul(Tensor::ones({2, 3}), Tensor::ones({3, 0})).shape() == Shape{2, 0});
  CHECK(matmul(Tensor::ones({0, 2, 3}), Tensor::ones({3, 4})).shape() == Shape{0, 2, 4});
}

TEST_CASE("matmul errors show both shapes", "[linalg][errors]") {
  CHECK_THAT(error_of([] { matmul(Tensor::ones({2, 3}), Tensor::ones({4, 5})); }),
             Catch::Contains("matmul: inner sizes differ: [2, 3] @ [4, 5] (3 vs 4)"));
  CHECK_THAT(error_of([] { matmul(Tensor::ones({3}), Tensor::ones({4})); }),
             Catch::Contains("matmul: inner sizes differ: [3] @ [4] (3 vs 4)"));
  CHECK_THAT(error_of([] { matmul(Tensor::ones({2, 2, 3}), Tensor::ones({3, 3, 4})); }),
             Catch::Contains("matmul: shapes [2] and [3] do not broadcast"));
  CHECK_THAT(error_of([] { matmul(Tensor::scalar(1), Tensor::ones({3})); }),
             Catch::Contains("matmul: both operands need at least 1 dim, got [] and [3]"));
}

TEST_CASE("blas_kernels names the kernel family OpenBLAS runs on this CPU", "[linalg]") {
  const std::string name = blas_kernels();
  REQUIRE_FALSE(name.empty());
  // OpenBLAS's configuration string names the same family ("OpenBLAS 0.3.21 DYNAMIC_ARCH ...
  // SkylakeX MAX_THREADS=64").
  const std::string config = openblas_get_config();
  CHECK(config.find(name) != std::string::npos);
}
