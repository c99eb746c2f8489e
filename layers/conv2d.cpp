// 2-D convolution.
//
// ---- The math ----------------------------------------------------------------------------------
// x [N, C, H, W], weight [C_out, C/G, KH, KW], bias [C_out]; stride s, zero padding p, dilation d,
// G groups. Group g maps input channels [g C/G, (g+1) C/G) to output channels
// [g C_out/G, (g+1) C_out/G). The output y is [N, C_out, OH, OW] with
//
//   OH = floor((H + 2p - d (KH - 1) - 1) / s) + 1,    OW = floor((W + 2p - d (KW - 1) - 1) / s) + 1
//
//   y[n, o, oh, ow] = bias[o] + sum_{c < C/G, i < KH, j < KW}
//                       weight[o, c, i, j] x[n, g C/G + c, oh s - p + i d, ow s - p + j d]
//
// where g is o's group and x reads as 0 outside [0, H) x [0, W).
//
// im2col lowers this to matrix products. For image n and group g, the column matrix
//
//   cols[(c, i, j), (oh, ow)] = x[n, g C/G + c, oh s - p + i d, ow s - p + j d]     [C/G KH KW, OH OW]
//
// holds in column (oh, ow) every input that output pixel sees. With W_g the group's weight rows
// viewed as [C_out/G, C/G KH KW], and Y_g, dY_g the group's channels of y, grad_y [n] viewed as
// [C_out/G, OH OW]:
//
//   forward       Y_g    = W_g cols + bias         GEMM M = C_out/G,    N = OH OW,    K = C/G KH KW
//   grad_weight   dW_g^T = sum_n cols dY_g^T       GEMM M = C/G KH KW,  N = C_out/G,  K = OH OW
//   grad_input    dcols  = W_g^T dY_g              GEMM M = C/G KH KW,  N = OH OW,    K = C_out/G
//                 grad_x = col2im(dcols): each entry of dcols is added back to the input pixel that
//                 im2col copied it from (col2im is the adjoint of im2col)
//   grad_bias     db[o] = sum_{n, oh, ow} grad_y[n, o, oh, ow]
//
// A 1x1 kernel with stride 1 and no padding needs no lowering: cols is x itself, and grad_x is
// dcols.
//
// Shifted GEMMs. A stride-1 "same" convolution (OH = H, OW = W, so 2p = d (KH - 1) = d (KW - 1))
// need not build cols at all. Let xp be x zero-padded by p on every side, Wp = W + 2p wide. Tap
// (i, j) then reads xp at a constant offset, and over the padded width q < Wp:
//
//   Y'[o, (oh, q)] = sum_{i,j} W_ij[o, :] xp[:, (oh + i d) Wp + q + j d],   W_ij = weight[:, :, i, j]
//
// which is KH KW GEMMs (M = C_out/G, K = C/G) on shifted views of one buffer; y is Y' without the
// last 2p columns of each row (computed and dropped: 2p/W extra work). grad_x is likewise the
// "same" convolution of dY with the flipped, transposed kernel, on dY zero-padded by p:
//
//   dX'[c, (h, q)] = sum_{i,j} W_ij^T[c, :] dYp[:, (h + (KH-1-i) d) Wp + q + (KW-1-j) d]
//
// This skips the im2col and col2im passes (about a sixth of the time of a 64-channel 3x3 layer),
// and its tiles write disjoint parts of grad_x. It is used when W and the channels per group are
// large enough for the wasted columns and the K = C/G GEMMs to cost less than cols would.
//
// ---- The decomposition -------------------------------------------------------------------------
// Every chunk boundary follows from the sizes alone and each output element is written by one
// chunk in a fixed order, so results are bit-identical at any thread count. Work is cut along what
// is large (pixels, channels), never along the batch alone: a batch of 2 fills every core.
//  - forward: chunks (group, tile, block of output channels). A tile is a block of output rows of
//    one image, or a block of whole images when they are small; its column matrix stays in L2.
//  - grad_input, shifted: chunks (group, tile, block of input channels), each writing its tile.
//  - grad_input, col2im: chunks (image block, group, block of input channels). The chunk owns
//    grad_x for those images and channels, so its col2im scatter races with no one.
//  - grad_weight: chunks (group, block of input channels, block of output channels). The chunk
//    owns that block of dW and walks every tile of the batch in order, accumulating (beta = 1).
//  - grad_bias: a chunk per block of output channels, summing in double.
// Column buffers are per-thread scratch that only grows: the hot loops never allocate.
#include <kiln/layers/conv2d.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <utility>
#include <vector>

#include <kiln/autograd/function.h>
#include <kiln/autograd/grad_mode.h>
#include <kiln/core/linalg.h>
#include <kiln/core/parallel.h>
#include <kiln/core/storage.h>
#include <kiln/core/views.h>

namespace kiln::kernels {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Stride-1 "same" convolutions at least this wide, with at least this many channels per group in
// and out, take the shifted-GEMM path: its wasted padded columns (2p of every W + 2p) then cost
// less than building cols would, and its GEMMs (K = C/G or C_out/G) stay efficient.
constexpr int64_t kShiftedMinWidth = 16;
constexpr int64_t kShiftedMinChannels = 16;

// The sizes of one convolution, checked. Letters as in the math above.
struct ConvGeometry {
  int64_t N, C, H, W;     // x
  int64_t C_out, KH, KW;  // weight [C_out, C/G, KH, KW]
  int64_t OH, OW;         // y
  int64_t s, p, d, G;     // stride, padding, dilation, groups
  int64_t C_g, C_out_g;   // channels per group, in and out
  int64_t KK;             // KH KW: the taps of the kernel
  int64_t K_g;            // C/G KH KW: the rows of cols
  int64_t P;              // OH OW: output pixels per image
  int64_t Wp;             // W + 2p: the width of a zero-padded row
  bool pointwise;         // 1x1, stride 1, no padding: cols is x itself
  bool shifted;           // stride 1, OH = H, OW = W: the shifted-GEMM path (see the top)
};

ConvGeometry check_conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                          const Conv2dParams& params) {
  KILN_CHECK(x.dim() == 4, "conv2d: expected a 4-D input [N, C, H, W], got input ", x.shape());
  KILN_CHECK(weight.dim() == 4,
             "conv2d: expected a 4-D weight [C_out, C/groups, KH, KW], got weight ",
             weight.shape());
  KILN_CHECK(is_floating(x.dtype()) && x.dtype() == weight.dtype(),
             "conv2d: expected input and weight of one floating dtype, got input ",
             dtype_name(x.dtype()), " and weight ", dtype_name(weight.dtype()));
  KILN_CHECK(params.stride >= 1, "conv2d: expected stride >= 1, got ", params.stride);
  KILN_CHECK(params.padding >= 0, "conv2d: expected padding >= 0, got ", params.padding);
  KILN_CHECK(params.dilation >= 1, "conv2d: expected dilation >= 1, got ", params.dilation);
  KILN_CHECK(params.groups >= 1, "conv2d: expected groups >= 1, got ", params.groups);
  ConvGeometry g{};
  g.N = x.size(0), g.C = x.size(1), g.H = x.size(2), g.W = x.size(3);
  g.C_out = weight.size(0), g.KH = weight.size(2), g.KW = weight.size(3);
  g.s = params.stride, g.p = params.padding, g.d = params.dilation, g.G = params.groups;
  KILN_CHECK(weight.numel() > 0, "conv2d: expected a weight with no zero-size dims, got weight ",
             weight.shape());
  KILN_CHECK(g.C_out % g.G == 0, "conv2d: out channels ", g.C_out, " (weight ", weight.shape(),
             ") are not divisible by groups ", g.G);
  KILN_CHECK(g.C == weight.size(1) * g.G, "conv2d: expected input with ", weight.size(1) * g.G,
             " channels (weight ", weight.shape(), ", groups ", g.G, "), got input ", x.shape());
  if (bias.defined()) {
    KILN_CHECK(bias.dim() == 1 && bias.size(0) == g.C_out, "conv2d: expected bias [", g.C_out,
               "] (one per output channel of weight ", weight.shape(), "), got bias ",
               bias.shape());
    KILN_CHECK(bias.dtype() == x.dtype(), "conv2d: expected a ", dtype_name(x.dtype()),
               " bias like the input, got ", dtype_name(bias.dtype()));
  }
  const int64_t span_h = g.d * (g.KH - 1) + 1, span_w = g.d * (g.KW - 1) + 1;
  const int64_t padded_h = g.H + 2 * g.p, padded_w = g.W + 2 * g.p;
  if (span_h > padded_h || span_w > padded_w) {
    if (g.d == 1)
      KILN_FAIL("conv2d: kernel ", g.KH, "x", g.KW, " is larger than the padded input ", padded_h,
                "x", padded_w, " (input ", x.shape(), ", padding ", g.p, ")");
    KILN_FAIL("conv2d: the dilated kernel ", span_h, "x", span_w, " (kernel ", g.KH, "x", g.KW,
              ", dilation ", g.d, ") is larger than the padded input ", padded_h, "x", padded_w,
              " (input ", x.shape(), ", padding ", g.p, ")");
  }
  g.OH = (padded_h - span_h) / g.s + 1;
  g.OW = (padded_w - span_w) / g.s + 1;
  g.C_g = g.C / g.G;
  g.C_out_g = g.C_out / g.G;
  g.KK = g.KH * g.KW;
  g.K_g = g.C_g * g.KK;
  g.P = g.OH * g.OW;
  g.Wp = padded_w;
  g.pointwise = g.KK == 1 && g.s == 1 && g.p == 0;
  g.shifted = !g.pointwise && g.s == 1 && g.OH == g.H && g.OW == g.W &&
              g.W >= kShiftedMinWidth && g.C_g >= kShiftedMinChannels &&
              g.C_out_g >= kShiftedMinChannels;
  return g;
}

// ---- Reference kernels: plain loops over every term, accumulated in double ---------------------

template <class T>
void reference_forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y) {
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t o = 0; o < g.C_out; ++o) {
      const int64_t grp = o / g.C_out_g;
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          double acc = b ? b[o] : 0.0;
          for (int64_t c = 0; c < g.C_g; ++c)
            for (int64_t i = 0; i < g.KH; ++i)
              for (int64_t j = 0; j < g.KW; ++j) {
                const int64_t ih = oh * g.s - g.p + i * g.d, iw = ow * g.s - g.p + j * g.d;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                acc += double(w[((o * g.C_g + c) * g.KH + i) * g.KW + j]) *
                       double(x[((n * g.C + grp * g.C_g + c) * g.H + ih) * g.W + iw]);
              }
          y[((n * g.C_out + o) * g.OH + oh) * g.OW + ow] = static_cast<T>(acc);
        }
    }
}

// Every term y[n, o, oh, ow] += w[o, c, i, j] x[n, g C/G + c, ih, iw] sends dy w to dx and dy x to
// dw; dy goes to db.
template <class T>
void reference_backward(const ConvGeometry& g, const T* gy, const T* x, const T* w, T* gx, T* gw,
                        T* gb) {
  std::vector<double> dx(static_cast<size_t>(g.N * g.C * g.H * g.W), 0.0);
  std::vector<double> dw(static_cast<size_t>(g.C_out * g.K_g), 0.0);
  std::vector<double> db(static_cast<size_t>(g.C_out), 0.0);
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t o = 0; o < g.C_out; ++o) {
      const int64_t grp = o / g.C_out_g;
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const double dy = gy[((n * g.C_out + o) * g.OH + oh) * g.OW + ow];
          db[o] += dy;
          for (int64_t c = 0; c < g.C_g; ++c)
            for (int64_t i = 0; i < g.KH; ++i)
              for (int64_t j = 0; j < g.KW; ++j) {
                const int64_t ih = oh * g.s - g.p + i * g.d, iw = ow * g.s - g.p + j * g.d;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                const int64_t xi = ((n * g.C + grp * g.C_g + c) * g.H + ih) * g.W + iw;
                const int64_t wi = ((o * g.C_g + c) * g.KH + i) * g.KW + j;
                dx[xi] += dy * w[wi];
                dw[wi] += dy * x[xi];
              }
        }
    }
  if (gx) std::copy(dx.begin(), dx.end(), gx);
  if (gw) std::copy(dw.begin(), dw.end(), gw);
  if (gb) std::copy(db.begin(), db.end(), gb);
}

// ---- Work decomposition ------------------------------------------------------------------------

// A column tile holds about kTileElems elements (256 KiB in f32, so it and OpenBLAS's packed copy
// of it share one core's L2), and at least kMinTilePixels pixels so the GEMMs stay wide.
constexpr int64_t kTileElems = int64_t{1} << 16;
constexpr int64_t kMinTilePixels = 128;
// The shifted path's tiles hold at most this many output pixels; whole images when possible.
constexpr int64_t kShiftedMaxTilePixels = 2048;
// Channel blocks of col2im: about this many rows of dcols (16 channels of 3x3).
constexpr int64_t kBlockRows = 144;
// Channel blocks of grad_weight: about this many rows of cols (64 channels of 3x3). Its GEMM
// (M = rows, N = C_out/G) runs at 97% of OpenBLAS's best with 576 rows, 87% with 144.
constexpr int64_t kWeightBlockRows = 576;
// grad_weight may split the batch into ranges summed afterwards; their partial sums hold at most
// this many elements.
constexpr int64_t kMaxPartialElems = int64_t{1} << 22;
// Chunks wanted per parallel loop before also splitting the channels a chunk writes (which
// repeats that chunk's im2col or padding).
constexpr int64_t kMinChunks = 4;
// The smallest block of channels worth a chunk of its own.
constexpr int64_t kMinChannelBlock = 16;

int64_t tile_pixels(int64_t col_rows) {
  return std::max(kMinTilePixels, kTileElems / std::max<int64_t>(col_rows, 1));
}

// Tiles over the flattened output rows r = n OH + oh of the batch (pixel (n, oh, ow) is column
// r OW + ow). A tile holds about max_pixels pixels: a block of rows inside one image when images
// are large, else a block of whole images. Image block b is covered by the tiles
// [b per_image, (b + 1) per_image).
struct RowTiles {
  int64_t N, OH;
  int64_t per_image;  // tiles per image (1 when a tile holds whole images)
  int64_t images;     // images per block (1 when tiles are rows of one image)
  int64_t blocks;     // image blocks
  int64_t count;      // tiles

  RowTiles(int64_t N_, int64_t OH_, int64_t OW, int64_t max_pixels) : N(N_), OH(OH_) {
    const int64_t P = OH * OW;
    if (P > max_pixels) {
      per_image = std::min(OH, ceil_div(P, max_pixels));
      images = 1;
      blocks = N;
    } else {
      per_image = 1;
      images = std::max<int64_t>(1, max_pixels / P);
      blocks = ceil_div(N, images);
    }
    count = blocks * per_image;
  }
  // Rows [r0, r1) of tile t; the rows of one image are shared out evenly.
  std::pair<int64_t, int64_t> rows(int64_t t) const {
    if (per_image > 1) {
      const int64_t n = t / per_image, j = t % per_image;
      return {n * OH + j * OH / per_image, n * OH + (j + 1) * OH / per_image};
    }
    return {t * images * OH, std::min(N, (t + 1) * images) * OH};
  }
  std::pair<int64_t, int64_t> block_images(int64_t b) const {
    return {b * images, std::min(N, (b + 1) * images)};
  }
};

// The shifted path's tiles: row blocks of single images, as large as possible (wider GEMMs, less
// halo to pad) while there are still kMinChunks (group, tile) pairs; splitting rows costs less
// than splitting channels (narrower GEMMs).
RowTiles shifted_tiles(const ConvGeometry& g) {
  int64_t per_image = std::max(ceil_div(g.P, kShiftedMaxTilePixels),
                               ceil_div(kMinChunks, std::max<int64_t>(g.N * g.G, 1)));
  per_image = std::min(per_image, g.OH);
  return RowTiles(g.N, g.OH, g.OW, ceil_div(g.P, per_image));
}

// Splits `size` channels into blocks of about `target` (evenly); returns the block size.
int64_t channel_block(int64_t size, int64_t target) {
  const int64_t blocks = ceil_div(size, std::clamp<int64_t>(target, 1, size));
  return ceil_div(size, blocks);
}

// The block size for the `size` channels a chunk writes, when the loop has `chunks` chunks
// otherwise: all of them, or blocks of at least kMinChannelBlock until kMinChunks is reached.
int64_t split_block(int64_t size, int64_t chunks) {
  if (chunks >= kMinChunks) return size;
  const int64_t most = std::max<int64_t>(1, size / kMinChannelBlock);
  return ceil_div(size, std::min(ceil_div(kMinChunks, std::max<int64_t>(chunks, 1)), most));
}

// A per-thread buffer that only grows, so tiles are reused across chunks and calls. A chunk runs
// start to finish on one thread and calls nothing parallel, so nothing else touches the buffer
// while the chunk uses it.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    if (data_) deallocate(data_, bytes_);
  }
  template <class T>
  T* get(int64_t count) {
    const size_t need = std::max<size_t>(static_cast<size_t>(count) * sizeof(T), 64);
    if (need > bytes_) {
      if (data_) deallocate(data_, bytes_);
      data_ = nullptr;
      bytes_ = 0;
      data_ = allocate(need);
      bytes_ = need;
    }
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

enum ScratchSlot { kCols, kPacked, kAccum, kSlots };
template <class T>
T* scratch(ScratchSlot slot, int64_t count) {
  thread_local Scratch buffers[kSlots];
  return buffers[slot].get<T>(count);
}

// ---- Lowering: im2col, col2im, padded slabs, [channels, pixels] views --------------------------

// The output columns ow whose input column ow s - p + j d lies in [0, W) form [lo, hi).
struct ValidRange {
  int64_t lo, hi;
};
ValidRange valid_columns(const ConvGeometry& g, int64_t j) {
  const int64_t offset = j * g.d - g.p;  // input column of ow = 0
  int64_t lo = offset >= 0 ? 0 : ceil_div(-offset, g.s);
  int64_t hi = g.W - 1 - offset < 0 ? 0 : (g.W - 1 - offset) / g.s + 1;
  lo = std::min(lo, g.OW);
  hi = std::clamp(hi, lo, g.OW);
  return {lo, hi};
}

// Calls fn(n, oh) for the flattened rows r = n OH + oh in [r0, r1), without a division per row.
template <class Fn>
void for_each_row(const ConvGeometry& g, int64_t r0, int64_t r1, Fn&& fn) {
  int64_t n = r0 / g.OH, oh = r0 - n * g.OH;
  for (int64_t r = r0; r < r1; ++r) {
    fn(n, oh);
    if (++oh == g.OH) {
      oh = 0;
      ++n;
    }
  }
}

// dst[k] += src[k stride] for k < count, on rows that do not overlap (so it vectorizes).
template <class T>
void add_row(T* __restrict dst, int64_t stride, const T* __restrict src, int64_t count) {
  if (stride == 1) {
    for (int64_t k = 0; k < count; ++k) dst[k] += src[k];
  } else {
    for (int64_t k = 0; k < count; ++k) dst[k * stride] += src[k];
  }
}

// dst[k] = src[k] + bias for k < count, on rows that do not overlap (so it vectorizes).
template <class T>
void copy_row_plus(T* __restrict dst, const T* __restrict src, T bias, int64_t count) {
  for (int64_t k = 0; k < count; ++k) dst[k] = src[k] + bias;
}

// cols [(c1 - c0) KH KW, (r1 - r0) OW] for input channels [c0, c1) (absolute) and flattened output
// rows [r0, r1):  cols[(c - c0, i, j), (r - r0, ow)] = x[n, c, oh s - p + i d, ow s - p + j d].
template <class T>
void im2col(const ConvGeometry& g, const T* x, int64_t c0, int64_t c1, int64_t r0, int64_t r1,
            T* cols) {
  const int64_t OW = g.OW, image = g.C * g.H * g.W;
  T* dst = cols;
  for (int64_t c = c0; c < c1; ++c) {
    for (int64_t i = 0; i < g.KH; ++i) {
      for (int64_t j = 0; j < g.KW; ++j) {
        const auto [lo, hi] = valid_columns(g, j);
        // x_cj[n image + ih W + ow s] = x[n, c, ih, ow s - p + j d]
        const T* x_cj = x + c * g.H * g.W + (j * g.d - g.p);
        for_each_row(g, r0, r1, [&](int64_t n, int64_t oh) {
          const int64_t ih = oh * g.s - g.p + i * g.d;
          if (ih < 0 || ih >= g.H) {
            std::fill(dst, dst + OW, T(0));
          } else {
            const T* src = x_cj + n * image + ih * g.W;
            std::fill(dst, dst + lo, T(0));
            if (g.s == 1) {
              std::copy(src + lo, src + hi, dst + lo);
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * g.s];
            }
            std::fill(dst + hi, dst + OW, T(0));
          }
          dst += OW;
        });
      }
    }
  }
}

// The adjoint of im2col: grad_x[n, c, oh s - p + i d, ow s - p + j d] += dcols[(c - c0, i, j),
// (r - r0, ow)] for channels [c0, c1) and rows [r0, r1).
template <class T>
void col2im(const ConvGeometry& g, const T* dcols, int64_t c0, int64_t c1, int64_t r0, int64_t r1,
            T* grad_x) {
  const int64_t OW = g.OW, image = g.C * g.H * g.W;
  const T* src = dcols;
  for (int64_t c = c0; c < c1; ++c) {
    for (int64_t i = 0; i < g.KH; ++i) {
      for (int64_t j = 0; j < g.KW; ++j) {
        const auto [lo, hi] = valid_columns(g, j);
        T* gx_cj = grad_x + c * g.H * g.W + (j * g.d - g.p);
        for_each_row(g, r0, r1, [&](int64_t n, int64_t oh) {
          const int64_t ih = oh * g.s - g.p + i * g.d;
          if (ih >= 0 && ih < g.H)
            add_row(gx_cj + n * image + ih * g.W + lo * g.s, g.s, src + lo, hi - lo);
          src += OW;
        });
      }
    }
  }
}

// The zero-padded slab the shifted path reads: for channels [c0, c0 + nc) of image n of
// t [N, Ct, H, W] (H, W = g.H, g.W), rows [row0 - p, row0 - p + rows) padded by p columns each
// side, so slab[c, r, q] = t[n, c0 + c, row0 - p + r, q - p] (0 outside t). Each channel's plane
// has `plane` elements (the rows, then zeros), so every shifted read stays inside the slab.
template <class T>
void pad_slab(const ConvGeometry& g, const T* t, int64_t Ct, int64_t n, int64_t c0, int64_t nc,
              int64_t row0, int64_t rows, int64_t plane, T* slab) {
  const int64_t H = g.H, W = g.W, p = g.p, Wp = g.Wp;
  for (int64_t c = 0; c < nc; ++c) {
    T* dst = slab + c * plane;
    const T* src = t + (n * Ct + c0 + c) * H * W;
    for (int64_t r = 0; r < rows; ++r, dst += Wp) {
      const int64_t h = row0 - p + r;
      if (h < 0 || h >= H) {
        std::fill(dst, dst + Wp, T(0));
        continue;
      }
      std::fill(dst, dst + p, T(0));
      std::copy(src + h * W, src + h * W + W, dst + p);
      std::fill(dst + p + W, dst + Wp, T(0));
    }
    std::fill(dst, slab + (c + 1) * plane, T(0));
  }
}

// The weight as one [C_out, C/G] matrix per tap: taps[(i KW + j), o, c] = w[o, c, i, j].
template <class T>
std::vector<T> weight_taps(const ConvGeometry& g, const T* w) {
  std::vector<T> taps(static_cast<size_t>(g.KK * g.C_out * g.C_g));
  for (int64_t o = 0; o < g.C_out; ++o)
    for (int64_t c = 0; c < g.C_g; ++c)
      for (int64_t t = 0; t < g.KK; ++t)
        taps[(t * g.C_out + o) * g.C_g + c] = w[(o * g.C_g + c) * g.KK + t];
  return taps;
}

bool in_one_image(int64_t r0, int64_t r1, int64_t OH) { return r0 / OH == (r1 - 1) / OH; }

// The matrix [nc, (r1 - r0) OW] of channels [c0, c0 + nc) and flattened rows [r0, r1) of a tensor
// t [N, Ct, OH, OW]: a view into t (leading dim OH OW) when the rows lie in one image, else the
// whole images packed into buf (leading dim (r1 - r0) OW).
template <class T>
const T* rows_matrix(const T* t, int64_t Ct, int64_t OH, int64_t OW, int64_t c0, int64_t nc,
                     int64_t r0, int64_t r1, ScratchSlot buf, int64_t& ld) {
  const int64_t P = OH * OW, n0 = r0 / OH;
  if (in_one_image(r0, r1, OH)) {
    ld = P;
    return t + (n0 * Ct + c0) * P + (r0 - n0 * OH) * OW;
  }
  ld = (r1 - r0) * OW;
  T* packed = scratch<T>(buf, nc * ld);
  const int64_t n1 = r1 / OH;
  for (int64_t c = 0; c < nc; ++c)
    for (int64_t n = n0; n < n1; ++n)
      std::copy(t + (n * Ct + c0 + c) * P, t + (n * Ct + c0 + c + 1) * P,
                packed + c * ld + (n - n0) * P);
  return packed;
}

// The inverse of packing: writes buf [nc, (r1 - r0) OW] (whole images) back into t.
template <class T>
void unpack_rows(const T* buf, T* t, int64_t Ct, int64_t OH, int64_t OW, int64_t c0, int64_t nc,
                 int64_t r0, int64_t r1) {
  const int64_t P = OH * OW, n0 = r0 / OH, n1 = r1 / OH, ld = (r1 - r0) * OW;
  for (int64_t c = 0; c < nc; ++c)
    for (int64_t n = n0; n < n1; ++n)
      std::copy(buf + c * ld + (n - n0) * P, buf + c * ld + (n - n0 + 1) * P,
                t + (n * Ct + c0 + c) * P);
}

// ---- Forward kernel ----------------------------------------------------------------------------
// x [N, C, H, W], w [C_out, C/G, KH, KW], b [C_out] or null -> y [N, C_out, OH, OW], contiguous.
// Chunks are (group, tile, block of output channels); each writes its own part of y.
template <class T>
void forward_kernel(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y) {
  const RowTiles tiles = g.shifted ? shifted_tiles(g) : RowTiles(g.N, g.OH, g.OW, tile_pixels(g.K_g));
  const int64_t o_size = split_block(g.C_out_g, g.G * tiles.count);
  const int64_t o_blocks = ceil_div(g.C_out_g, o_size);
  const std::vector<T> taps = g.shifted ? weight_taps(g, w) : std::vector<T>();

  // Y[o-block, tile] = W_g[o-block] cols + bias
  auto im2col_chunk = [&](int64_t grp, int64_t r0, int64_t r1, int64_t o0, int64_t no) {
    const int64_t pixels = (r1 - r0) * g.OW;
    const T* cols;
    int64_t ld_cols = pixels;
    if (g.pointwise) {
      cols = rows_matrix(x, g.C, g.OH, g.OW, grp * g.C_g, g.C_g, r0, r1, kCols, ld_cols);
    } else {
      T* buf = scratch<T>(kCols, g.K_g * pixels);
      im2col(g, x, grp * g.C_g, (grp + 1) * g.C_g, r0, r1, buf);
      cols = buf;
    }
    // Straight into y inside one image, else through a packed buffer.
    const bool direct = in_one_image(r0, r1, g.OH);
    int64_t ld_y = g.P;
    T* out;
    if (direct) {
      const int64_t n = r0 / g.OH;
      out = y + (n * g.C_out + o0) * g.P + (r0 - n * g.OH) * g.OW;
    } else {
      out = scratch<T>(kPacked, no * pixels);
      ld_y = pixels;
    }
    if (b)
      for (int64_t o = 0; o < no; ++o) std::fill(out + o * ld_y, out + o * ld_y + pixels, b[o0 + o]);
    gemm_serial<T>(false, false, no, pixels, g.K_g, T(1), w + o0 * g.K_g, g.K_g, cols, ld_cols,
                   b ? T(1) : T(0), out, ld_y);
    if (!direct) unpack_rows(out, y, g.C_out, g.OH, g.OW, o0, no, r0, r1);
  };

  // Y'[o-block, (r, q)] = sum_{i,j} W_ij[o-block] slab[:, (r + i d) Wp + q + j d], over the padded
  // width q < Wp; then y = Y' without its last 2p columns, + bias.
  auto shifted_chunk = [&](int64_t grp, int64_t r0, int64_t r1, int64_t o0, int64_t no) {
    const int64_t n = r0 / g.OH, oh0 = r0 - n * g.OH, rows = r1 - r0, Wp = g.Wp;
    const int64_t slab_rows = rows + g.d * (g.KH - 1);
    const int64_t plane = slab_rows * Wp + g.d * (g.KW - 1);
    T* slab = scratch<T>(kCols, g.C_g * plane);
    pad_slab(g, x, g.C, n, grp * g.C_g, g.C_g, oh0, slab_rows, plane, slab);
    const int64_t cols = rows * Wp;
    T* out = scratch<T>(kPacked, no * cols);
    for (int64_t i = 0; i < g.KH; ++i)
      for (int64_t j = 0; j < g.KW; ++j) {
        const int64_t tap = i * g.KW + j;
        gemm_serial<T>(false, false, no, cols, g.C_g, T(1), taps.data() + (tap * g.C_out + o0) * g.C_g,
                       g.C_g, slab + i * g.d * Wp + j * g.d, plane, tap == 0 ? T(0) : T(1), out,
                       cols);
      }
    for (int64_t o = 0; o < no; ++o) {
      const T bias = b ? b[o0 + o] : T(0);
      T* dst = y + ((n * g.C_out + o0 + o) * g.OH + oh0) * g.OW;
      for (int64_t r = 0; r < rows; ++r) copy_row_plus(dst + r * g.OW, out + o * cols + r * Wp, bias, g.OW);
    }
  };

  parallel_for(0, g.G * tiles.count * o_blocks, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t ob = k % o_blocks, t = k / o_blocks % tiles.count;
      const int64_t grp = k / o_blocks / tiles.count;
      const auto [r0, r1] = tiles.rows(t);
      const int64_t o0 = grp * g.C_out_g + ob * o_size;
      const int64_t no = std::min(o_size, g.C_out_g - ob * o_size);
      if (g.shifted) shifted_chunk(grp, r0, r1, o0, no);
      else im2col_chunk(grp, r0, r1, o0, no);
    }
  });
}

// ---- Backward kernel ---------------------------------------------------------------------------
// gy [N, C_out, OH, OW], x, w as in forward -> gx [N, C, H, W], gw [C_out, C/G, KH, KW],
// gb [C_out]; each may be null (not wanted). All contiguous. One parallel loop runs three kinds of
// chunk, each owning what it writes:
//   grad_weight (group, input-channel block, output-channel block), walking the whole batch;
//   grad_input, shifted path (group, tile, input-channel block);
//   grad_input, col2im path (image block, group, input-channel block);
//   grad_bias (block of output channels).
template <class T>
void backward_kernel(const ConvGeometry& g, const T* gy, const T* x, const T* w, T* gx, T* gw,
                     T* gb) {
  const int64_t KK = g.KK;

  // grad_input: the shifted path tiles rows like forward; the col2im path gives each chunk whole
  // images, since its scatter crosses row tiles.
  const int64_t col2im_block = channel_block(g.C_g, kBlockRows / KK);
  const RowTiles x_tiles = g.shifted ? shifted_tiles(g)
                                     : RowTiles(g.N, g.OH, g.OW, tile_pixels(col2im_block * KK));
  const int64_t cx_size = g.shifted ? split_block(g.C_g, g.G * x_tiles.count) : col2im_block;
  const int64_t cx_blocks = ceil_div(g.C_g, cx_size);
  const int64_t x_chunks = !gx        ? 0
                           : g.shifted ? g.G * x_tiles.count * cx_blocks
                                       : x_tiles.blocks * g.G * cx_blocks;
  const std::vector<T> taps = gx && g.shifted ? weight_taps(g, w) : std::vector<T>();

  // grad_weight: chunks (group, input-channel block, output-channel block, range of tiles). With
  // one range a chunk owns its block of dW; with several, each range sums into its own partial
  // copy of dW, and the partials are added in range order afterwards.
  const int64_t cw_size = channel_block(g.C_g, kWeightBlockRows / KK);
  const int64_t cw_blocks = ceil_div(g.C_g, cw_size);
  const RowTiles w_tiles(g.N, g.OH, g.OW, tile_pixels(cw_size * KK));
  int64_t w_ranges = 1;
  if (g.G * cw_blocks < kMinChunks)
    w_ranges = std::clamp<int64_t>(ceil_div(kMinChunks, g.G * cw_blocks), 1,
                                   std::min(w_tiles.count, kMaxPartialElems / (g.C_out * g.K_g)));
  // The grad_input chunks share the loop, so only without them may grad_weight need more chunks.
  const int64_t ow_size = split_block(g.C_out_g, g.G * cw_blocks * w_ranges + x_chunks);
  const int64_t ow_blocks = ceil_div(g.C_out_g, ow_size);
  const int64_t w_chunks = gw ? g.G * cw_blocks * ow_blocks * w_ranges : 0;
  std::vector<T> partials(w_chunks && w_ranges > 1 ? w_ranges * g.C_out * g.K_g : 0);

  // grad_bias: blocks of output channels.
  constexpr int64_t kBiasBlock = 16;
  const int64_t b_chunks = gb ? ceil_div(g.C_out, kBiasBlock) : 0;

  // dW_g[o-block, c-block]^T = sum over the range's tiles of cols[c-block, tile] dY[o-block,
  // tile]^T, accumulated as [nc KK, no] (the operand with more rows first suits the GEMM), then
  // transposed into dW or the range's partial.
  auto grad_weight_chunk = [&](int64_t k) {
    const int64_t ob = k % ow_blocks, cb = k / ow_blocks % cw_blocks;
    const int64_t range = k / ow_blocks / cw_blocks % w_ranges;
    const int64_t grp = k / ow_blocks / cw_blocks / w_ranges;
    const int64_t o0 = grp * g.C_out_g + ob * ow_size;
    const int64_t no = std::min(ow_size, g.C_out_g - ob * ow_size);
    const int64_t c0 = grp * g.C_g + cb * cw_size;
    const int64_t nc = std::min(cw_size, g.C_g - cb * cw_size);
    const int64_t t0 = range * w_tiles.count / w_ranges, t1 = (range + 1) * w_tiles.count / w_ranges;
    T* acc = scratch<T>(kAccum, nc * KK * no);
    if (t0 == t1) std::fill(acc, acc + nc * KK * no, T(0));
    for (int64_t t = t0; t < t1; ++t) {
      const auto [r0, r1] = w_tiles.rows(t);
      const int64_t pixels = (r1 - r0) * g.OW;
      int64_t ld_g, ld_cols = pixels;
      const T* dy = rows_matrix(gy, g.C_out, g.OH, g.OW, o0, no, r0, r1, kPacked, ld_g);
      const T* cols;
      if (g.pointwise) {
        cols = rows_matrix(x, g.C, g.OH, g.OW, c0, nc, r0, r1, kCols, ld_cols);
      } else {
        T* buf = scratch<T>(kCols, nc * KK * pixels);
        im2col(g, x, c0, c0 + nc, r0, r1, buf);
        cols = buf;
      }
      gemm_serial<T>(false, true, nc * KK, no, pixels, T(1), cols, ld_cols, dy, ld_g,
                     t == t0 ? T(0) : T(1), acc, no);
    }
    // dW[o0 + o, c0 KK + q] = acc[q, o]
    T* dw = (w_ranges > 1 ? partials.data() + range * g.C_out * g.K_g : gw) + o0 * g.K_g +
            (c0 - grp * g.C_g) * KK;
    for (int64_t o = 0; o < no; ++o)
      for (int64_t q = 0; q < nc * KK; ++q) dw[o * g.K_g + q] = acc[q * no + o];
  };

  // Shifted path: dX'[c-block, (r, q)] = sum_{i,j} W_ij^T[c-block] slab[:, (r + (KH-1-i) d) Wp +
  // q + (KW-1-j) d], where the slab is dY zero-padded by p; then grad_x = dX' without its last 2p
  // columns. (grad_x is the "same" convolution of dY with the flipped, transposed kernel.)
  auto grad_input_shifted_chunk = [&](int64_t k) {
    const int64_t cb = k % cx_blocks, t = k / cx_blocks % x_tiles.count;
    const int64_t grp = k / cx_blocks / x_tiles.count;
    const auto [r0, r1] = x_tiles.rows(t);
    const int64_t n = r0 / g.OH, h0 = r0 - n * g.OH, rows = r1 - r0, Wp = g.Wp;
    const int64_t c0 = cb * cx_size, nc = std::min(cx_size, g.C_g - c0);
    const int64_t slab_rows = rows + g.d * (g.KH - 1);
    const int64_t plane = slab_rows * Wp + g.d * (g.KW - 1);
    T* slab = scratch<T>(kCols, g.C_out_g * plane);
    pad_slab(g, gy, g.C_out, n, grp * g.C_out_g, g.C_out_g, h0, slab_rows, plane, slab);
    const int64_t cols = rows * Wp;
    T* out = scratch<T>(kPacked, nc * cols);
    for (int64_t i = 0; i < g.KH; ++i)
      for (int64_t j = 0; j < g.KW; ++j) {
        const int64_t tap = i * g.KW + j;
        // W_ij[group rows, c-block] as the A of a transposed GEMM: [C_out/G, nc], leading dim C/G.
        const T* a = taps.data() + (tap * g.C_out + grp * g.C_out_g) * g.C_g + c0;
        const T* shifted = slab + (g.KH - 1 - i) * g.d * Wp + (g.KW - 1 - j) * g.d;
        gemm_serial<T>(true, false, nc, cols, g.C_out_g, T(1), a, g.C_g, shifted, plane,
                       tap == 0 ? T(0) : T(1), out, cols);
      }
    for (int64_t c = 0; c < nc; ++c) {
      T* dst = gx + ((n * g.C + grp * g.C_g + c0 + c) * g.H + h0) * g.W;
      for (int64_t r = 0; r < rows; ++r)
        std::copy(out + c * cols + r * Wp, out + c * cols + r * Wp + g.W, dst + r * g.W);
    }
  };

  // col2im path: grad_x[images, c-block] = col2im(W_g[:, c-block]^T dY_g), tile by tile. The chunk
  // owns those images and channels, so its scatter races with no one.
  auto grad_input_col2im_chunk = [&](int64_t k) {
    const int64_t cb = k % cx_blocks, grp = k / cx_blocks % g.G, blk = k / cx_blocks / g.G;
    const int64_t c0 = grp * g.C_g + cb * cx_size;
    const int64_t nc = std::min(cx_size, g.C_g - cb * cx_size);
    const auto [n0, n1] = x_tiles.block_images(blk);
    if (!g.pointwise)
      for (int64_t n = n0; n < n1; ++n) {
        T* plane = gx + (n * g.C + c0) * g.H * g.W;
        std::fill(plane, plane + nc * g.H * g.W, T(0));
      }
    // W_g[:, c-block] as the A of a transposed GEMM: [C_out/G, nc KK], leading dim K_g.
    const T* w_block = w + grp * g.C_out_g * g.K_g + cb * cx_size * KK;
    for (int64_t t = blk * x_tiles.per_image; t < (blk + 1) * x_tiles.per_image; ++t) {
      const auto [r0, r1] = x_tiles.rows(t);
      const int64_t pixels = (r1 - r0) * g.OW;
      int64_t ld_g;
      const T* dy =
          rows_matrix(gy, g.C_out, g.OH, g.OW, grp * g.C_out_g, g.C_out_g, r0, r1, kPacked, ld_g);
      if (g.pointwise) {
        // grad_x is dcols itself.
        const bool direct = in_one_image(r0, r1, g.OH);
        T* out;
        int64_t ld_out = g.P;
        if (direct) {
          const int64_t n = r0 / g.OH;
          out = gx + (n * g.C + c0) * g.P + (r0 - n * g.OH) * g.OW;
        } else {
          out = scratch<T>(kCols, nc * pixels);
          ld_out = pixels;
        }
        gemm_serial<T>(true, false, nc, pixels, g.C_out_g, T(1), w_block, g.K_g, dy, ld_g, T(0),
                       out, ld_out);
        if (!direct) unpack_rows(out, gx, g.C, g.OH, g.OW, c0, nc, r0, r1);
      } else {
        T* dcols = scratch<T>(kCols, nc * KK * pixels);
        gemm_serial<T>(true, false, nc * KK, pixels, g.C_out_g, T(1), w_block, g.K_g, dy, ld_g,
                       T(0), dcols, pixels);
        col2im(g, dcols, c0, c0 + nc, r0, r1, gx);
      }
    }
  };

  // db[o] = sum_{n, oh, ow} dY[n, o, oh, ow], in double
  auto grad_bias_chunk = [&](int64_t k) {
    for (int64_t o = k * kBiasBlock; o < std::min(g.C_out, (k + 1) * kBiasBlock); ++o) {
      double lanes[8] = {};  // eight running sums, so the loop vectorizes; combined in a fixed order
      for (int64_t n = 0; n < g.N; ++n) {
        const T* row = gy + (n * g.C_out + o) * g.P;
        int64_t q = 0;
        for (; q + 8 <= g.P; q += 8)
          for (int k8 = 0; k8 < 8; ++k8) lanes[k8] += row[q + k8];
        for (; q < g.P; ++q) lanes[q % 8] += row[q];
      }
      gb[o] = static_cast<T>(((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                             ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7])));
    }
  };

  // The long grad_weight chunks first, so the shorter ones fill in around them.
  parallel_for(0, w_chunks + x_chunks + b_chunks, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      if (k < w_chunks) grad_weight_chunk(k);
      else if (k < w_chunks + x_chunks && g.shifted) grad_input_shifted_chunk(k - w_chunks);
      else if (k < w_chunks + x_chunks) grad_input_col2im_chunk(k - w_chunks);
      else grad_bias_chunk(k - w_chunks - x_chunks);
    }
  });
  // dW = sum of the range partials, in range order
  if (!partials.empty()) {
    const int64_t size = g.C_out * g.K_g;
    parallel_for(0, size, grain_for(w_ranges, 1 << 16), [&](int64_t e0, int64_t e1) {
      for (int64_t e = e0; e < e1; ++e) {
        T sum = partials[e];
        for (int64_t r = 1; r < w_ranges; ++r) sum += partials[r * size + e];
        gw[e] = sum;
      }
    });
  }
}

// ---- Entry points: checks, layout, dtype dispatch ----------------------------------------------

Shape output_shape(const ConvGeometry& g) { return {g.N, g.C_out, g.OH, g.OW}; }

template <class Kernel>
Tensor run_forward(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in,
                   const Conv2dParams& params, Kernel&& kernel) {
  const ConvGeometry g = check_conv2d(x_in, w_in, b_in, params);
  Tensor x = contiguous(x_in), w = contiguous(w_in);
  Tensor b = b_in.defined() ? contiguous(b_in) : Tensor();
  Tensor y = Tensor::empty(output_shape(g), x.dtype());
  dispatch_floating(x.dtype(), "conv2d", [&]<class T>() {
    kernel(g, x.data_ptr<T>(), w.data_ptr<T>(), b.defined() ? b.data_ptr<T>() : nullptr,
           y.data_ptr<T>());
  });
  return y;
}

template <class Kernel>
Conv2dGrads run_backward(const Tensor& gy_in, const Tensor& x_in, const Tensor& w_in,
                         const Conv2dParams& params, bool need_x, bool need_w, bool need_b,
                         Kernel&& kernel) {
  const ConvGeometry g = check_conv2d(x_in, w_in, Tensor(), params);
  KILN_CHECK(gy_in.shape() == output_shape(g) && gy_in.dtype() == x_in.dtype(),
             "conv2d backward: expected grad_y ", output_shape(g), " of ", dtype_name(x_in.dtype()),
             " (input ", x_in.shape(), ", weight ", w_in.shape(), "), got ", gy_in.shape(), " of ",
             dtype_name(gy_in.dtype()));
  Tensor gy = contiguous(gy_in), x = contiguous(x_in), w = contiguous(w_in);
  Conv2dGrads grads;
  if (need_x) grads.grad_x = Tensor::empty(x.shape(), x.dtype());
  if (need_w) grads.grad_weight = Tensor::empty(w.shape(), w.dtype());
  if (need_b) grads.grad_bias = Tensor::empty({g.C_out}, x.dtype());
  dispatch_floating(x.dtype(), "conv2d backward", [&]<class T>() {
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data_ptr<T>() : nullptr; };
    kernel(g, gy.data_ptr<T>(), x.data_ptr<T>(), w.data_ptr<T>(), ptr(grads.grad_x),
           ptr(grads.grad_weight), ptr(grads.grad_bias));
  });
  return grads;
}

}  // namespace

Tensor conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                      const Conv2dParams& params) {
  return run_forward(x, weight, bias, params,
                     []<class T>(const ConvGeometry& g, const T* px, const T* pw, const T* pb,
                                 T* py) { forward_kernel<T>(g, px, pw, pb, py); });
}

Conv2dGrads conv2d_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                            const Conv2dParams& params, bool need_x, bool need_weight,
                            bool need_bias) {
  return run_backward(grad_y, x, weight, params, need_x, need_weight, need_bias,
                      []<class T>(const ConvGeometry& g, const T* gy, const T* px, const T* pw,
                                  T* gx, T* gw, T* gb) {
                        backward_kernel<T>(g, gy, px, pw, gx, gw, gb);
                      });
}

Tensor conv2d_forward_reference(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                const Conv2dParams& params) {
  return run_forward(x, weight, bias, params,
                     []<class T>(const ConvGeometry& g, const T* px, const T* pw, const T* pb,
                                 T* py) { reference_forward<T>(g, px, pw, pb, py); });
}

Conv2dGrads conv2d_backward_reference(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                                      const Conv2dParams& params, bool need_x, bool need_weight,
                                      bool need_bias) {
  return run_backward(grad_y, x, weight, params, need_x, need_weight, need_bias,
                      []<class T>(const ConvGeometry& g, const T* gy, const T* px, const T* pw,
                                  T* gx, T* gw, T* gb) {
                        reference_backward<T>(g, gy, px, pw, gx, gw, gb);
                      });
}

}  // namespace kiln::kernels

// ---- The differentiable function ---------------------------------------------------------------

namespace kiln::nn::functional {

namespace {

struct Conv2d : autograd::Function<Conv2d> {
  static Tensor forward(autograd::Context& ctx, const Tensor& x, const Tensor& weight,
                        const Tensor& bias, kernels::Conv2dParams params) {
    ctx.save_for_backward({x, weight});
    ctx.saved_data["params"] = params;
    return kernels::conv2d_forward(x, weight, bias, params);
  }
  // y = conv(x, W) + b:  dx = col2im(W^T dy),  dW = dy cols^T,  db = sum dy  (see the top)
  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& grads) {
    auto saved = ctx.saved();
    auto params = std::any_cast<kernels::Conv2dParams>(ctx.saved_data["params"]);
    kernels::Conv2dGrads g =
        kernels::conv2d_backward(grads[0], saved[0], saved[1], params, ctx.needs_input_grad(0),
                                 ctx.needs_input_grad(1), ctx.needs_input_grad(2));
    return {g.grad_x, g.grad_weight, g.grad_bias};
  }
};

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride,
              int64_t padding, int64_t dilation, int64_t groups) {
  return Conv2d::apply(x, weight, bias, kernels::Conv2dParams{stride, padding, dilation, groups});
}

}  // namespace kiln::nn::functional

namespace kiln::nn {

// ---- The Module --------------------------------------------------------------------------------

Conv2d::Conv2d(int64_t in_channels_, int64_t out_channels_, int64_t kernel_size_,
               Conv2dOptions options_, DType dtype)
    : in_channels(in_channels_),
      out_channels(out_channels_),
      kernel_size(kernel_size_),
      options(options_) {
  KILN_CHECK(in_channels >= 1 && out_channels >= 1 && kernel_size >= 1,
             "Conv2d: expected positive in_channels, out_channels and kernel_size, got ",
             in_channels, ", ", out_channels, ", ", kernel_size);
  KILN_CHECK(options.stride >= 1, "Conv2d: expected stride >= 1, got ", options.stride);
  KILN_CHECK(options.padding >= 0, "Conv2d: expected padding >= 0, got ", options.padding);
  KILN_CHECK(options.dilation >= 1, "Conv2d: expected dilation >= 1, got ", options.dilation);
  KILN_CHECK(options.groups >= 1, "Conv2d: expected groups >= 1, got ", options.groups);
  KILN_CHECK(in_channels % options.groups == 0, "Conv2d: in_channels ", in_channels,
             " is not divisible by groups ", options.groups);
  KILN_CHECK(out_channels % options.groups == 0, "Conv2d: out_channels ", out_channels,
             " is not divisible by groups ", options.groups);
  KILN_CHECK(is_floating(dtype), "Conv2d: expected a floating dtype, got ", dtype_name(dtype));
  weight = register_parameter(
      "weight",
      Tensor::empty({out_channels, in_channels / options.groups, kernel_size, kernel_size}, dtype));
  bias = register_parameter("bias", options.bias ? Tensor::empty({out_channels}, dtype) : Tensor());
  reset_parameters();
}

void Conv2d::reset_parameters(Generator* gen) {
  // TODO(init): switch to nn::init::kaiming_uniform_(weight, sqrt(5)) once layers/init lands.
  NoGradGuard no_grad;
  const int64_t fan_in = in_channels / options.groups * kernel_size * kernel_size;
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  // U(-bound, bound) = bound (2 U(0, 1) - 1)
  auto uniform = [&](Tensor& t) { t.copy_(Tensor::rand(t.shape(), t.dtype(), gen) * (2 * bound) - bound); };
  uniform(weight);
  if (bias.defined()) uniform(bias);
}

Tensor Conv2d::forward(const Tensor& x) {
  return functional::conv2d(x, weight, bias, options.stride, options.padding, options.dilation,
                            options.groups);
}

std::string Conv2d::extra_repr() const {
  std::ostringstream out;
  out << in_channels << ", " << out_channels << ", kernel_size=(" << kernel_size << ", "
      << kernel_size << "), stride=(" << options.stride << ", " << options.stride << ")";
  if (options.padding != 0) out << ", padding=(" << options.padding << ", " << options.padding << ")";
  if (options.dilation != 1)
    out << ", dilation=(" << options.dilation << ", " << options.dilation << ")";
  if (options.groups != 1) out << ", groups=" << options.groups;
  if (!bias.defined()) out << ", bias=False";
  return out.str();
}

}  // namespace kiln::nn
