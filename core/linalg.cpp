#include <kiln/core/linalg.h>

#include <algorithm>

#include <cblas.h>

#include <kiln/core/elementwise.h>
#include <kiln/core/parallel.h>
#include <kiln/core/views.h>

namespace kiln::kernels {

namespace {
// The pool's first use sets OpenBLAS to one thread. A product small enough for one tile never
// touches the pool, so make sure of it here before calling cblas.
void ensure_blas_single_threaded() {
  static const int threads = num_threads();
  (void)threads;
}
}  // namespace

template <>
void gemm_serial<float>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                        const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                        float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  ensure_blas_single_threaded();
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
              static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C,
              static_cast<blasint>(ldc));
}

template <>
void gemm_serial<double>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                         const double* A, int64_t lda, const double* B, int64_t ldb, double beta,
                         double* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  ensure_blas_single_threaded();
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
              static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C,
              static_cast<blasint>(ldc));
}

template <>
void gemm_serial<int64_t>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t alpha,
                          const int64_t* A, int64_t lda, const int64_t* B, int64_t ldb,
                          int64_t beta, int64_t* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      int64_t s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += (ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
      C[i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * C[i * ldc + j]);
    }
  }
}

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  // Tiles of about 2^18 multiply-adds or more; split M when it is large, else N.
  constexpr int64_t kMinTileWork = int64_t{1} << 18;
  const int64_t work = M * N * std::max<int64_t>(K, 1);
  if (work < 2 * kMinTileWork) {
    gemm_serial<T>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (M >= 64) {
    int64_t rows = std::max<int64_t>(16, kMinTileWork / std::max<int64_t>(N * K, 1));
    rows = std::min<int64_t>((rows + 15) / 16 * 16, M);
    parallel_for(0, M, rows, [&](int64_t m0, int64_t m1) {
      const T* a = ta ? A + m0 : A + m0 * lda;
      gemm_serial<T>(ta, tb, m1 - m0, N, K, alpha, a, lda, B, ldb, beta, C + m0 * ldc, ldc);
    });
  } else {
    int64_t cols = std::max<int64_t>(64, kMinTileWork / std::max<int64_t>(M * K, 1));
    cols = std::min<int64_t>((cols + 63) / 64 * 64, N);
    parallel_for(0, N, cols, [&](int64_t n0, int64_t n1) {
      const T* b = tb ? B + n0 * ldb : B + n0;
      gemm_serial<T>(ta, tb, M, n1 - n0, K, alpha, A, lda, b, ldb, beta, C + n0, ldc);
    });
  }
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);
template void gemm<int64_t>(bool, bool, int64_t, int64_t, int64_t, int64_t, const int64_t*,
                            int64_t, const int64_t*, int64_t, int64_t, int64_t*, int64_t);

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  KILN_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, "matmul: both operands need at least 1 dim, got ",
             a_in.shape(), " and ", b_in.shape());
  const DType dtype = promote(a_in.dtype(), b_in.dtype());
  Tensor a = to_dtype(a_in, dtype), b = to_dtype(b_in, dtype);
  const bool a_vec = a.dim() == 1, b_vec = b.dim() == 1;
  if (a_vec) a = unsqueeze(a, 0);   // [K] -> [1, K]
  if (b_vec) b = unsqueeze(b, -1);  // [K] -> [K, 1]
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  KILN_CHECK(b.size(-2) == K, "matmul: inner sizes differ: ", a_in.shape(), " @ ", b_in.shape(),
             " (", K, " vs ", b.size(-2), ")");
  Shape batch_a(a.shape().begin(), a.shape().end() - 2);
  Shape batch_b(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(batch_a, batch_b, "matmul");
  int64_t batch_count = 1;
  for (int64_t s : batch) batch_count *= s;

  Shape a_full = batch, b_full = batch, out_shape = batch;
  a_full.insert(a_full.end(), {M, K});
  b_full.insert(b_full.end(), {K, N});
  out_shape.insert(out_shape.end(), {M, N});
  Tensor ac = contiguous(expand(a, a_full));
  Tensor bc = contiguous(expand(b, b_full));
  Tensor out = Tensor::empty(out_shape, dtype);

  dispatch(dtype, [&]<class T>() {
    const T* pa = ac.data_ptr<T>();
    const T* pb = bc.data_ptr<T>();
    T* po = out.data_ptr<T>();
    if (K == 0) {
      fill(out, 0);
    } else if (batch_count == 1) {
      gemm<T>(false, false, M, N, K, T(1), pa, K, pb, N, T(0), po, N);
    } else {
      parallel_for(0, batch_count, grain_for(M * N * std::max<int64_t>(K, 1), 1 << 18),
                   [&](int64_t i0, int64_t i1) {
                     for (int64_t i = i0; i < i1; ++i)
                       gemm_serial<T>(false, false, M, N, K, T(1), pa + i * M * K, K,
                                      pb + i * K * N, N, T(0), po + i * M * N, N);
                   });
    }
  });
  if (a_vec) out = squeeze(out, {-2});
  if (b_vec) out = squeeze(out, {-1});
  return out;
}

}  // namespace kiln::kernels
