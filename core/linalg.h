// Matrix products through cblas (OpenBLAS, single-threaded inside kiln's own parallel chunks).
#pragma once

#include <kiln/core/tensor.h>

namespace kiln::kernels {

/// C[M,N] = alpha * op(A) op(B) + beta * C for row-major contiguous buffers, where op transposes
/// when the flag is set: A is [M,K] (or [K,M] when trans_a), B is [K,N] (or [N,K] when trans_b).
/// Runs in parallel over fixed tiles of M (or N when M is small); bit-identical at any thread count.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

/// The same product on the calling thread only (for kernels that parallelize at a higher level).
template <class T>
void gemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                 int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

/// torch.matmul semantics: 1-D operands are promoted and squeezed back; batch dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace kiln::kernels
