// The 2x2, stride-2 max pooling of a batch of planes (max_pool_2x2_planes), shared by MaxPool2d
// (pooling.cpp) and the GroupNorm-ReLU-MaxPool2d fusion (group_norm.cpp), so that both pick the
// same element of every window and their bits agree. Both backwards send each window's gradient
// to the saved argmax.
//
// A plane is [H, W]; it pools into [OH, OW] = [H / 2, W / 2] (floor: an odd last row or column
// is in no window). Window (i, j) holds a = in[2i][2j], b = in[2i][2j + 1], c = in[2i + 1][2j] and
// d = in[2i + 1][2j + 1], scanned in that order: strict > keeps the first maximum, and a NaN
// always wins (PyTorch's rule).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace kiln::nn::pool_kernels {

// out[i][j] = max of window (i, j), and idx[i][j] = its argmax h W + w within the plane. With selects instead of branches: on activations the comparisons are coin tosses, and a
// mispredicted branch per element cost more than the rest of the kernel. With the sizes in
// locals GCC vectorizes the loop (AVX-512 with KILN_NATIVE): one forward on 2x32x32x32 takes
// 5.8 us against 32 us for a scalar loop. Rows shorter than a vector (OW <= 4) run the scalar
// remainder.
//   in [H, W] (only its first 2 OH rows and 2 OW columns are read); out, idx [OH, OW]
template <class T>
void max_pool_2x2_plane(const T* in, int64_t W, int64_t OH, int64_t OW, T* out, int64_t* idx) {
  for (int64_t i = 0; i < OH; ++i) {
    const T* __restrict row0 = in + 2 * i * W;
    const T* __restrict row1 = row0 + W;
    T* __restrict y = out + i * OW;
    int64_t* __restrict at = idx + i * OW;
    const int64_t row_start = 2 * i * W;
    for (int64_t j = 0; j < OW; ++j) {
      T best = row0[2 * j];
      int64_t offset = 0;  // 0 a, 1 b, W c, W + 1 d
      const T b = row0[2 * j + 1], c = row1[2 * j], d = row1[2 * j + 1];
      bool take = (b > best) | (b != b);
      best = take ? b : best;
      offset = take ? 1 : offset;
      take = (c > best) | (c != c);
      best = take ? c : best;
      offset = take ? W : offset;
      take = (d > best) | (d != d);
      best = take ? d : best;
      offset = take ? W + 1 : offset;
      y[j] = best;
      at[j] = row_start + 2 * j + offset;
    }
  }
}

#ifdef __AVX512F__
// Whether max_pool_2x2_planes takes max_pool_2x2_small_planes: W of 2 to 16 and H a power of two
// (even, so that no row is left out and the row pairs of consecutive planes follow each other),
// with a plane small enough for its indices to fit the kernel's 32-bit lanes.
inline bool small_planes_fit(int64_t H, int64_t W) {
  const bool w_fits = W == 2 || W == 4 || W == 8 || W == 16;
  return w_fits && H >= 2 && (H & (H - 1)) == 0 && H * W <= (int64_t{1} << 30);
}

// max_pool_2x2_plane over `planes` consecutive planes of up to 16 columns, 16 windows at a time:
// with OW = W / 2 a power of two, windows w0 ... w0 + 15 (w0 a multiple of 16, in plane, row,
// column order over all the planes) read exactly the 64 floats from 4 w0 on, so a, b, c and d of
// the 16 windows are each two permutes of those 4 vectors. Over short rows the plane kernel runs
// its scalar loop, whose comparisons became branches that mispredicted.
//   in [planes, H, W]; out, idx [planes, H / 2, W / 2]
inline void max_pool_2x2_small_planes(const float* in, int64_t planes, int64_t H, int64_t W,
                                      float* out, int64_t* idx) {
  const int64_t OW = W / 2, S = H * W;
  const int64_t windows = planes * (H / 2) * OW;
  // Lane l's window is row pair l / OW of the block, column l % OW: a at 2 W (l / OW) + 2 (l % OW)
  // of the block's 64 floats. Lanes 0-7 lie in its first 32 floats, lanes 8-15 in the last 32,
  // so one index vector (mod 32) serves both permutes.
  alignas(64) int32_t a_at[16];
  for (int l = 0; l < 16; ++l)
    a_at[l] = static_cast<int32_t>(2 * W * (l / OW) + 2 * (l % OW));
  const __m512i a_pos = _mm512_load_si512(a_at);
  // The corners' offsets from a: b = a + 1, c = a + W, d = a + W + 1; and each corner's lanes as
  // permute indices into a pair of the block's vectors.
  const __m512i corner_offset[4] = {
      _mm512_setzero_si512(), _mm512_set1_epi32(1), _mm512_set1_epi32(static_cast<int32_t>(W)),
      _mm512_set1_epi32(static_cast<int32_t>(W + 1))};
  __m512i corner_pick[4];
  for (int corner = 0; corner < 4; ++corner)
    corner_pick[corner] = _mm512_and_si512(_mm512_add_epi32(a_pos, corner_offset[corner]),
                                           _mm512_set1_epi32(31));
  const __m512i in_plane = _mm512_set1_epi32(static_cast<int32_t>(S - 1));
  constexpr __mmask16 kHigh = 0xFF00;
  int64_t w0 = 0;
  for (; w0 + 16 <= windows; w0 += 16) {
    const float* block = in + 4 * w0;
    const __m512 v0 = _mm512_loadu_ps(block), v1 = _mm512_loadu_ps(block + 16);
    const __m512 v2 = _mm512_loadu_ps(block + 32), v3 = _mm512_loadu_ps(block + 48);
    auto pick = [&](int corner) {
      return _mm512_mask_blend_ps(kHigh, _mm512_permutex2var_ps(v0, corner_pick[corner], v1),
                                  _mm512_permutex2var_ps(v2, corner_pick[corner], v3));
    };
    // a, then b, c and d in turn, each taken when (v > best) | (v != v), as the plane kernel
    __m512 best = pick(0);
    __m512i offset = corner_offset[0];
    for (int corner = 1; corner < 4; ++corner) {
      const __m512 v = pick(corner);
      const __mmask16 take =
          _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      best = _mm512_mask_mov_ps(best, take, v);
      offset = _mm512_mask_mov_epi32(offset, take, corner_offset[corner]);
    }
    _mm512_storeu_ps(out + w0, best);
    // idx = the element's place in its plane: (4 w0 + a + offset) mod S, S a power of two
    const __m512i start = _mm512_set1_epi32(static_cast<int32_t>((4 * w0) & (S - 1)));
    const __m512i at = _mm512_and_si512(
        _mm512_add_epi32(_mm512_add_epi32(start, a_pos), offset), in_plane);
    // (The maskz forms: the plain ones start from an undefined vector, which GCC 12 warns of.)
    _mm512_storeu_si512(idx + w0, _mm512_maskz_cvtepi32_epi64(
                                      0xFF, _mm512_maskz_extracti64x4_epi64(0xF, at, 0)));
    _mm512_storeu_si512(idx + w0 + 8, _mm512_maskz_cvtepi32_epi64(
                                          0xFF, _mm512_maskz_extracti64x4_epi64(0xF, at, 1)));
  }
  // The windows left over, plane by plane from the one the first of them is in.
  const int64_t P = (H / 2) * OW;
  for (int64_t plane = w0 / P; plane < planes; ++plane) {
    const int64_t first = std::max<int64_t>(w0 - plane * P, 0);  // window within the plane
    for (int64_t r = first; r < P; ++r) {
      const int64_t i = r / OW, j = r % OW;
      max_pool_2x2_plane(in + plane * S + 2 * i * W + 2 * j, W, 1, 1, out + plane * P + r,
                         idx + plane * P + r);
      idx[plane * P + r] += 2 * i * W + 2 * j;
    }
  }
}
#endif

// max_pool_2x2_plane over `planes` consecutive planes: in [planes, H, W]; out, idx [planes, H / 2,
// W / 2].
template <class T>
void max_pool_2x2_planes(const T* in, int64_t planes, int64_t H, int64_t W, T* out,
                         int64_t* idx) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>)
    if (small_planes_fit(H, W)) return max_pool_2x2_small_planes(in, planes, H, W, out, idx);
#endif
  const int64_t OH = H / 2, OW = W / 2;
  for (int64_t p = 0; p < planes; ++p)
    max_pool_2x2_plane(in + p * H * W, W, OH, OW, out + p * OH * OW, idx + p * OH * OW);
}

}  // namespace kiln::nn::pool_kernels
