// The 2x2, stride-2 max pooling of one plane, shared by MaxPool2d (pooling.cpp) and the
// GroupNorm-ReLU-MaxPool2d fusion (group_norm.cpp), so that both pick the same element of every
// window and their bits agree. Both backwards send each window's gradient to the saved argmax.
//
// A plane is [H, W]; it pools into [OH, OW] = [H / 2, W / 2] (floor: an odd last row or column
// is in no window). Window (i, j) holds a = in[2i][2j], b = in[2i][2j + 1], c = in[2i + 1][2j] and
// d = in[2i + 1][2j + 1], scanned in that order: strict > keeps the first maximum, and a NaN
// always wins (PyTorch's rule).
#pragma once

#include <cstdint>

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

}  // namespace kiln::nn::pool_kernels
