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
//   cols[(c, i, j), (oh, ow)] = x[n, g C/G + c, oh s - p + i d, ow s - p + j d]
//                                                               cols is [C/G KH KW, OH OW]
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
// Winograd F(2x2, 3x3) (Lavin and Gray, arXiv 1509.09308) is the fast path for the common 3x3
// convolution with stride 1, dilation 1 and padding 1. Each 2x2 block of outputs (a tile) is
//
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A
//
// with d the 4x4 patch of input under the tile, g the 3x3 filter, (.) the elementwise product, and
//
//   B^T = [1  0 -1  0]    G = [  1    0    0 ]    A^T = [1 1  1  0]
//         [0  1  1  0]        [ 1/2  1/2  1/2]          [0 1 -1 -1]
//         [0 -1  1  0]        [ 1/2 -1/2  1/2]
//         [0  1  0 -1]        [  0    0    1 ]
//
// Summed over input channels, each of the 16 entries xi of the 4x4 transformed domain is a GEMM:
//
//   forward       M[xi] = U[xi] V[xi]      U = G g G^T [C_out/G, C/G],  V = B^T d B [C/G, tiles]
//                 y = A^T M A + bias                      GEMM M = C_out/G, N = tiles, K = C/G
//   grad_input    the same, on dY, with each filter rotated by 180 degrees and U transposed
//                 (grad_x of a stride-1, padding-1 3x3 convolution is that convolution of dY)
//   grad_weight   dU[xi] = sum over tiles of (A dY A^T)[xi] V[xi]^T,  dW = G^T dU G
//                                                         GEMM M = C_out/G, N = C/G, K = tiles
//
// 16 multiplies per tile and channel pair instead of 36, 2.25x fewer flops, for transforms that
// cost a few additions per element. It pays once the batch has enough tiles to amortize the filter
// transforms (see check_conv2d); its rounding error is a few times that of the direct sum, still
// below 1e-6 of the output's scale in f32 (rms 2.6e-7 to 5.1e-7 on the layers below).
//
// Winograd F(4x4, 3x3) is the same with 4x4 tiles, a 6x6 patch d and 36 entries xi (its B^T, G
// and A^T are at Winograd4 below): 36 multiplies for 16 outputs instead of 144, 4x fewer. It is
// taken for layers wide and large enough that its 36 GEMMs stay efficient with a quarter of the
// tiles (see check_conv2d). Its f32 rounding error is about ten times F(2x2, 3x3)'s: on
// 8x64x32x32 -> 64, 32x128x16x16 -> 128 and 32x256x8x8 -> 256, the largest error of y, grad_x or
// dW is 3.5e-6 to 1.3e-5 of that tensor's largest magnitude, and the root-mean-square error
// 1.4e-6 to 3.5e-6 of its root-mean-square value.
//
// ---- The decomposition -------------------------------------------------------------------------
// Every chunk boundary follows from the sizes alone and each output element is written by one
// chunk in a fixed order, so results are bit-identical at any thread count. Work is cut along what
// is large (pixels, channels), never along the batch alone: a batch of 2 fills every core.
//  - forward: chunks (group, tile, block of output channels). An im2col tile is a block of output
//    rows of one image, or of whole small images, whose column matrix stays in L2; a Winograd tile
//    block is a range of tile rows of the batch.
//  - grad_input, Winograd: chunks (group, tile block, block of input channels). F(2x2, 3x3) reads
//    the forward's transformed filters, kept at small sizes (see winograd_rotated_point).
//  - grad_input, col2im: chunks (image block, group, block of input channels). The chunk owns
//    grad_x for those images and channels, so its col2im scatter races with no one.
//  - grad_weight: chunks (group, block of input channels, block of output channels, range of the
//    batch). The chunk owns its block of dW, or of its range's partial copy of dW when the blocks
//    are too few to share out; it walks its tiles in order, accumulating, and the partials are
//    added in range order at the end. At tiny batches Winograd's grad_weight reads the V that
//    the forward kept, instead of transforming x again (see kSavedInputMaxElems).
//  - grad_bias: a chunk per block of output channels, summing in double.
// Buffers are per-thread scratch that only grows: the hot loops never allocate.
#include <kiln/layers/conv2d.h>
#include <kiln/layers/init.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <sstream>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include <kiln/autograd/function.h>
#include <kiln/autograd/grad_mode.h>
#include <kiln/core/linalg.h>
#include <kiln/core/parallel.h>
#include <kiln/core/storage.h>
#include <kiln/core/views.h>

namespace kiln::kernels {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// 3x3 convolutions with stride 1, dilation 1 and padding 1 take the Winograd path when they have at
// least this many channels per group in and out (with fewer, the transforms cost more than the
// GEMMs save).
constexpr int64_t kWinogradMinChannels = 16;
constexpr int64_t kWinogradMinBatchTiles = 16;
// Among those, F(4x4, 3x3) is taken on maps of at least kWinograd4MinSize in both directions, with
// at least kWinograd4MinChannels channels per group each way, and at least kWinograd4MinWork
// tiles of 4x4 in the batch times the narrower of the two.
constexpr int64_t kWinograd4MinSize = 8;
constexpr int64_t kWinograd4MinChannels = 64;
constexpr int64_t kWinograd4MinWork = 16384;

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
  bool pointwise;         // 1x1, stride 1, no padding: cols is x itself
  bool winograd;          // 3x3, stride 1, dilation 1, padding 1, and enough tiles: Winograd
  int64_t winograd_m;     // its output tile size: 2 or 4
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
  g.pointwise = g.KK == 1 && g.s == 1 && g.p == 0;
  // Winograd pays when the tiles (2x2 output blocks) of the batch are many next to the filters it
  // transforms on every call: at least a quarter as many as the channels per group, measured.
  const int64_t tiles = g.N * ceil_div(g.OH, 2) * ceil_div(g.OW, 2);
  g.winograd = g.KH == 3 && g.KW == 3 && g.s == 1 && g.d == 1 && g.p == 1 &&
               g.C_g >= kWinogradMinChannels && g.C_out_g >= kWinogradMinChannels &&
               tiles >= std::max<int64_t>(kWinogradMinBatchTiles, std::max(g.C_g, g.C_out_g) / 4);
  // F(4x4, 3x3) does 4x fewer multiplies than the direct sum, against 2.25x, but its GEMMs have a
  // quarter of the tiles to share each filter matrix's packing among, and its transforms cost
  // more: timed layer by layer at 1 and 2 threads, it pays on maps of 8x8 or more with wide
  // channels and many tiles, and not on vgg8's and vgg16's layers at batch 2.
  const int64_t tiles4 = g.N * ceil_div(g.OH, 4) * ceil_div(g.OW, 4);
  const int64_t narrow = std::min(g.C_g, g.C_out_g);
  g.winograd_m = g.winograd && g.OH >= kWinograd4MinSize && g.OW >= kWinograd4MinSize &&
                         narrow >= kWinograd4MinChannels && tiles4 * narrow >= kWinograd4MinWork
                     ? 4
                     : 2;
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
// Channel blocks of col2im: about this many rows of dcols (16 channels of 3x3).
constexpr int64_t kBlockRows = 144;
// Channel blocks of grad_weight: about this many rows of cols (64 channels of 3x3). Its GEMM
// (M = rows, N = C_out/G) runs at 97% of OpenBLAS's best with 576 rows, 87% with 144.
constexpr int64_t kWeightBlockRows = 576;
// grad_weight GEMMs run transposed (then transpose their result) over at least this many pixels.
constexpr int64_t kWeightTransposeMinPixels = 512;
// grad_weight may split the batch into ranges summed afterwards; their partial sums hold at most
// this many elements.
constexpr int64_t kMaxPartialElems = int64_t{1} << 22;
// Chunks wanted per parallel loop before also splitting the channels a chunk writes (which
// repeats that chunk's im2col or input transform).
constexpr int64_t kMinChunks = 4;
// The smallest block of channels worth a chunk of its own.
constexpr int64_t kMinChannelBlock = 16;
// Winograd blocks hold about kWinogradTileElems / channels tiles (a transformed block, 16 x
// channels x tiles, then fills half of L2), and at least kWinogradMinTiles.
constexpr int64_t kWinogradTileElems = int64_t{1} << 13;
constexpr int64_t kWinogradMinTiles = 64;
// Winograd grad_weight blocks: at most this many channels in and out (each chunk transforms its
// input and output channels once per tile block, so wide blocks repeat less of that work).
constexpr int64_t kWinogradFilterBlock = 256;

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

// A per-call buffer of n elements, left uninitialized (its users write every element first). It
// comes from the caching allocator, like every tensor, so the large ones (the Winograd filters of
// a 512-channel layer are 16 MiB) are reused from step to step and show in allocator_stats().
struct CallBufferDeleter {
  size_t bytes = 0;
  void operator()(void* p) const noexcept { deallocate(p, bytes); }
};
template <class T>
using CallBuffer = std::unique_ptr<T[], CallBufferDeleter>;
template <class T>
CallBuffer<T> call_buffer(int64_t n) {
  const size_t bytes = sizeof(T) * static_cast<size_t>(std::max<int64_t>(n, 1));
  return CallBuffer<T>(static_cast<T*>(allocate(bytes)), CallBufferDeleter{bytes});
}

enum ScratchSlot { kCols, kPacked, kAccum, kStage, kOffsets, kSlots };
template <class T>
T* scratch(ScratchSlot slot, int64_t count) {
  thread_local Scratch buffers[kSlots];
  return buffers[slot].get<T>(count);
}

// ---- Lowering: im2col, col2im, and [channels, pixels] views ------------------------------------

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

// The flattened row r = n OH + oh, as (n, oh).
struct RowIndex {
  int64_t n, oh;
};
RowIndex row_index(const ConvGeometry& g, int64_t r) { return {r / g.OH, r % g.OH}; }

// Calls fn(n, oh) for the count flattened rows from `first` on, without a division per row.
template <class Fn>
void for_each_row(const ConvGeometry& g, RowIndex first, int64_t count, Fn&& fn) {
  int64_t n = first.n, oh = first.oh;
  for (int64_t r = 0; r < count; ++r) {
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

// Rows of at most this many output columns are lowered by gathering: the calls of fill and copy
// per row would cost more than the copy.
constexpr int64_t kShortRow = 16;

// dst[q] = plane[offsets[q]], or 0 where offsets[q] is -1 (padding), for q < count. A select, not
// a branch: padding reads element 0 of the plane and drops it.
template <class T>
void gather_or_zero(const T* __restrict plane, const int64_t* __restrict offsets, int64_t count,
                    T* __restrict dst) {
  int64_t q = 0;
#ifdef __AVX512F__
  // Eight at a time, the padding masked off (not read, and +0 in dst).
  const __m512i zero = _mm512_setzero_si512();
  for (; q + 8 <= count; q += 8) {
    const __m512i at = _mm512_loadu_si512(offsets + q);
    const __mmask8 inside = _mm512_cmpge_epi64_mask(at, zero);
    if constexpr (std::is_same_v<T, float>)
      _mm256_storeu_ps(dst + q,
                       _mm512_mask_i64gather_ps(_mm256_setzero_ps(), inside, at, plane, 4));
    else
      _mm512_storeu_pd(dst + q,
                       _mm512_mask_i64gather_pd(_mm512_setzero_pd(), inside, at, plane, 8));
  }
#endif
  for (; q < count; ++q) {
    const T v = plane[std::max<int64_t>(offsets[q], 0)];
    dst[q] = offsets[q] >= 0 ? v : T(0);
  }
}

// im2col on short rows. For each tap (i, j) the position of every pixel's input inside a channel
// plane, offsets[(r - r0) OW + ow] = n C H W + ih W + iw (or -1 where the tap reads padding), is
// the same for all channels: it is found once, and each channel gathers with it.
template <class T>
void im2col_short_rows(const ConvGeometry& g, const T* x, int64_t c0, int64_t c1, int64_t r0,
                       int64_t r1, T* cols) {
  const int64_t OW = g.OW, image = g.C * g.H * g.W, pixels = (r1 - r0) * OW;
  int64_t* offsets = scratch<int64_t>(kOffsets, pixels);
  for (int64_t i = 0; i < g.KH; ++i) {
    for (int64_t j = 0; j < g.KW; ++j) {
      int64_t* o = offsets;
      for_each_row(g, row_index(g, r0), r1 - r0, [&](int64_t n, int64_t oh) {
        const int64_t ih = oh * g.s - g.p + i * g.d;
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t iw = ow * g.s - g.p + j * g.d;
          const bool inside = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
          *o++ = inside ? n * image + ih * g.W + iw : -1;
        }
      });
      for (int64_t c = c0; c < c1; ++c)
        gather_or_zero(x + c * g.H * g.W, offsets, pixels,
                       cols + ((c - c0) * g.KK + i * g.KW + j) * pixels);
    }
  }
}

// cols [(c1 - c0) KH KW, (r1 - r0) OW] for input channels [c0, c1) (absolute) and flattened output
// rows [r0, r1):  cols[(c - c0, i, j), (r - r0, ow)] = x[n, c, oh s - p + i d, ow s - p + j d].
// The taps (i, j) run outermost, so each finds its valid columns once for all channels.
template <class T>
void im2col(const ConvGeometry& g, const T* x, int64_t c0, int64_t c1, int64_t r0, int64_t r1,
            T* cols) {
  if (g.OW <= kShortRow) return im2col_short_rows(g, x, c0, c1, r0, r1, cols);
  const int64_t OW = g.OW, image = g.C * g.H * g.W, pixels = (r1 - r0) * OW;
  const RowIndex first = row_index(g, r0);
  for (int64_t i = 0; i < g.KH; ++i) {
    for (int64_t j = 0; j < g.KW; ++j) {
      const ValidRange valid = valid_columns(g, j);
      const int64_t lo = valid.lo, hi = valid.hi;  // named, not bound: lambdas capture them
      for (int64_t c = c0; c < c1; ++c) {
        T* dst = cols + ((c - c0) * g.KK + i * g.KW + j) * pixels;
        // x_cj[n image + ih W + k s] = x[n, c, ih, (lo + k) s - p + j d], the first valid column
        const T* x_cj = x + c * g.H * g.W + (lo * g.s + j * g.d - g.p);
        for_each_row(g, first, r1 - r0, [&](int64_t n, int64_t oh) {
          const int64_t ih = oh * g.s - g.p + i * g.d;
          if (ih < 0 || ih >= g.H || lo == hi) {
            std::fill(dst, dst + OW, T(0));
          } else {
            const T* src = x_cj + n * image + ih * g.W;
            std::fill(dst, dst + lo, T(0));
            if (g.s == 1) {
              std::copy(src, src + (hi - lo), dst + lo);
            } else {
              for (int64_t k = 0; k < hi - lo; ++k) dst[lo + k] = src[k * g.s];
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
// (r - r0, ow)] for channels [c0, c1) and rows [r0, r1). Each element of grad_x receives its
// terms in (i, j) order, as in a loop with the channels outermost.
template <class T>
void col2im(const ConvGeometry& g, const T* dcols, int64_t c0, int64_t c1, int64_t r0, int64_t r1,
            T* grad_x) {
  const int64_t OW = g.OW, image = g.C * g.H * g.W, pixels = (r1 - r0) * OW;
  const RowIndex first = row_index(g, r0);
  for (int64_t i = 0; i < g.KH; ++i) {
    for (int64_t j = 0; j < g.KW; ++j) {
      const ValidRange valid = valid_columns(g, j);
      const int64_t lo = valid.lo, hi = valid.hi;  // named, not bound: lambdas capture them
      if (lo == hi) continue;
      for (int64_t c = c0; c < c1; ++c) {
        const T* src = dcols + ((c - c0) * g.KK + i * g.KW + j) * pixels;
        // gx_cj[n image + ih W + k s] = grad_x[n, c, ih, (lo + k) s - p + j d]
        T* gx_cj = grad_x + c * g.H * g.W + (lo * g.s + j * g.d - g.p);
        for_each_row(g, first, r1 - r0, [&](int64_t n, int64_t oh) {
          const int64_t ih = oh * g.s - g.p + i * g.d;
          if (ih >= 0 && ih < g.H) add_row(gx_cj + n * image + ih * g.W, g.s, src + lo, hi - lo);
          src += OW;
        });
      }
    }
  }
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

// ---- Products over few pixels ------------------------------------------------------------------
// Deep layers at small batches have a handful of pixels (8 for 2x2 maps at batch 2), and their
// products are lopsided; a general GEMM handles them poorly.
//  - grad_weight, dW [no, nc KK] = dY [no, P] cols [nc KK, P]^T, has a short K and a wide C: a
//    GEMM zeroes C, then reads and writes it again around a few multiply-adds per element.
//    gemm_nt_short_k keeps each element's sum in a register and writes it once.
//  - forward, Y [no, P] += W [no, K] cols [K, P], reads a weight matrix of up to 512 x 4608 for 8
//    to 32 columns. A GEMM packs it into its own layout on every call; gemm_short_n reads it in
//    place, once. At 8 or 16 columns the packing costs more than the product. At 24 or 32 a layer
//    repeated alone is level either way, but inside a training step the weights have left the
//    cache since their last use, and packing reads and writes them once more.
//  - grad_input, dcols [nc KK, P] = W^T dY, reads the same matrix transposed. Over 24 or 32
//    columns OpenBLAS packs it too, and gemm_short_n<true> reads it in place. Over 8 columns
//    OpenBLAS's small-matrix kernel reads it in place already, and was faster; 16 stay with
//    OpenBLAS too (see use_short_n_transposed).
// Their sums are fixed: an element of a K-long product is summed in blocks of kSumBlockK, each an
// fma chain from +0 in k order and added to C in turn (a rest of between one and two blocks is
// halved, rounded up to 16). On the deep layers of vgg8 and vgg16 (256 or 512 output channels)
// OpenBLAS's sgemm sums the same way, so their results kept their bits when these kernels came in
// (kiln-result-hashes checks them). On narrow products OpenBLAS may take its small-matrix kernel,
// one chain per element, and there the bits differ from its. dgemm blocks differently, so
// gemm_short_n is for f32 only.
//
// The fmas are explicit intrinsics: left to itself, GCC splits some multiply-add chains into a
// multiply and an add (as it tunes for some CPUs), which rounds twice.

// Pixels up to which grad_weight uses gemm_nt_short_k (see short_k_limit), and forward
// gemm_short_n (for pixel counts that are multiples of 8).
constexpr int64_t kShortK = 16;
constexpr int64_t kShortN = 32;
// The fewest pixels for which grad_input uses gemm_short_n too (see use_short_n_transposed).
constexpr int64_t kShortNTransposedMin = 24;
constexpr int64_t kSumBlockK = 320;

// Asks the cache for every 64-byte line of the bytes [begin, end), given as addresses rather
// than pointers so that a range may run past an array (a prefetch never faults). Always inlined:
// GCC treats a function that only prefetches as free of effects, and drops calls to it.
template <int kLocality = 3>
[[gnu::always_inline]] inline void prefetch_lines(uintptr_t begin, uintptr_t end) {
  for (uintptr_t line = begin & ~uintptr_t{63}; line < end; line += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(line), 0, kLocality);
}

#if defined(__AVX2__) && defined(__FMA__)
#define KILN_SMALL_PRODUCTS 1

// One 256-bit vector of T and the operations the kernels use.
template <class T>
struct Simd;
template <>
struct Simd<float> {
  using V = __m256;
  static constexpr int64_t kLanes = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V broadcast(float x) { return _mm256_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
};
#ifdef __AVX512F__
// One 512-bit vector of floats, for the small products with AVX-512 (gemm_short_n over 32
// columns, gemm_nt_short_k in f32).
struct Simd512 {
  using V = __m512;
  static constexpr int64_t kLanes = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V broadcast(float x) { return _mm512_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
};
#endif
template <>
struct Simd<double> {
  using V = __m256d;
  static constexpr int64_t kLanes = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static V broadcast(double x) { return _mm256_set1_pd(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
};

// The most pixels for which grad_weight takes gemm_nt_short_k: kShortK, or 32 for f32 with
// AVX-512, whose 512-bit vectors let four loads and four broadcasts feed 16 multiply-adds of 16
// lanes, where OpenBLAS would pack both operands of a product of K = 32 (2x128x4x4 -> 256
// backward 0.435 to 0.406 ms at 1 thread). An element is one fma chain over the pixels, as
// OpenBLAS's sgemm sums under K = 400, so the layers of vgg8 and vgg16 kept their bits; its
// small-matrix kernel, which it takes for some narrow shapes, may sum otherwise.
template <class T>
constexpr int64_t short_k_limit() {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) return 2 * kShortK;
#endif
  return kShortK;
}

// The input channels a Winograd grad_weight chunk must cover, a multiple of this, to take
// gemm_nt_short_k (its blocks are 4 vectors of 16 wide).
constexpr int64_t kWinogradShortKChannels = 64;

// C[m, n] = sum_{k < K} A[m, k] B[n, k], K <= short_k_limit (one block): A [M, K] (leading dim
// lda), B [N, K] (ldb), C [M, N] (ldc). bt is scratch for B^T [K, N]. Blocks of 4 rows x 4
// vectors of C. With accumulate, C[m, n] += that sum (one add of the finished chain, as a GEMM
// with beta = 1 adds it).
template <class T, class S = Simd<T>>
void gemm_nt_short_k(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                     int64_t ldb, T* C, int64_t ldc, T* __restrict bt, bool accumulate = false) {
  using V = typename S::V;
  constexpr int64_t kRows = 4, kVecs = 4, kWidth = kVecs * S::kLanes;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) bt[k * N + n] = B[n * ldb + k];
  int64_t m0 = 0;
  for (; m0 + kRows <= M; m0 += kRows) {
    int64_t n0 = 0;
    for (; n0 + kWidth <= N; n0 += kWidth) {
      V acc[kRows][kVecs];
      for (auto& row : acc)
        for (V& v : row) v = S::zero();
      for (int64_t k = 0; k < K; ++k) {
        V b[kVecs];
        for (int64_t j = 0; j < kVecs; ++j) b[j] = S::load(bt + k * N + n0 + j * S::kLanes);
        for (int64_t r = 0; r < kRows; ++r) {
          const V a = S::broadcast(A[(m0 + r) * lda + k]);
          for (int64_t j = 0; j < kVecs; ++j) acc[r][j] = S::fma(a, b[j], acc[r][j]);
        }
      }
      for (int64_t r = 0; r < kRows; ++r)
        for (int64_t j = 0; j < kVecs; ++j) {
          T* c = C + (m0 + r) * ldc + n0 + j * S::kLanes;
          S::store(c, accumulate ? S::add(S::load(c), acc[r][j]) : acc[r][j]);
        }
    }
    for (int64_t r = 0; r < kRows; ++r)  // the columns past the last block
      for (int64_t n = n0; n < N; ++n) {
        T sum = T(0);
        for (int64_t k = 0; k < K; ++k) sum = std::fma(A[(m0 + r) * lda + k], bt[k * N + n], sum);
        T& c = C[(m0 + r) * ldc + n];
        c = accumulate ? c + sum : sum;
      }
  }
  for (; m0 < M; ++m0)  // the rows past the last block
    for (int64_t n = 0; n < N; ++n) {
      T sum = T(0);
      for (int64_t k = 0; k < K; ++k) sum = std::fma(A[m0 * lda + k], bt[k * N + n], sum);
      T& c = C[m0 * ldc + n];
      c = accumulate ? c + sum : sum;
    }
}

// gemm_nt_short_k in the vectors that go with short_k_limit: 512-bit for f32 with AVX-512.
template <class T>
void gemm_nt_short_k_widest(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                            int64_t ldb, T* C, int64_t ldc, T* __restrict bt,
                            bool accumulate = false) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    gemm_nt_short_k<T, Simd512>(M, N, K, A, lda, B, ldb, C, ldc, bt, accumulate);
    return;
  }
#endif
  gemm_nt_short_k<T>(M, N, K, A, lda, B, ldb, C, ldc, bt, accumulate);
}

// C[r, L j + l] += sum_k A[r, k] B[k, L j + l] for r < R, j < NV, l < L, L = S::kLanes (8 or 16);
// A[r, k] at A + r lda + k, or at A + k lda + r when kTransA; B with leading dim ldb, C ldc; K in
// blocks as described above.
// The R x NV vectors of a block's sums stay in registers.
// Read transposed, the block's A is a column of K elements lda apart: a stride the hardware
// prefetchers do not follow, over a weight matrix that is mostly out of this core's cache. Each
// step of k asks for the line 16 floats on, which the blocks of rows after this one will read.
template <int R, int NV, bool kTransA, class S = Simd<float>>
void short_n_rows(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                  int64_t ldc) {
  using V = typename S::V;
  for (int64_t k0 = 0; k0 < K;) {
    int64_t kb = K - k0;
    if (kb >= 2 * kSumBlockK) kb = kSumBlockK;
    else if (kb > kSumBlockK) kb = (kb / 2 + 15) / 16 * 16;
    V acc[R][NV];
    for (auto& row : acc)
      for (V& v : row) v = S::zero();
    for (int64_t k = k0; k < k0 + kb; ++k) {
      if constexpr (kTransA) {  // past the last row, that line lies outside A
        const uintptr_t next = reinterpret_cast<uintptr_t>(A + k * lda) + 16 * sizeof(float);
        prefetch_lines(next, next + 1);
      }
      V b[NV];
      for (int j = 0; j < NV; ++j) b[j] = S::load(B + k * ldb + S::kLanes * j);
      for (int r = 0; r < R; ++r) {
        const V a = S::broadcast(kTransA ? A[k * lda + r] : A[r * lda + k]);
        for (int j = 0; j < NV; ++j) acc[r][j] = S::fma(a, b[j], acc[r][j]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < NV; ++j) {
        float* c = C + r * ldc + S::kLanes * j;
        S::store(c, S::add(S::load(c), acc[r][j]));
      }
    k0 += kb;
  }
}

// Blocks of R rows, then the rows left over one by one.
template <int R, int NV, bool kTransA, class S = Simd<float>>
void short_n_all_rows(int64_t M, int64_t K, const float* A, int64_t lda, const float* B,
                      int64_t ldb, float* C, int64_t ldc) {
  const int64_t row_step = kTransA ? 1 : lda;
  int64_t m = 0;
  for (; m + R <= M; m += R)
    short_n_rows<R, NV, kTransA, S>(K, A + m * row_step, lda, B, ldb, C + m * ldc, ldc);
  for (; m < M; ++m)
    short_n_rows<1, NV, kTransA, S>(K, A + m * row_step, lda, B, ldb, C + m * ldc, ldc);
}

// C [M, N] += A [M, K] B [K, N] (A stored [K, M] when kTransA, leading dim lda either way) for
// N = 8, 16, 24 or 32 (multiples of 8 up to kShortN), in blocks of 8, 8, 6 or 4 rows: the block's
// sums, a row of B and a broadcast fit in the 32 registers that AVX-512 gives 256-bit vectors.
// With AVX-512, N = 32 takes two 512-bit vectors a row, in blocks of 8 rows: twice the
// multiply-adds for each broadcast, where 4 rows of 256-bit vectors spent one load on every four
// (2x128x4x4 -> 256 forward 0.19 to 0.165 ms at 2 threads). Each element's sum is the same chain,
// so the bits are too.
template <bool kTransA = false>
void gemm_short_n(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                  int64_t ldb, float* C, int64_t ldc) {
  if (N == 8) short_n_all_rows<8, 1, kTransA>(M, K, A, lda, B, ldb, C, ldc);
  else if (N == 16) short_n_all_rows<8, 2, kTransA>(M, K, A, lda, B, ldb, C, ldc);
  else if (N == 24) short_n_all_rows<6, 3, kTransA>(M, K, A, lda, B, ldb, C, ldc);
#ifdef __AVX512F__
  else short_n_all_rows<8, 2, kTransA, Simd512>(M, K, A, lda, B, ldb, C, ldc);
#else
  else short_n_all_rows<4, 4, kTransA>(M, K, A, lda, B, ldb, C, ldc);
#endif
}
#endif

// Whether the forward's product over `pixels` columns goes to gemm_short_n.
template <class T>
constexpr bool use_short_n([[maybe_unused]] int64_t pixels) {
#ifdef KILN_SMALL_PRODUCTS
  return std::is_same_v<T, float> && pixels % 8 == 0 && pixels <= kShortN;
#else
  return false;
#endif
}

// Whether grad_input's product over `pixels` columns, dcols = W^T dY, goes to gemm_short_n with A
// transposed: from 24 pixels on. Over 8, OpenBLAS's small-matrix kernel was faster, and it sums
// each element in one chain, where gemm_short_n would change the bits. 16 pixels, which no layer
// of vgg8 or vgg16 has at batch 2, 8 or 32, were not timed, and stay with OpenBLAS.
template <class T>
constexpr bool use_short_n_transposed(int64_t pixels) {
  return use_short_n<T>(pixels) && pixels >= kShortNTransposedMin;
}

// ---- Winograd F(m x m, 3x3): transforms --------------------------------------------------------
// The math is at the top. Tiles are m x m blocks of output (m = kM, 2 or 4), indexed by tile rows
// r = n TY + ty of the batch (TY = ceil(OH / m) tile rows and TX = ceil(OW / m) tiles per row); a
// tile past the image edge reads zeros and writes nothing. Transformed tensors are laid out
// [alpha^2][channels][tiles], alpha = m + 2, so each of the alpha^2 GEMMs reads and writes
// contiguous matrices.

struct WinogradTiles {
  int64_t m;       // output tile size: 2 or 4
  int64_t TY, TX;  // tiles per image: rows, and tiles per row
  int64_t rows;    // tile rows in the batch: N TY
  int64_t blocks;  // blocks of tile rows (the unit of work)
  std::pair<int64_t, int64_t> block(int64_t b) const {
    return {b * rows / blocks, (b + 1) * rows / blocks};
  }
};

// The points of the transformed domain of F(m x m, 3x3): (m + 2)^2.
constexpr int winograd_points(int64_t m) { return static_cast<int>((m + 2) * (m + 2)); }
template <int kM>
constexpr int kWinogradPoints = winograd_points(kM);

// The distance between the planes of a transformed tensor of rows x cols: padded by 64 bytes, so
// that the streams a transform reads or writes do not all map to the same cache sets.
int64_t winograd_plane(int64_t rows, int64_t cols) { return rows * cols + 16; }

// Blocks of about kWinogradTileElems / channels tiles of F(2x2, 3x3), and as many fewer of
// F(4x4, 3x3) as keep a block's transformed input (points x channels x tiles) the same size, so
// that it stays in L2; at least kWinogradMinTiles, and at least kMinChunks per group when the
// batch has the rows.
WinogradTiles winograd_tiles(const ConvGeometry& g) {
  WinogradTiles w;
  w.m = g.winograd_m;
  w.TY = ceil_div(g.OH, w.m);
  w.TX = ceil_div(g.OW, w.m);
  w.rows = g.N * w.TY;
  const int64_t points = winograd_points(w.m);
  const int64_t tiles = std::max<int64_t>(
      kWinogradMinTiles, kWinogradTileElems * 16 / points / std::max(g.C_g, g.C_out_g));
  const int64_t rows_per_block = std::max<int64_t>(1, tiles / w.TX);
  w.blocks = std::max(ceil_div(w.rows, rows_per_block),
                      std::min(w.rows, ceil_div(kMinChunks, g.G)));
  return w;
}

// The forward's transformed input V = B^T d B, kept for grad_weight, which would otherwise compute
// it again (once per block of output channels it splits dW into): [G][blocks] slots of the largest
// block's size, each laid out as the forward writes it, [points][C/G][tiles] with planes
// winograd_plane(C/G, tiles). Kept only while it is small, as at tiny batches: larger ones would
// leave L2 between the forward and the backward, for less gain.
constexpr int64_t kSavedInputMaxElems = int64_t{1} << 20;

int64_t saved_input_slot(const ConvGeometry& g, const WinogradTiles& wt) {
  return winograd_points(wt.m) * winograd_plane(g.C_g, ceil_div(wt.rows, wt.blocks) * wt.TX);
}

int64_t saved_input_elems(const ConvGeometry& g) {
  if (!g.winograd) return 0;
  const WinogradTiles wt = winograd_tiles(g);
  return g.G * wt.blocks * saved_input_slot(g, wt);
}

// Calls fn.template operator()<m>() with the tile size m (2 or 4) as a constant.
template <class Fn>
decltype(auto) with_tile_size(int64_t m, Fn&& fn) {
  if (m == 4) return fn.template operator()<4>();
  return fn.template operator()<2>();
}

// The transform loops below write rows whose distance (xi_stride) is only known at run time, so
// the compiler cannot prove they do not overlap; they never do, and this says so, letting the
// loops vectorize.
#if defined(__clang__)
#define KILN_INDEPENDENT_ITERATIONS _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define KILN_INDEPENDENT_ITERATIONS _Pragma("GCC ivdep")
#else
#define KILN_INDEPENDENT_ITERATIONS
#endif

// The one-dimensional transforms of F(4x4, 3x3) (points 0, 1, -1, 2, -2 and infinity), each
// applied along one axis of a tile and then the other:
//
//   B^T = [4  0 -5  0  1  0]   G = [ 1/4     0     0 ]   A^T = [1  1  1  1  1  0]
//         [0 -4 -4  1  1  0]       [-1/6  -1/6  -1/6 ]         [0  1 -1  2 -2  0]
//         [0  4 -4 -1  1  0]       [-1/6   1/6  -1/6 ]         [0  1  1  4  4  0]
//         [0 -2 -1  2  1  0]       [1/24  1/12   1/6 ]         [0  1 -1  8 -8  1]
//         [0  2 -1 -2  1  0]       [1/24 -1/12   1/6 ]
//         [0  4  0 -5  0  1]       [  0     0     1  ]
//
// input: v = B^T d (6 from 6); output: y = A^T m (4 from 6); grad_output: d = A y (6 from 4, the
// adjoint of output); filter: u = G f (6 from 3); filter_grad: f = G^T u (3 from 6, the adjoint
// of filter).
template <class T>
struct Winograd4 {
  static void input(const T (&d)[6], T (&v)[6]) {
    const T a = d[4] - T(4) * d[2], b = d[3] - T(4) * d[1];
    const T c = d[4] - d[2], e = T(2) * (d[3] - d[1]);
    v[0] = T(4) * d[0] - T(5) * d[2] + d[4];
    v[1] = a + b;
    v[2] = a - b;
    v[3] = c + e;
    v[4] = c - e;
    v[5] = T(4) * d[1] - T(5) * d[3] + d[5];
  }
  static void output(const T (&m)[6], T (&y)[4]) {
    const T p = m[1] + m[2], q = m[1] - m[2], r = m[3] + m[4], s = m[3] - m[4];
    y[0] = m[0] + p + r;
    y[1] = q + T(2) * s;
    y[2] = p + T(4) * r;
    y[3] = q + T(8) * s + m[5];
  }
  static void grad_output(const T (&y)[4], T (&d)[6]) {
    const T e = y[0] + y[2], o = y[1] + y[3];
    const T e4 = y[0] + T(4) * y[2], o8 = T(2) * y[1] + T(8) * y[3];
    d[0] = y[0];
    d[1] = e + o;
    d[2] = e - o;
    d[3] = e4 + o8;
    d[4] = e4 - o8;
    d[5] = y[3];
  }
  static void filter(const T (&f)[3], T (&u)[6]) {
    const T s = f[0] + f[2], t = f[0] * T(1.0 / 24) + f[2] * T(1.0 / 6), w = f[1] * T(1.0 / 12);
    u[0] = f[0] * T(0.25);
    u[1] = (s + f[1]) * T(-1.0 / 6);
    u[2] = (s - f[1]) * T(-1.0 / 6);
    u[3] = t + w;
    u[4] = t - w;
    u[5] = f[2];
  }
  static void filter_grad(const T (&u)[6], T (&f)[3]) {
    const T p12 = u[1] + u[2], p34 = u[3] + u[4];
    f[0] = u[0] * T(0.25) - p12 * T(1.0 / 6) + p34 * T(1.0 / 24);
    f[1] = (u[2] - u[1]) * T(1.0 / 6) + (u[3] - u[4]) * T(1.0 / 12);
    f[2] = (p34 - p12) * T(1.0 / 6) + u[5];
  }
};

// out[k][t] = kTransform(in[0][t], ..., in[kIn - 1][t])[k] (+ add when kAdd) for t < count: one
// of the transforms above along count tiles or filters, one vector of them at a time.
template <auto kTransform, bool kAdd = false, int kIn, int kOut, class T>
void transform_pass(const T* const (&in)[kIn], T* const (&out)[kOut], int64_t count,
                    T add = T(0)) {
  KILN_INDEPENDENT_ITERATIONS
  for (int64_t t = 0; t < count; ++t) {
    T a[kIn], r[kOut];
    for (int i = 0; i < kIn; ++i) a[i] = in[i][t];
    kTransform(a, r);
    for (int k = 0; k < kOut; ++k) out[k][t] = kAdd ? r[k] + add : r[k];
  }
}

// The two-dimensional transforms of F(4x4, 3x3) run as passes over blocks of this many tiles,
// columns first into a stage, then rows.
constexpr int64_t kPassBlock = 64;

// For count tiles (or filters), each a kIn x kIn matrix X whose element (i, j) is in[kIn i + j][t]:
// out[kOut i + j][t] = (K X K^T)[i][j] (+ add when kAdd), where K is the kOut x kIn matrix of the
// one-dimensional transform kTransform. K X (each column) goes into a stage, then (K X) K^T (each
// row) into out.
template <auto kTransform, int kIn, int kOut, bool kAdd = false, class T>
void transform_tiles(const T* const (&in)[kIn * kIn], T* const (&out)[kOut * kOut], int64_t count,
                     T add = T(0)) {
  alignas(64) T stage[kOut * kIn][kPassBlock];  // stage[kIn i + j] = (K X)[i][j]
  for (int64_t t0 = 0; t0 < count; t0 += kPassBlock) {
    const int64_t n = std::min(kPassBlock, count - t0);
    for (int j = 0; j < kIn; ++j) {  // K X, column j
      const T* column[kIn];
      T* result[kOut];
      for (int i = 0; i < kIn; ++i) column[i] = in[kIn * i + j] + t0;
      for (int i = 0; i < kOut; ++i) result[i] = stage[kIn * i + j];
      transform_pass<kTransform>(column, result, n);
    }
    for (int i = 0; i < kOut; ++i) {  // (K X) K^T, row i
      const T* row[kIn];
      T* result[kOut];
      for (int j = 0; j < kIn; ++j) row[j] = stage[kIn * i + j];
      for (int j = 0; j < kOut; ++j) result[j] = out[kOut * i + j] + t0;
      transform_pass<kTransform, kAdd>(row, result, n, add);
    }
  }
}

// Filters are transformed in batches of this many: their taps are first copied into a [9][batch]
// stage, so that the arithmetic runs along contiguous rows and vectorizes (read in place, the
// taps of consecutive filters lie 9 or more elements apart).
constexpr int64_t kFilterBatch = 64;

// u[xi][k] = (G f_k G^T)[xi] for the 3x3 filters f_k at f + k f_stride (rotated by 180 degrees when
// kRotate), k < count. For F(2x2, 3x3), G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
//
// F(2x2, 3x3)'s rows are summed as (f0 + f2) + f1 and (f0 + f2) - f1, which read the same with f0
// and f2 swapped. Rotating f by 180 degrees reverses the order of its rows and of its columns, and
// G J = P G, where J reverses three entries and P swaps the first and last of four; so the rotated
// filter's transform is this one's with its rows and columns permuted by P, to the bit, and
// grad_input reads the forward's U instead of transforming again (see winograd_rotated_point).
template <int kM, bool kRotate, class T>
void winograd_filter_row(const T* __restrict f, int64_t f_stride, int64_t count,
                         T* __restrict u, int64_t xi_stride) {
  const T h = T(0.5);
  alignas(64) T s[9][kFilterBatch];  // s[3 i + j][k] = f_{k0 + k}[i][j]
  for (int64_t k0 = 0; k0 < count; k0 += kFilterBatch) {
    const int64_t nk = std::min(kFilterBatch, count - k0);
    int64_t staged = 0;
#ifdef __AVX512F__
    // Tap q of 16 filters, f_stride apart, in one gather, where GCC copied one element at a time
    // (2x128x8x8 -> 128 forward at 1 thread: 289 to 271 us). (The masked form: the plain one
    // starts from an undefined vector, which GCC 12 warns of.)
    if constexpr (std::is_same_v<T, float>) {
      const __m512i apart = _mm512_mullo_epi32(
          _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
          _mm512_set1_epi32(static_cast<int32_t>(f_stride)));
      for (; staged + 16 <= nk; staged += 16)
        for (int q = 0; q < 9; ++q) {
          const T* src = f + (k0 + staged) * f_stride + (kRotate ? 8 - q : q);
          _mm512_store_ps(&s[q][staged], _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF,
                                                                  apart, src, 4));
        }
    }
#endif
    for (int q = 0; q < 9; ++q) {
      const T* src = f + k0 * f_stride + (kRotate ? 8 - q : q);
      for (int64_t k = staged; k < nk; ++k) s[q][k] = src[k * f_stride];
    }
    T* uk = u + k0;
    if constexpr (kM == 2) {
      KILN_INDEPENDENT_ITERATIONS
      for (int64_t k = 0; k < nk; ++k) {
        // t = G f: rows f0, ((f0 + f2) + f1) / 2, ((f0 + f2) - f1) / 2, f2
        T t[4][3];
        for (int j = 0; j < 3; ++j) {
          const T outer = s[j][k] + s[6 + j][k];
          t[0][j] = s[j][k];
          t[1][j] = h * (outer + s[3 + j][k]);
          t[2][j] = h * (outer - s[3 + j][k]);
          t[3][j] = s[6 + j][k];
        }
        for (int a = 0; a < 4; ++a) {  // t G^T, likewise on columns
          const T outer = t[a][0] + t[a][2];
          uk[(4 * a + 0) * xi_stride + k] = t[a][0];
          uk[(4 * a + 1) * xi_stride + k] = h * (outer + t[a][1]);
          uk[(4 * a + 2) * xi_stride + k] = h * (outer - t[a][1]);
          uk[(4 * a + 3) * xi_stride + k] = t[a][2];
        }
      }
    } else {  // G f G^T
      const T* in[9];
      T* out[36];
      for (int q = 0; q < 9; ++q) in[q] = s[q];
      for (int q = 0; q < 36; ++q) out[q] = uk + q * xi_stride;
      transform_tiles<Winograd4<T>::filter, 3, 6>(in, out, nk);
    }
  }
}

// The filters in the Winograd domain, U[xi][row][col] with planes winograd_plane(rows, cols): for
// forward, rows o < C_out and cols c < C/G from w[o, c]; for grad_input (F(4x4, 3x3) only, see
// winograd_filter_row), rows c < C and cols o < C_out/G (within c's group) from w[o, c] rotated by
// 180 degrees. Written to U, which holds winograd_filter_elems(g).
int64_t winograd_filter_elems(const ConvGeometry& g) {
  return winograd_points(g.winograd_m) * winograd_plane(g.C_out, g.C_g);
}

template <int kM, bool kForGradInput, class T>
void winograd_filters_into(const ConvGeometry& g, const T* w, T* U) {
  static_assert(kM == 4 || !kForGradInput,
                "F(2x2, 3x3)'s grad_input reads the forward's filters (see winograd_rotated_point)");
  const int64_t rows = kForGradInput ? g.C : g.C_out, cols = kForGradInput ? g.C_out_g : g.C_g;
  const int64_t xi_stride = winograd_plane(rows, cols);
  parallel_for(0, rows, grain_for(cols * 64, 1 << 16), [&](int64_t r0, int64_t r1) {
    if constexpr (kForGradInput) {
      // A chunk of grad_input rows (input channels c) reads the taps of those channels from all
      // C_out/G filters of their group, C/G x 9 elements apart: too far apart for the hardware
      // prefetchers, and the weights have mostly left this core's cache since Adam wrote them.
      // Asking for every line the chunk will read, before it starts, lets those misses overlap
      // instead of coming one by one. (The forward's rows are whole filters, read in order, which
      // the hardware prefetches itself.)
      for (int64_t row = r0; row < r1;) {
        const int64_t grp = row / g.C_g, c = row - grp * g.C_g;
        const int64_t c_end = std::min(g.C_g, c + (r1 - row));
        for (int64_t o = 0; o < g.C_out_g; ++o) {
          const T* filters = w + (grp * g.C_out_g + o) * g.C_g * 9;
          prefetch_lines(reinterpret_cast<uintptr_t>(filters + c * 9),
                         reinterpret_cast<uintptr_t>(filters + c_end * 9));
        }
        row += c_end - c;
      }
    }
    for (int64_t row = r0; row < r1; ++row) {
      if constexpr (kForGradInput) {
        const int64_t grp = row / g.C_g, c = row - grp * g.C_g;
        winograd_filter_row<kM, true>(w + (grp * g.C_out_g * g.C_g + c) * 9, g.C_g * 9, cols,
                                      U + row * cols, xi_stride);
      } else {
        winograd_filter_row<kM, false>(w + row * g.C_g * 9, 9, cols, U + row * cols, xi_stride);
      }
    }
  });
}

// The same into a buffer of the call's own.
template <int kM, bool kForGradInput, class T>
CallBuffer<T> winograd_filters(const ConvGeometry& g, const T* w) {
  CallBuffer<T> U = call_buffer<T>(winograd_filter_elems(g));
  winograd_filters_into<kM, kForGradInput>(g, w, U.get());
  return U;
}

// F(2x2, 3x3)'s transform of a filter rotated by 180 degrees, at point xi = 4 a + b, is the
// unrotated transform's at 4 P(a) + P(b), P swapping 0 and 3 (see winograd_filter_row).
constexpr int64_t winograd_rotated_point(int64_t xi) {
  constexpr int64_t P[4] = {3, 1, 2, 0};
  return 4 * P[xi / 4] + P[xi % 4];
}

// The forward's transformed filters U, kept for F(2x2, 3x3)'s grad_input, which would otherwise
// transform the weights again. Kept only while small, like V: 128 channels in and out at most.
constexpr int64_t kSavedFilterMaxElems = int64_t{1} << 20;

// What the forward keeps for the backward, in one tensor: V (input_elems, laid out as
// saved_input_slot says), then U (filter_elems, laid out as winograd_filters writes it for the
// forward). Either may be left out (0); with both left out, nothing is kept.
struct SavedLayout {
  int64_t input_elems = 0, filter_elems = 0;
  int64_t total() const { return input_elems + filter_elems; }
};

SavedLayout saved_layout(const ConvGeometry& g) {
  SavedLayout layout;
  if (!g.winograd) return layout;
  if (const int64_t v = saved_input_elems(g); v <= kSavedInputMaxElems) layout.input_elems = v;
  if (const int64_t u = winograd_filter_elems(g); g.winograd_m == 2 && u <= kSavedFilterMaxElems)
    layout.filter_elems = u;
  return layout;
}

// even[k] = src[2k], odd[k] = src[2k + 1] for k < pairs (rows that do not overlap).
template <class T>
void split_pairs(const T* __restrict src, T* __restrict even, T* __restrict odd, int64_t pairs) {
  for (int64_t k = 0; k < pairs; ++k) {
    even[k] = src[2 * k];
    odd[k] = src[2 * k + 1];
  }
}
// dst[2k] = even[k], dst[2k + 1] = odd[k] for k < pairs.
template <class T>
void merge_pairs(const T* __restrict even, const T* __restrict odd, T* __restrict dst,
                 int64_t pairs) {
  for (int64_t k = 0; k < pairs; ++k) {
    dst[2 * k] = even[k];
    dst[2 * k + 1] = odd[k];
  }
}

// Splits a row of W elements into kM phases of len elements each, phase k at P + k len:
// P[k len + j] = row[kM j + k - shift], or 0 where that index lies outside [0, W).
template <int kM, class T>
void split_phases(const T* __restrict row, int64_t W, int64_t shift, int64_t len,
                  T* __restrict P) {
  if constexpr (kM == 2) {
    if (shift == 1) {  // E[k] = row[2k - 1], O[k] = row[2k]
      T *E = P, *O = P + len;
      E[0] = T(0);
      split_pairs(row, O, E + 1, W / 2);
      if (W % 2) O[W / 2] = row[W - 1];
      std::fill(E + 1 + W / 2, E + len, T(0));
      std::fill(O + (W + 1) / 2, O + len, T(0));
      return;
    }
    if (shift == 0) {  // E[k] = row[2k], O[k] = row[2k + 1]
      T *E = P, *O = P + len;
      split_pairs(row, E, O, W / 2);
      if (W % 2) E[W / 2] = row[W - 1];
      std::fill(E + (W + 1) / 2, E + len, T(0));
      std::fill(O + W / 2, O + len, T(0));
      return;
    }
  }
  // Element kM q + i of the row goes to phase k = (i + shift) mod kM, at j = q + (i + shift) / kM:
  // the whole groups of kM in one pass that vectorizes, then the rest one by one.
  std::fill(P, P + kM * len, T(0));
  T* dst[kM];
  for (int64_t i = 0; i < kM; ++i) {
    const int64_t k = (i + shift) % kM;
    dst[i] = P + k * len + (i + shift) / kM;
  }
  const int64_t groups = std::min(W / kM, len - shift);
  KILN_INDEPENDENT_ITERATIONS
  for (int64_t q = 0; q < groups; ++q)
    for (int64_t i = 0; i < kM; ++i) dst[i][q] = row[kM * q + i];
  for (int64_t e = kM * groups; e < W; ++e) {
    const int64_t k = (e + shift) % kM, j = (e + shift) / kM;
    if (j < len) P[k * len + j] = row[e];
  }
}

// The inverse for output rows: row[kM j + k] = P[k len + j] for the indices inside [0, W).
template <int kM, class T>
void merge_phases(const T* __restrict P, int64_t len, int64_t W, T* __restrict row) {
  if constexpr (kM == 2) {
    merge_pairs(P, P + len, row, W / 2);
    if (W % 2) row[W - 1] = P[W / 2];
  } else {
    for (int64_t k = 0; k < kM && k < W; ++k) {
      const T* p = P + k * len;
      const int64_t end = (W - k - 1) / kM + 1;
      for (int64_t j = 0; j < end; ++j) row[kM * j + k] = p[j];
    }
  }
}

// The input transform of count tiles: tile t's patch element (a, b) is d[alpha a + b][t], and
// v[xi][t] = (B^T d B)[xi]. For F(2x2, 3x3), B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
template <class T>
void winograd_input_tiles(const T* const (&d)[16], int64_t count, T* __restrict v,
                          int64_t xi_stride) {
  const T *d00 = d[0], *d01 = d[1], *d02 = d[2], *d03 = d[3], *d10 = d[4], *d11 = d[5];
  const T *d12 = d[6], *d13 = d[7], *d20 = d[8], *d21 = d[9], *d22 = d[10], *d23 = d[11];
  const T *d30 = d[12], *d31 = d[13], *d32 = d[14], *d33 = d[15];
  KILN_INDEPENDENT_ITERATIONS
  for (int64_t t = 0; t < count; ++t) {
    // rows of B^T d: t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3 (each over b = 0..3)
    const T t00 = d00[t] - d20[t], t01 = d01[t] - d21[t];
    const T t02 = d02[t] - d22[t], t03 = d03[t] - d23[t];
    const T t10 = d10[t] + d20[t], t11 = d11[t] + d21[t];
    const T t12 = d12[t] + d22[t], t13 = d13[t] + d23[t];
    const T t20 = d20[t] - d10[t], t21 = d21[t] - d11[t];
    const T t22 = d22[t] - d12[t], t23 = d23[t] - d13[t];
    const T t30 = d10[t] - d30[t], t31 = d11[t] - d31[t];
    const T t32 = d12[t] - d32[t], t33 = d13[t] - d33[t];
    // (B^T d) B, row a: (ta0 - ta2, ta1 + ta2, ta2 - ta1, ta1 - ta3)
    v[0 * xi_stride + t] = t00 - t02;
    v[1 * xi_stride + t] = t01 + t02;
    v[2 * xi_stride + t] = t02 - t01;
    v[3 * xi_stride + t] = t01 - t03;
    v[4 * xi_stride + t] = t10 - t12;
    v[5 * xi_stride + t] = t11 + t12;
    v[6 * xi_stride + t] = t12 - t11;
    v[7 * xi_stride + t] = t11 - t13;
    v[8 * xi_stride + t] = t20 - t22;
    v[9 * xi_stride + t] = t21 + t22;
    v[10 * xi_stride + t] = t22 - t21;
    v[11 * xi_stride + t] = t21 - t23;
    v[12 * xi_stride + t] = t30 - t32;
    v[13 * xi_stride + t] = t31 + t32;
    v[14 * xi_stride + t] = t32 - t31;
    v[15 * xi_stride + t] = t31 - t33;
  }
}
template <class T>
void winograd_input_tiles(const T* const (&d)[36], int64_t count, T* __restrict v,
                          int64_t xi_stride) {
  T* out[36];
  for (int q = 0; q < 36; ++q) out[q] = v + q * xi_stride;
  transform_tiles<Winograd4<T>::input, 6, 6>(d, out, count);
}

// Tile rows of at most this many tiles are transformed by gathering (winograd_input_short): the
// staging of each short row would cost more than the transform.
constexpr int64_t kShortTileRow = 4;

// winograd_input for short tile rows. The position of tile t's patch element (a, b) inside a
// channel plane, offsets[(alpha a + b) tiles + t] = n Ct H W + h W + w at h = kM ty - 1 + a and
// w = kM tx - 1 + b (or -1 in the padding), is the same for all channels: it is found once, and
// each channel gathers its patches with it into d [alpha^2][tiles], transformed in one pass over
// the tiles.
template <int kM, class T>
void winograd_input_short(const T* in, int64_t Ct, int64_t H, int64_t W, const WinogradTiles& wt,
                          int64_t c0, int64_t nc, int64_t r0, int64_t r1, T* V) {
  constexpr int kAlpha = kM + 2, kPoints = kWinogradPoints<kM>;
  const int64_t TX = wt.TX, tiles = (r1 - r0) * TX, xi_stride = winograd_plane(nc, tiles);
  int64_t* offsets = scratch<int64_t>(kOffsets, kPoints * tiles);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / wt.TY, ty = r - n * wt.TY;
    for (int64_t a = 0; a < kAlpha; ++a) {
      const int64_t h = kM * ty - 1 + a;
      for (int64_t b = 0; b < kAlpha; ++b) {
        int64_t* o = offsets + (kAlpha * a + b) * tiles + (r - r0) * TX;
        for (int64_t tx = 0; tx < TX; ++tx) {
          const int64_t w = kM * tx - 1 + b;
          const bool inside = h >= 0 && h < H && w >= 0 && w < W;
          o[tx] = inside ? n * Ct * H * W + h * W + w : -1;
        }
      }
    }
  }
  T* stage = scratch<T>(kStage, kPoints * tiles);
  const T* d[kPoints];
  for (int q = 0; q < kPoints; ++q) d[q] = stage + q * tiles;
  for (int64_t c = 0; c < nc; ++c) {
    gather_or_zero(in + (c0 + c) * H * W, offsets, kPoints * tiles, stage);
    winograd_input_tiles(d, tiles, V + c * tiles, xi_stride);
  }
}

// V[xi][c][(r - r0) TX + tx] = (B^T d B)[xi] for channels [c0, c0 + nc) of in [N, Ct, H, W] and
// tile rows [r0, r1), where d is the alpha x alpha patch at rows kM ty - 1.. and columns
// kM tx - 1.. (zero padded by 1).
template <int kM, class T>
void winograd_input(const T* in, int64_t Ct, int64_t H, int64_t W, const WinogradTiles& wt,
                    int64_t c0, int64_t nc, int64_t r0, int64_t r1, T* V) {
  if (wt.TX <= kShortTileRow)
    return winograd_input_short<kM>(in, Ct, H, W, wt, c0, nc, r0, r1, V);
  constexpr int kAlpha = kM + 2;
  const int64_t TX = wt.TX, tiles = (r1 - r0) * TX, xi_stride = winograd_plane(nc, tiles);
  // Each image row splits into kM phases, P_k[j] = row[kM j + k - 1], so tile tx of a patch row
  // reads P_0[tx] .. P_{kM-1}[tx], P_0[tx + 1], P_1[tx + 1], all contiguous in tx. Neighbouring
  // tile rows share two patch rows, so the image rows a run of tile rows (in one image) needs are
  // split once each into a stage that the tile rows point into.
  const int64_t len = TX + 1, row_len = kM * len;
  T* stage = scratch<T>(kStage, (kM * wt.TY + 2) * row_len);
  for (int64_t c = 0; c < nc; ++c) {
    for (int64_t r_first = r0; r_first < r1;) {
      // tile rows [r_first, r_last) of image n, which need image rows [h0, h0 + rows)
      const int64_t n = r_first / wt.TY, ty0 = r_first - n * wt.TY;
      const int64_t r_last = std::min(r1, (n + 1) * wt.TY);
      const int64_t h0 = kM * ty0 - 1, rows = kM * (r_last - r_first) + 2;
      const T* plane = in + (n * Ct + c0 + c) * H * W;
      for (int64_t i = 0; i < rows; ++i) {
        T* P = stage + i * row_len;
        const int64_t h = h0 + i;
        if (h < 0 || h >= H) std::fill(P, P + row_len, T(0));
        else split_phases<kM>(plane + h * W, W, 1, len, P);
      }
      for (int64_t r = r_first; r < r_last; ++r) {
        const T* d[kAlpha * kAlpha];
        for (int64_t a = 0; a < kAlpha; ++a) {
          const T* P = stage + (kM * (r - r_first) + a) * row_len;
          for (int64_t b = 0; b < kAlpha; ++b) d[kAlpha * a + b] = P + (b % kM) * len + b / kM;
        }
        winograd_input_tiles(d, TX, V + c * tiles + (r - r0) * TX, xi_stride);
      }
      r_first = r_last;
    }
  }
}

// The output transform of count tiles: for tile t, m[xi] = M[xi][t] (planes xi_stride apart), and
// pixel (i, j) of its kM x kM block, y[kM i + j][t] = (A^T m A)[i][j] + b. For F(2x2, 3x3),
// A^T = [1 1 1 0; 0 1 -1 -1].
template <class T>
void winograd_output_tiles(const T* __restrict m, int64_t xi_stride, int64_t count, T b,
                           T* const (&y)[4]) {
  T *y00 = y[0], *y01 = y[1], *y10 = y[2], *y11 = y[3];
  const int64_t xs = xi_stride;
  const T *m0 = m, *m1 = m + xs, *m2 = m + 2 * xs, *m3 = m + 3 * xs;
  const T *m4 = m + 4 * xs, *m5 = m + 5 * xs, *m6 = m + 6 * xs, *m7 = m + 7 * xs;
  const T *m8 = m + 8 * xs, *m9 = m + 9 * xs, *m10 = m + 10 * xs, *m11 = m + 11 * xs;
  const T *m12 = m + 12 * xs, *m13 = m + 13 * xs, *m14 = m + 14 * xs, *m15 = m + 15 * xs;
  KILN_INDEPENDENT_ITERATIONS
  for (int64_t t = 0; t < count; ++t) {
    // A^T m: t0j = m0j + m1j + m2j, t1j = m1j - m2j - m3j (m_ab = m[4 a + b])
    const T t00 = m0[t] + m4[t] + m8[t], t01 = m1[t] + m5[t] + m9[t];
    const T t02 = m2[t] + m6[t] + m10[t], t03 = m3[t] + m7[t] + m11[t];
    const T t10 = m4[t] - m8[t] - m12[t], t11 = m5[t] - m9[t] - m13[t];
    const T t12 = m6[t] - m10[t] - m14[t], t13 = m7[t] - m11[t] - m15[t];
    // (A^T m) A: (ti0 + ti1 + ti2, ti1 - ti2 - ti3)
    y00[t] = t00 + t01 + t02 + b;
    y01[t] = t01 - t02 - t03 + b;
    y10[t] = t10 + t11 + t12 + b;
    y11[t] = t11 - t12 - t13 + b;
  }
}
template <class T>
void winograd_output_tiles(const T* __restrict m, int64_t xi_stride, int64_t count, T b,
                           T* const (&y)[16]) {
  const T* in[36];
  for (int q = 0; q < 36; ++q) in[q] = m + q * xi_stride;
  transform_tiles<Winograd4<T>::output, 6, 4, true>(in, y, count, b);
}

// The position of pixel (i, j) of tile t's kM x kM block inside a channel plane of a tensor
// [N, Ct, H, W], offsets[(kM i + j) tiles + t] = n Ct H W + h W + w at h = kM ty + i,
// w = kM tx + j (or -1 past the image edge), for the tiles of tile rows [r0, r1).
template <int kM>
void winograd_pixel_offsets(const WinogradTiles& wt, int64_t Ct, int64_t H, int64_t W,
                            int64_t r0, int64_t r1, int64_t* offsets) {
  const int64_t TX = wt.TX, tiles = (r1 - r0) * TX;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / wt.TY, ty = r - n * wt.TY;
    for (int64_t q = 0; q < kM * kM; ++q) {
      const int64_t h = kM * ty + q / kM;
      int64_t* o = offsets + q * tiles + (r - r0) * TX;
      for (int64_t tx = 0; tx < TX; ++tx) {
        const int64_t w = kM * tx + q % kM;
        o[tx] = h < H && w < W ? n * Ct * H * W + h * W + w : -1;
      }
    }
  }
}

// out[n, o0 + o, kM ty + i, kM tx + j] = (A^T m A)[i][j] + bias[o] for the tile pixels inside
// the image, where m[xi] = M[xi][o][(r - r0) TX + tx].
template <int kM, class T>
void winograd_output(const T* M, int64_t no, const WinogradTiles& wt, int64_t r0, int64_t r1,
                     T* out, int64_t Ct, int64_t H, int64_t W, int64_t o0, const T* bias) {
  constexpr int kPixels = kM * kM;
  const int64_t TX = wt.TX, tiles = (r1 - r0) * TX, xi_stride = winograd_plane(no, tiles);
  if (TX <= kShortTileRow) {
    // Short rows: the whole block at once into y [kM^2][tiles], then scattered through offsets.
    int64_t* offsets = scratch<int64_t>(kOffsets, kPixels * tiles);
    winograd_pixel_offsets<kM>(wt, Ct, H, W, r0, r1, offsets);
    T* stage = scratch<T>(kStage, kPixels * tiles);
    T* y[kPixels];
    for (int q = 0; q < kPixels; ++q) y[q] = stage + q * tiles;
    for (int64_t o = 0; o < no; ++o) {
      winograd_output_tiles(M + o * tiles, xi_stride, tiles, bias ? bias[o] : T(0), y);
      T* plane = out + (o0 + o) * H * W;
      for (int64_t q = 0; q < kPixels * tiles; ++q)
        if (offsets[q] >= 0) plane[offsets[q]] = stage[q];
    }
    return;
  }
  // The kM output rows of a tile row, each as kM phases: y[kM i + j][tx] is pixel
  // (kM ty + i, kM tx + j).
  T* stage = scratch<T>(kStage, kPixels * TX);
  T* y[kPixels];
  for (int q = 0; q < kPixels; ++q) y[q] = stage + q * TX;
  for (int64_t o = 0; o < no; ++o) {
    const T b = bias ? bias[o] : T(0);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / wt.TY, ty = r - n * wt.TY;
      winograd_output_tiles(M + o * tiles + (r - r0) * TX, xi_stride, TX, b, y);
      for (int64_t i = 0; i < kM && kM * ty + i < H; ++i)
        merge_phases<kM>(y[kM * i], TX, W, out + ((n * Ct + o0 + o) * H + kM * ty + i) * W);
    }
  }
}

// The grad_output transform of count tiles: with dy[kM i + j][t] pixel (i, j) of tile t's
// kM x kM block of dY, d[xi][t] = (A dy A^T)[xi].
template <class T>
void winograd_grad_output_tiles(const T* const (&dy)[4], int64_t count, T* __restrict d,
                                int64_t xi_stride) {
  const T *Y0e = dy[0], *Y0o = dy[1], *Y1e = dy[2], *Y1o = dy[3];
  KILN_INDEPENDENT_ITERATIONS
  for (int64_t tx = 0; tx < count; ++tx) {
    // A dy, column j: (y0j, y0j + y1j, y0j - y1j, -y1j)
    const T u00 = Y0e[tx], u01 = Y0o[tx];
    const T u10 = Y0e[tx] + Y1e[tx], u11 = Y0o[tx] + Y1o[tx];
    const T u20 = Y0e[tx] - Y1e[tx], u21 = Y0o[tx] - Y1o[tx];
    const T u30 = -Y1e[tx], u31 = -Y1o[tx];
    // (A dy) A^T, row a: (ua0, ua0 + ua1, ua0 - ua1, -ua1)
    d[0 * xi_stride + tx] = u00;
    d[1 * xi_stride + tx] = u00 + u01;
    d[2 * xi_stride + tx] = u00 - u01;
    d[3 * xi_stride + tx] = -u01;
    d[4 * xi_stride + tx] = u10;
    d[5 * xi_stride + tx] = u10 + u11;
    d[6 * xi_stride + tx] = u10 - u11;
    d[7 * xi_stride + tx] = -u11;
    d[8 * xi_stride + tx] = u20;
    d[9 * xi_stride + tx] = u20 + u21;
    d[10 * xi_stride + tx] = u20 - u21;
    d[11 * xi_stride + tx] = -u21;
    d[12 * xi_stride + tx] = u30;
    d[13 * xi_stride + tx] = u30 + u31;
    d[14 * xi_stride + tx] = u30 - u31;
    d[15 * xi_stride + tx] = -u31;
  }
}
template <class T>
void winograd_grad_output_tiles(const T* const (&dy)[16], int64_t count, T* __restrict d,
                                int64_t xi_stride) {
  T* out[36];
  for (int q = 0; q < 36; ++q) out[q] = d + q * xi_stride;
  transform_tiles<Winograd4<T>::grad_output, 4, 6>(dy, out, count);
}

// D[xi][o][(r - r0) TX + tx] = (A dy A^T)[xi] for channels [o0, o0 + no) of gy [N, Ct, H, W]
// (H, W = OH, OW), where dy is the tile's kM x kM block of gy (zero past the edge). For
// F(2x2, 3x3), A = [1 0; 1 1; 1 -1; 0 -1].
template <int kM, class T>
void winograd_grad_output(const T* gy, int64_t Ct, int64_t H, int64_t W, const WinogradTiles& wt,
                          int64_t o0, int64_t no, int64_t r0, int64_t r1, T* D) {
  constexpr int kPixels = kM * kM;
  const int64_t TX = wt.TX, tiles = (r1 - r0) * TX, xi_stride = winograd_plane(no, tiles);
  if (TX <= kShortTileRow) {
    // Short rows: the block's kM x kM blocks gathered at once through offsets into
    // dy [kM^2][tiles].
    int64_t* offsets = scratch<int64_t>(kOffsets, kPixels * tiles);
    winograd_pixel_offsets<kM>(wt, Ct, H, W, r0, r1, offsets);
    T* stage = scratch<T>(kStage, kPixels * tiles);
    const T* dy[kPixels];
    for (int q = 0; q < kPixels; ++q) dy[q] = stage + q * tiles;
    for (int64_t o = 0; o < no; ++o) {
      gather_or_zero(gy + (o0 + o) * H * W, offsets, kPixels * tiles, stage);
      winograd_grad_output_tiles(dy, tiles, D + o * tiles, xi_stride);
    }
    return;
  }
  // The kM rows of a tile row, each split into kM phases: dy[kM i + j][tx] = gy at
  // (kM ty + i, kM tx + j).
  T* stage = scratch<T>(kStage, kPixels * TX);
  const T* dy[kPixels];
  for (int q = 0; q < kPixels; ++q) dy[q] = stage + q * TX;
  for (int64_t o = 0; o < no; ++o) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / wt.TY, ty = r - n * wt.TY;
      for (int64_t i = 0; i < kM; ++i) {
        T* P = stage + kM * i * TX;
        const int64_t h = kM * ty + i;
        if (h >= H) std::fill(P, P + kM * TX, T(0));
        else split_phases<kM>(gy + ((n * Ct + o0 + o) * H + h) * W, W, 0, TX, P);
      }
      winograd_grad_output_tiles(dy, TX, D + o * tiles + (r - r0) * TX, xi_stride);
    }
  }
}

// dw[o, c] = G^T dU[o, c] G (3x3 from alpha x alpha), for dU[xi][o][c] of [alpha^2][no][nc]; dw
// points at w[o0, c0] with rows of K_g. A batch of filters is computed along c (contiguous in dU)
// into a [9][batch] stage, then copied out filter by filter.
template <int kM, class T>
void winograd_filter_grad(const T* __restrict dU, int64_t no, int64_t nc, T* __restrict dw,
                          int64_t K_g) {
  const T h = T(0.5);
  const int64_t xi_stride = winograd_plane(no, nc);
  alignas(64) T f[9][kFilterBatch];  // f[3 i + j][k] = dw[o, c0 + k][i][j]
  for (int64_t o = 0; o < no; ++o)
    for (int64_t c0 = 0; c0 < nc; c0 += kFilterBatch) {
      const int64_t nk = std::min(kFilterBatch, nc - c0);
      const T* du = dU + o * nc + c0;
      if constexpr (kM == 2) {
        KILN_INDEPENDENT_ITERATIONS
        for (int64_t k = 0; k < nk; ++k) {
          T u[4][4], s[3][4];
          for (int xi = 0; xi < 16; ++xi) u[xi / 4][xi % 4] = du[xi * xi_stride + k];
          for (int b = 0; b < 4; ++b) {  // s = G^T u
            s[0][b] = u[0][b] + h * (u[1][b] + u[2][b]);
            s[1][b] = h * (u[1][b] - u[2][b]);
            s[2][b] = h * (u[1][b] + u[2][b]) + u[3][b];
          }
          for (int i = 0; i < 3; ++i) {  // s G
            f[i * 3 + 0][k] = s[i][0] + h * (s[i][1] + s[i][2]);
            f[i * 3 + 1][k] = h * (s[i][1] - s[i][2]);
            f[i * 3 + 2][k] = h * (s[i][1] + s[i][2]) + s[i][3];
          }
        }
      } else {  // G^T u G
        const T* in[36];
        T* out[9];
        for (int q = 0; q < 36; ++q) in[q] = du + q * xi_stride;
        for (int q = 0; q < 9; ++q) out[q] = f[q];
        transform_tiles<Winograd4<T>::filter_grad, 6, 3>(in, out, nk);
      }
      T* out = dw + o * K_g + c0 * 9;
      for (int64_t k = 0; k < nk; ++k)
        for (int q = 0; q < 9; ++q) out[k * 9 + q] = f[q][k];
    }
}
// ---- Forward kernel ----------------------------------------------------------------------------
// x [N, C, H, W], w [C_out, C/G, KH, KW], b [C_out] or null -> y [N, C_out, OH, OW], contiguous.
// Chunks are (group, tile, block of output channels); each writes its own part of y. A Winograd
// tile block is a range of tile rows; otherwise RowTiles.
// saved_V and saved_U, when not null, receive V and U for the backward (see SavedLayout).
template <int kM, class T>
void forward_winograd(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y,
                      T* saved_V, T* saved_U) {
  constexpr int kPoints = kWinogradPoints<kM>;
  const WinogradTiles wt = winograd_tiles(g);
  const int64_t o_size = split_block(g.C_out_g, g.G * wt.blocks);
  const int64_t o_blocks = ceil_div(g.C_out_g, o_size);
  const CallBuffer<T> own_U =
      saved_U ? nullptr : winograd_filters<kM, /*kForGradInput=*/false>(g, w);
  if (saved_U) winograd_filters_into<kM, /*kForGradInput=*/false>(g, w, saved_U);
  const T* U = saved_U ? saved_U : own_U.get();
  parallel_for(0, g.G * wt.blocks * o_blocks, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t ob = k % o_blocks, blk = k / o_blocks % wt.blocks;
      const int64_t grp = k / o_blocks / wt.blocks;
      const auto [r0, r1] = wt.block(blk);
      const int64_t tiles = (r1 - r0) * wt.TX;
      const int64_t o0 = grp * g.C_out_g + ob * o_size;
      const int64_t no = std::min(o_size, g.C_out_g - ob * o_size);
      // V = B^T d B for the group's input channels, M[xi] = U[xi][o-block] V[xi], y = A^T M A + b
      const int64_t u_plane = winograd_plane(g.C_out, g.C_g);
      const int64_t v_plane = winograd_plane(g.C_g, tiles), m_plane = winograd_plane(no, tiles);
      // With output channels split, each block of them transforms the same input; the first
      // keeps it, and the others, which may run at the same time, never read the kept copy.
      T* V = saved_V && ob == 0 ? saved_V + (grp * wt.blocks + blk) * saved_input_slot(g, wt)
                                : scratch<T>(kCols, kPoints * v_plane);
      winograd_input<kM>(x, g.C, g.H, g.W, wt, grp * g.C_g, g.C_g, r0, r1, V);
      T* M = scratch<T>(kPacked, kPoints * m_plane);
      for (int64_t xi = 0; xi < kPoints; ++xi)
        gemm_serial<T>(false, false, no, tiles, g.C_g, T(1), U + xi * u_plane + o0 * g.C_g, g.C_g,
                       V + xi * v_plane, tiles, T(0), M + xi * m_plane, tiles);
      winograd_output<kM>(M, no, wt, r0, r1, y, g.C_out, g.OH, g.OW, o0, b ? b + o0 : nullptr);
    }
  });
}

template <class T>
void forward_kernel(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y,
                    T* saved_V = nullptr, T* saved_U = nullptr) {
  if (g.winograd)
    return with_tile_size(g.winograd_m, [&]<int kM>() {
      forward_winograd<kM>(g, x, w, b, y, saved_V, saved_U);
    });
  const RowTiles tiles(g.N, g.OH, g.OW, tile_pixels(g.K_g));
  const int64_t o_size = split_block(g.C_out_g, g.G * tiles.count);
  const int64_t o_blocks = ceil_div(g.C_out_g, o_size);

  // When the output channels are split, the tiles are few (fewer than kMinChunks per group) and
  // each would be lowered once per block of output channels: they are lowered once instead, into
  // shared_cols, by a first loop whose chunks are (group, tile, block of input channels). Not
  // when that loop would be a single chunk (one tile of a few channels, as in a first layer on
  // RGB): then the blocks lowering their own copy in parallel finish sooner.
  // Tile (grp, t) starts at (grp tiles.count + t) tile_stride.
  const int64_t c_size = split_block(g.C_g, g.G * tiles.count);
  const int64_t c_blocks = ceil_div(g.C_g, c_size);
  const bool share_cols = !g.pointwise && o_blocks > 1 && g.G * tiles.count * c_blocks > 1;
  int64_t tile_stride = 0;
  for (int64_t t = 0; share_cols && t < tiles.count; ++t) {
    const auto [r0, r1] = tiles.rows(t);
    tile_stride = std::max(tile_stride, g.K_g * (r1 - r0) * g.OW);
  }
  const CallBuffer<T> shared_cols =
      share_cols ? call_buffer<T>(g.G * tiles.count * tile_stride) : nullptr;
  if (share_cols) {
    parallel_for(0, g.G * tiles.count * c_blocks, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t cb = k % c_blocks, tile = k / c_blocks;  // tile = grp tiles.count + t
        const int64_t grp = tile / tiles.count;
        const auto [r0, r1] = tiles.rows(tile % tiles.count);
        const int64_t c0 = grp * g.C_g + cb * c_size, c1 = std::min(c0 + c_size, (grp + 1) * g.C_g);
        im2col(g, x, c0, c1, r0, r1,
               shared_cols.get() + tile * tile_stride + cb * c_size * g.KK * (r1 - r0) * g.OW);
      }
    });
  }

  // Y[o-block, tile] = W_g[o-block] cols + bias
  auto im2col_chunk = [&](int64_t grp, int64_t t, int64_t r0, int64_t r1, int64_t o0,
                          int64_t no) {
    const int64_t pixels = (r1 - r0) * g.OW;
    const T* cols;
    int64_t ld_cols = pixels;
    if (g.pointwise) {
      cols = rows_matrix(x, g.C, g.OH, g.OW, grp * g.C_g, g.C_g, r0, r1, kCols, ld_cols);
    } else if (share_cols) {
      cols = shared_cols.get() + (grp * tiles.count + t) * tile_stride;
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
    // gemm_short_n adds into out, so it starts from the bias or zeros.
    const bool short_n = use_short_n<T>(pixels);
    if (b || short_n)
      for (int64_t o = 0; o < no; ++o)
        std::fill(out + o * ld_y, out + o * ld_y + pixels, b ? b[o0 + o] : T(0));
    if (short_n) {
#ifdef KILN_SMALL_PRODUCTS
      if constexpr (std::is_same_v<T, float>)
        gemm_short_n(no, pixels, g.K_g, w + o0 * g.K_g, g.K_g, cols, ld_cols, out, ld_y);
#endif
    } else {
      gemm_serial<T>(false, false, no, pixels, g.K_g, T(1), w + o0 * g.K_g, g.K_g, cols, ld_cols,
                     b ? T(1) : T(0), out, ld_y);
    }
    if (!direct) unpack_rows(out, y, g.C_out, g.OH, g.OW, o0, no, r0, r1);
  };

  parallel_for(0, g.G * tiles.count * o_blocks, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t ob = k % o_blocks, t = k / o_blocks % tiles.count;
      const int64_t grp = k / o_blocks / tiles.count;
      const auto [r0, r1] = tiles.rows(t);
      const int64_t o0 = grp * g.C_out_g + ob * o_size;
      const int64_t no = std::min(o_size, g.C_out_g - ob * o_size);
      im2col_chunk(grp, t, r0, r1, o0, no);
    }
  });
}

// ---- Backward kernel ---------------------------------------------------------------------------
// gy [N, C_out, OH, OW], x, w as in forward -> gx [N, C, H, W], gw [C_out, C/G, KH, KW],
// gb [C_out]; each may be null (not wanted). All contiguous. One parallel loop runs three kinds of
// chunk, each owning what it writes (see the decomposition at the top):
//   grad_weight (group, input-channel block, output-channel block, range of the batch);
//   grad_input, Winograd (group, tile block, input-channel block) or col2im (image block, group,
//   input-channel block);
//   grad_bias (block of output channels).
// saved_V and saved_U, when not null, are the forward's transformed input and filters (see
// SavedLayout).
template <class T>
void backward_kernel(const ConvGeometry& g, const T* gy, const T* x, const T* w, T* gx, T* gw,
                     T* gb, const T* saved_V = nullptr, const T* saved_U = nullptr) {
  const int64_t KK = g.KK;

  // grad_input: the Winograd path tiles rows like forward; the col2im path gives each chunk whole
  // images, since its scatter crosses row tiles.
  const WinogradTiles wt = g.winograd ? winograd_tiles(g) : WinogradTiles{};
  const int64_t col2im_block = channel_block(g.C_g, kBlockRows / KK);
  const RowTiles x_tiles(g.N, g.OH, g.OW, tile_pixels(col2im_block * KK));
  const int64_t cx_size = g.winograd ? split_block(g.C_g, g.G * wt.blocks) : col2im_block;
  const int64_t cx_blocks = ceil_div(g.C_g, cx_size);
  const int64_t x_chunks = !gx         ? 0
                           : g.winograd ? g.G * wt.blocks * cx_blocks
                                        : x_tiles.blocks * g.G * cx_blocks;
  // grad_input's filters. F(2x2, 3x3) reads the forward's U, kept or transformed again here, at
  // the rotated points and transposed; F(4x4, 3x3) transforms the rotated filters.
  const CallBuffer<T> own_U =
      !gx || !g.winograd || saved_U ? nullptr : with_tile_size(g.winograd_m, [&]<int kM>() {
        return winograd_filters<kM, /*kForGradInput=*/kM == 4>(g, w);
      });
  const T* U_grad = saved_U ? saved_U : own_U.get();

  // grad_weight: chunks (group, input-channel block, output-channel block, range of tiles). With
  // one range a chunk owns its block of dW; with several, each range sums into its own partial
  // copy of dW, and the partials are added in range order afterwards.
  // Winograd blocks are at most kWinogradFilterBlock channels square; the ranges split its tile
  // blocks.
  const int64_t cw_size = g.winograd ? channel_block(g.C_g, kWinogradFilterBlock)
                                     : channel_block(g.C_g, kWeightBlockRows / KK);
  const int64_t cw_blocks = ceil_div(g.C_g, cw_size);
  const RowTiles w_tiles(g.N, g.OH, g.OW, tile_pixels(cw_size * KK));
  const int64_t w_units = g.winograd ? wt.blocks : w_tiles.count;
  const int64_t ow_first = g.winograd ? channel_block(g.C_out_g, kWinogradFilterBlock) : g.C_out_g;
  const int64_t w_regions = g.G * cw_blocks * ceil_div(g.C_out_g, ow_first);
  // A Winograd range keeps at least kWinogradMinTiles tiles, the K of its GEMMs.
  const int64_t max_ranges = std::max<int64_t>(
      1, std::min({w_units, kMaxPartialElems / (g.C_out * g.K_g),
                   g.winograd ? wt.rows * wt.TX / kWinogradMinTiles : w_units}));
  int64_t w_ranges = 1;
  if (w_regions < kMinChunks)
    w_ranges = std::clamp<int64_t>(ceil_div(kMinChunks, w_regions), 1, max_ranges);
  // The grad_input chunks share the loop, so only without them may grad_weight need more chunks.
  const int64_t ow_size =
      std::min(ow_first, split_block(g.C_out_g, w_regions * w_ranges + x_chunks));
  const int64_t ow_blocks = ceil_div(g.C_out_g, ow_size);
  const int64_t w_chunks = gw ? g.G * cw_blocks * ow_blocks * w_ranges : 0;
  // Every range's partial is written whole by its chunks, so it starts uninitialized.
  const CallBuffer<T> partials =
      w_chunks && w_ranges > 1 ? call_buffer<T>(w_ranges * g.C_out * g.K_g) : nullptr;

  // grad_bias: blocks of output channels.
  constexpr int64_t kBiasBlock = 16;
  const int64_t b_chunks = gb ? ceil_div(g.C_out, kBiasBlock) : 0;

  // dW_g[o-block, c-block] = sum over the range's tiles of dY[o-block, tile] cols[c-block, tile]^T.
  // Over many pixels it is computed transposed, as [nc KK, no] (the operand with more rows first
  // suits the GEMM), then transposed into dW or the range's partial; over few, directly there
  // (the transpose would cost more than the GEMM).
  auto grad_weight_chunk = [&](int64_t k) {
    const int64_t ob = k % ow_blocks, cb = k / ow_blocks % cw_blocks;
    const int64_t range = k / ow_blocks / cw_blocks % w_ranges;
    const int64_t grp = k / ow_blocks / cw_blocks / w_ranges;
    const int64_t o0 = grp * g.C_out_g + ob * ow_size;
    const int64_t no = std::min(ow_size, g.C_out_g - ob * ow_size);
    const int64_t c0 = grp * g.C_g + cb * cw_size;
    const int64_t nc = std::min(cw_size, g.C_g - cb * cw_size);
    const int64_t t0 = range * w_tiles.count / w_ranges;
    const int64_t t1 = (range + 1) * w_tiles.count / w_ranges;
    const int64_t pixels_in_range = (w_tiles.rows(t1 - 1).second - w_tiles.rows(t0).first) * g.OW;
    const bool transposed = t1 > t0 && pixels_in_range >= kWeightTransposeMinPixels;
    // dW[o0 + o, c0 KK + q], leading dim K_g
    T* dw = (w_ranges > 1 ? partials.get() + range * g.C_out * g.K_g : gw) + o0 * g.K_g +
            (c0 - grp * g.C_g) * KK;
    T* acc = transposed ? scratch<T>(kAccum, nc * KK * no) : nullptr;
    if (t0 == t1)
      for (int64_t o = 0; o < no; ++o) std::fill(dw + o * g.K_g, dw + o * g.K_g + nc * KK, T(0));
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
      const T beta = t == t0 ? T(0) : T(1);
#ifdef KILN_SMALL_PRODUCTS
      // A range of one short tile (a whole batch of few pixels): written once, see above.
      if (t1 - t0 == 1 && pixels <= short_k_limit<T>()) {
        gemm_nt_short_k_widest<T>(no, nc * KK, pixels, dy, ld_g, cols, ld_cols, dw, g.K_g,
                                  scratch<T>(kAccum, pixels * nc * KK));
        continue;
      }
#endif
      if (transposed)
        gemm_serial<T>(false, true, nc * KK, no, pixels, T(1), cols, ld_cols, dy, ld_g, beta, acc,
                       no);
      else
        gemm_serial<T>(false, true, no, nc * KK, pixels, T(1), dy, ld_g, cols, ld_cols, beta, dw,
                       g.K_g);
    }
    if (transposed)  // dW[o0 + o, c0 KK + q] = acc[q, o]
      for (int64_t o = 0; o < no; ++o)
        for (int64_t q = 0; q < nc * KK; ++q) dw[o * g.K_g + q] = acc[q * no + o];
  };

  // Winograd grad_weight: dU[xi][o-block, c-block] = sum over the range's tile blocks of
  // D[xi] V[xi]^T, D = A dY A^T and V = B^T x B; then dW = G^T dU G into dW or the range's partial.
  auto grad_weight_winograd_chunk = [&]<int kM>(int64_t k) {
    constexpr int kPoints = kWinogradPoints<kM>;
    const int64_t ob = k % ow_blocks, cb = k / ow_blocks % cw_blocks;
    const int64_t range = k / ow_blocks / cw_blocks % w_ranges;
    const int64_t grp = k / ow_blocks / cw_blocks / w_ranges;
    const int64_t o0 = grp * g.C_out_g + ob * ow_size;
    const int64_t no = std::min(ow_size, g.C_out_g - ob * ow_size);
    const int64_t c0 = grp * g.C_g + cb * cw_size;
    const int64_t nc = std::min(cw_size, g.C_g - cb * cw_size);
    const int64_t b0 = range * wt.blocks / w_ranges, b1 = (range + 1) * wt.blocks / w_ranges;
    const int64_t u_plane = winograd_plane(no, nc);
    T* dU = scratch<T>(kAccum, kPoints * u_plane);
    if (b0 == b1) std::fill(dU, dU + kPoints * u_plane, T(0));
    for (int64_t blk = b0; blk < b1; ++blk) {
      const auto [r0, r1] = wt.block(blk);
      const int64_t tiles = (r1 - r0) * wt.TX;
      const int64_t d_plane = winograd_plane(no, tiles);
      int64_t v_plane;
      const T* V;
      if (saved_V) {  // channels [c0, c0 + nc) of the forward's V for this block
        v_plane = winograd_plane(g.C_g, tiles);
        V = saved_V + (grp * wt.blocks + blk) * saved_input_slot(g, wt) +
            (c0 - grp * g.C_g) * tiles;
      } else {
        v_plane = winograd_plane(nc, tiles);
        T* buf = scratch<T>(kCols, kPoints * v_plane);
        winograd_input<kM>(x, g.C, g.H, g.W, wt, c0, nc, r0, r1, buf);
        V = buf;
      }
      T* D = scratch<T>(kPacked, kPoints * d_plane);
      winograd_grad_output<kM>(gy, g.C_out, g.OH, g.OW, wt, o0, no, r0, r1, D);
#if defined(KILN_SMALL_PRODUCTS) && defined(__AVX512F__)
      // Over a block of at most 32 tiles (8x8 maps at batch 2), OpenBLAS ran these rank-`tiles`
      // updates of dU through its general path, packing both operands every time.
      // gemm_nt_short_k keeps each element's chain in registers and adds it to dU once, as
      // OpenBLAS does, so the bits are the same. Only over whole blocks of 64 input channels: on
      // the 32-channel layers OpenBLAS was faster.
      if constexpr (std::is_same_v<T, float>)
        if (tiles <= short_k_limit<T>() && nc % kWinogradShortKChannels == 0) {
          T* bt = scratch<T>(kStage, tiles * nc);
          for (int64_t xi = 0; xi < kPoints; ++xi)
            gemm_nt_short_k_widest<T>(no, nc, tiles, D + xi * d_plane, tiles, V + xi * v_plane,
                                      tiles, dU + xi * u_plane, nc, bt, blk != b0);
          continue;
        }
#endif
      for (int64_t xi = 0; xi < kPoints; ++xi)
        gemm_serial<T>(false, true, no, nc, tiles, T(1), D + xi * d_plane, tiles, V + xi * v_plane,
                       tiles, blk == b0 ? T(0) : T(1), dU + xi * u_plane, nc);
    }
    T* dw = (w_ranges > 1 ? partials.get() + range * g.C_out * g.K_g : gw) + o0 * g.K_g +
            (c0 - grp * g.C_g) * KK;
    winograd_filter_grad<kM>(dU, no, nc, dw, g.K_g);
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
    // The products below read that block column by column of W_g^T, so a row of W_g (nc KK
    // elements) at a time, K_g apart: a stride the hardware prefetchers do not follow, over weights
    // mostly out of this core's cache. Asking for the whole block first lets the misses overlap
    // (OpenBLAS's small-matrix kernel, used over 8 pixels, reads it in place too).
    for (int64_t o = 0; o < g.C_out_g; ++o) {
      const uintptr_t row = reinterpret_cast<uintptr_t>(w_block + o * g.K_g);
      prefetch_lines<2>(row, row + nc * KK * sizeof(T));
    }
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
        if (use_short_n_transposed<T>(pixels)) {
#ifdef KILN_SMALL_PRODUCTS
          if constexpr (std::is_same_v<T, float>) {
            std::fill(dcols, dcols + nc * KK * pixels, T(0));
            gemm_short_n<true>(nc * KK, pixels, g.C_out_g, w_block, g.K_g, dy, ld_g, dcols,
                               pixels);
          }
#endif
        } else {
          gemm_serial<T>(true, false, nc * KK, pixels, g.C_out_g, T(1), w_block, g.K_g, dy, ld_g,
                         T(0), dcols, pixels);
        }
        col2im(g, dcols, c0, c0 + nc, r0, r1, gx);
      }
    }
  };

  // Winograd grad_input: the forward algorithm on dY with the rotated, transposed filters.
  auto grad_input_winograd_chunk = [&]<int kM>(int64_t k) {
    constexpr int kPoints = kWinogradPoints<kM>;
    const int64_t cb = k % cx_blocks, blk = k / cx_blocks % wt.blocks;
    const int64_t grp = k / cx_blocks / wt.blocks;
    const auto [r0, r1] = wt.block(blk);
    const int64_t tiles = (r1 - r0) * wt.TX;
    const int64_t c0 = grp * g.C_g + cb * cx_size;
    const int64_t nc = std::min(cx_size, g.C_g - cb * cx_size);
    const int64_t u_plane = winograd_plane(g.C_out, g.C_g);  // = winograd_plane(C, C_out/G)
    const int64_t v_plane = winograd_plane(g.C_out_g, tiles), m_plane = winograd_plane(nc, tiles);
    T* V = scratch<T>(kCols, kPoints * v_plane);
    winograd_input<kM>(gy, g.C_out, g.OH, g.OW, wt, grp * g.C_out_g, g.C_out_g, r0, r1, V);
    T* M = scratch<T>(kPacked, kPoints * m_plane);
    for (int64_t xi = 0; xi < kPoints; ++xi) {
      if constexpr (kM == 2) {
        // The rotated filters' U[xi][c][o] is the forward's U[rotated xi][o][c]: the group's rows
        // o and the block's columns c, read transposed.
        const T* u = U_grad + winograd_rotated_point(xi) * u_plane + grp * g.C_out_g * g.C_g +
                     (c0 - grp * g.C_g);
        gemm_serial<T>(true, false, nc, tiles, g.C_out_g, T(1), u, g.C_g, V + xi * v_plane, tiles,
                       T(0), M + xi * m_plane, tiles);
      } else {
        gemm_serial<T>(false, false, nc, tiles, g.C_out_g, T(1),
                       U_grad + xi * u_plane + c0 * g.C_out_g, g.C_out_g, V + xi * v_plane, tiles,
                       T(0), M + xi * m_plane, tiles);
      }
    }
    winograd_output<kM>(M, nc, wt, r0, r1, gx, g.C, g.H, g.W, c0, static_cast<const T*>(nullptr));
  };

  // db[o] = sum_{n, oh, ow} dY[n, o, oh, ow], in double
  auto grad_bias_chunk = [&](int64_t k) {
    for (int64_t o = k * kBiasBlock; o < std::min(g.C_out, (k + 1) * kBiasBlock); ++o) {
      // eight running sums, so the loop vectorizes; combined in a fixed order
      double lanes[8] = {};
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
      if (k < w_chunks && g.winograd && wt.m == 4)
        grad_weight_winograd_chunk.template operator()<4>(k);
      else if (k < w_chunks && g.winograd) grad_weight_winograd_chunk.template operator()<2>(k);
      else if (k < w_chunks) grad_weight_chunk(k);
      else if (k < w_chunks + x_chunks && g.winograd && wt.m == 4)
        grad_input_winograd_chunk.template operator()<4>(k - w_chunks);
      else if (k < w_chunks + x_chunks && g.winograd)
        grad_input_winograd_chunk.template operator()<2>(k - w_chunks);
      else if (k < w_chunks + x_chunks) grad_input_col2im_chunk(k - w_chunks);
      else grad_bias_chunk(k - w_chunks - x_chunks);
    }
  });
  // dW = sum of the range partials, in range order
  if (partials) {
    const int64_t size = g.C_out * g.K_g;
    // Blocks of kSumBlock elements, so each range's rows are added while gw's block is in L1.
    constexpr int64_t kSumBlock = 1024;
    parallel_for(0, size, grain_for(w_ranges, 1 << 18), [&](int64_t e0, int64_t e1) {
      for (int64_t b0 = e0; b0 < e1; b0 += kSumBlock) {
        const int64_t count = std::min(kSumBlock, e1 - b0);
        std::copy(partials.get() + b0, partials.get() + b0 + count, gw + b0);
        for (int64_t r = 1; r < w_ranges; ++r)
          add_row(gw + b0, 1, partials.get() + r * size + b0, count);
      }
    });
  }
}

// ---- Entry points: checks, layout, dtype dispatch ----------------------------------------------

Shape output_shape(const ConvGeometry& g) { return {g.N, g.C_out, g.OH, g.OW}; }

// saved, when not null, receives the transforms kept for the backward, or an undefined tensor
// when the layer keeps none (see SavedLayout).
template <class Kernel>
Tensor run_forward(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in,
                   const Conv2dParams& params, Tensor* saved, Kernel&& kernel) {
  const ConvGeometry g = check_conv2d(x_in, w_in, b_in, params);
  Tensor x = contiguous(x_in), w = contiguous(w_in);
  Tensor b = b_in.defined() ? contiguous(b_in) : Tensor();
  Tensor y = Tensor::empty(output_shape(g), x.dtype());
  const SavedLayout layout = saved ? saved_layout(g) : SavedLayout{};
  if (saved) *saved = layout.total() > 0 ? Tensor::empty({layout.total()}, x.dtype()) : Tensor();
  dispatch_floating(x.dtype(), "conv2d", [&]<class T>() {
    T* kept = saved && saved->defined() ? saved->data_ptr<T>() : nullptr;
    kernel(g, x.data_ptr<T>(), w.data_ptr<T>(), b.defined() ? b.data_ptr<T>() : nullptr,
           y.data_ptr<T>(), layout.input_elems ? kept : nullptr,
           layout.filter_elems ? kept + layout.input_elems : nullptr);
  });
  return y;
}

template <class Kernel>
Conv2dGrads run_backward(const Tensor& gy_in, const Tensor& x_in, const Tensor& w_in,
                         const Conv2dParams& params, bool need_x, bool need_w, bool need_b,
                         const Tensor& saved, Kernel&& kernel) {
  const ConvGeometry g = check_conv2d(x_in, w_in, Tensor(), params);
  KILN_CHECK(gy_in.shape() == output_shape(g) && gy_in.dtype() == x_in.dtype(),
             "conv2d backward: expected grad_y ", output_shape(g), " of ", dtype_name(x_in.dtype()),
             " (input ", x_in.shape(), ", weight ", w_in.shape(), "), got ", gy_in.shape(), " of ",
             dtype_name(gy_in.dtype()));
  const SavedLayout layout = saved.defined() ? saved_layout(g) : SavedLayout{};
  KILN_CHECK(!saved.defined() || (saved.numel() == layout.total() &&
                                  saved.dtype() == x_in.dtype() && saved.is_contiguous()),
             "conv2d backward: expected the saved transforms of this forward (", layout.total(),
             " elements of ", dtype_name(x_in.dtype()), "), got ", saved.shape(), " of ",
             dtype_name(saved.dtype()));
  Tensor gy = contiguous(gy_in), x = contiguous(x_in), w = contiguous(w_in);
  Conv2dGrads grads;
  if (need_x) grads.grad_x = Tensor::empty(x.shape(), x.dtype());
  if (need_w) grads.grad_weight = Tensor::empty(w.shape(), w.dtype());
  if (need_b) grads.grad_bias = Tensor::empty({g.C_out}, x.dtype());
  dispatch_floating(x.dtype(), "conv2d backward", [&]<class T>() {
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data_ptr<T>() : nullptr; };
    const T* kept = saved.defined() ? saved.data_ptr<T>() : nullptr;
    kernel(g, gy.data_ptr<T>(), x.data_ptr<T>(), w.data_ptr<T>(), ptr(grads.grad_x),
           ptr(grads.grad_weight), ptr(grads.grad_bias), layout.input_elems ? kept : nullptr,
           layout.filter_elems ? kept + layout.input_elems : nullptr);
  });
  return grads;
}

}  // namespace

Tensor conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                      const Conv2dParams& params, Tensor* saved) {
  return run_forward(x, weight, bias, params, saved,
                     []<class T>(const ConvGeometry& g, const T* px, const T* pw, const T* pb,
                                 T* py, T* saved_V, T* saved_U) {
                       forward_kernel<T>(g, px, pw, pb, py, saved_V, saved_U);
                     });
}

Conv2dGrads conv2d_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                            const Conv2dParams& params, bool need_x, bool need_weight,
                            bool need_bias, const Tensor& saved) {
  return run_backward(grad_y, x, weight, params, need_x, need_weight, need_bias, saved,
                      []<class T>(const ConvGeometry& g, const T* gy, const T* px, const T* pw,
                                  T* gx, T* gw, T* gb, const T* saved_V, const T* saved_U) {
                        backward_kernel<T>(g, gy, px, pw, gx, gw, gb, saved_V, saved_U);
                      });
}

Tensor conv2d_forward_reference(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                const Conv2dParams& params) {
  return run_forward(x, weight, bias, params, nullptr,
                     []<class T>(const ConvGeometry& g, const T* px, const T* pw, const T* pb,
                                 T* py, T*, T*) { reference_forward<T>(g, px, pw, pb, py); });
}

Conv2dGrads conv2d_backward_reference(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                                      const Conv2dParams& params, bool need_x, bool need_weight,
                                      bool need_bias) {
  return run_backward(grad_y, x, weight, params, need_x, need_weight, need_bias, Tensor(),
                      []<class T>(const ConvGeometry& g, const T* gy, const T* px, const T* pw,
                                  T* gx, T* gw, T* gb, const T*, const T*) {
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
    // When a gradient is wanted, the forward keeps its Winograd transforms of x and the weights
    // for the backward (at small sizes).
    Tensor saved;
    Tensor y = kernels::conv2d_forward(
        x, weight, bias, params,
        ctx.needs_input_grad(0) || ctx.needs_input_grad(1) ? &saved : nullptr);
    ctx.save_for_backward({x, weight, saved});
    ctx.saved_data["params"] = params;
    return y;
  }
  // y = conv(x, W) + b:  dx = col2im(W^T dy),  dW = dy cols^T,  db = sum dy  (see the top)
  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& grads) {
    auto saved = ctx.saved();
    auto params = std::any_cast<kernels::Conv2dParams>(ctx.saved_data["params"]);
    kernels::Conv2dGrads g =
        kernels::conv2d_backward(grads[0], saved[0], saved[1], params, ctx.needs_input_grad(0),
                                 ctx.needs_input_grad(1), ctx.needs_input_grad(2), saved[2]);
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
  // PyTorch's default: weight ~ kaiming_uniform_(a = sqrt(5)), i.e. U(-b, b) with
  // b = 1 / sqrt(fan_in), fan_in = in / groups * k * k; bias ~ U(-b, b) with the same b.
  init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::fan_in, init::Nonlinearity::leaky_relu, gen);
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(init::calculate_fan_in_and_fan_out(weight).first));
    init::uniform_(bias, -bound, bound, gen);
  }
}

Tensor Conv2d::forward(const Tensor& x) {
  return functional::conv2d(x, weight, bias, options.stride, options.padding, options.dilation,
                            options.groups);
}

std::string Conv2d::extra_repr() const {
  std::ostringstream out;
  out << in_channels << ", " << out_channels << ", kernel_size=(" << kernel_size << ", "
      << kernel_size << "), stride=(" << options.stride << ", " << options.stride << ")";
  if (options.padding != 0)
    out << ", padding=(" << options.padding << ", " << options.padding << ")";
  if (options.dilation != 1)
    out << ", dilation=(" << options.dilation << ", " << options.dilation << ")";
  if (options.groups != 1) out << ", groups=" << options.groups;
  if (!bias.defined()) out << ", bias=False";
  return out.str();
}

}  // namespace kiln::nn
