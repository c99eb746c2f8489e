// 2-D pooling.
//
// 1. The math, per [H, W] plane of x [N, C, H, W] (N, C untouched). Output position (i, j) looks
//    at the window of input rows h0..h1-1 and columns w0..w1-1:
//      max, avg:  h0 = i s - p,  h1 = h0 + k   (clipped to [0, H); likewise w with j)
//      adaptive:  h0 = floor(i H / OH),  h1 = ceil((i + 1) H / OH)
//    MaxPool2d:          y[i, j] = max over the window            (padding acts as -inf)
//                        dL/dx[a] = sum of dL/dy[i, j] over the (i, j) whose argmax is a
//                        (the argmax is the first maximum in row-major scan order, as PyTorch,
//                        and is saved by forward)
//    AvgPool2d:          y[i, j] = (1 / D) sum over the window     (padding acts as 0)
//                        D = k * k with count_include_pad, else the in-bounds count
//                        dL/dx[a] = sum over windows containing a of dL/dy[i, j] / D
//    AdaptiveAvgPool2d:  as AvgPool2d with D = (h1 - h0)(w1 - w0); windows may overlap.
//    Every kernel runs over the N*C planes in fixed chunks; a plane's backward is serial, so
//    overlapping windows add in a fixed order.
#include <kiln/layers/pooling.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <kiln/autograd/function.h>
#include <kiln/autograd/ops.h>
#include <kiln/core/parallel.h>
#include <kiln/core/views.h>
#include <kiln/layers/pool_kernels.h>

namespace kiln::kernels {

namespace {

struct Planes {
  int64_t count, H, W, OH, OW;
};

Planes planes_of(const Shape& x_shape, int64_t OH, int64_t OW) {
  return {x_shape[0] * x_shape[1], x_shape[2], x_shape[3], OH, OW};
}

int64_t pooled_size(int64_t size, int64_t kernel, int64_t stride, int64_t pad) {
  return (size + 2 * pad - kernel) / stride + 1;
}

// Calls fn(first, end) for fixed chunks of planes, of about 2^15 window reads each.
template <class Fn>
void for_plane_chunks(const Planes& p, int64_t reads_per_plane, Fn&& fn) {
  parallel_for(0, p.count, grain_for(std::max<int64_t>(reads_per_plane, p.H * p.W)), fn);
}

// Calls fn(plane) for every plane, in the chunks of for_plane_chunks.
template <class Fn>
void for_each_plane(const Planes& p, int64_t reads_per_plane, Fn&& fn) {
  for_plane_chunks(p, reads_per_plane, [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) fn(plane);
  });
}

}  // namespace

// 2. Forward kernels.

MaxPool2dResult max_pool2d_forward(const Tensor& x, const Pool2dGeometry& g) {
  const Planes p = planes_of(x.shape(), pooled_size(x.size(2), g.kernel_h, g.stride_h, g.pad_h),
                             pooled_size(x.size(3), g.kernel_w, g.stride_w, g.pad_w));
  const Shape y_shape{x.size(0), x.size(1), p.OH, p.OW};
  MaxPool2dResult r{Tensor::empty(y_shape, x.dtype()), Tensor::empty(y_shape, DType::i64)};
  dispatch_floating(x.dtype(), "max_pool2d", [&]<class T>() {
    const T* px = x.data_ptr<T>();
    T* py = r.y.data_ptr<T>();
    int64_t* pi = r.indices.data_ptr<int64_t>();
    const bool two_by_two = g.kernel_h == 2 && g.kernel_w == 2 && g.stride_h == 2 &&
                            g.stride_w == 2 && g.pad_h == 0 && g.pad_w == 0;
    const int64_t reads_per_plane = p.OH * p.OW * g.kernel_h * g.kernel_w;
    if (two_by_two) {
      for_plane_chunks(p, reads_per_plane, [&](int64_t first, int64_t end) {
        nn::pool_kernels::max_pool_2x2_planes(px + first * p.H * p.W, end - first, p.H, p.W,
                                              py + first * p.OH * p.OW, pi + first * p.OH * p.OW);
      });
      return;
    }
    for_each_plane(p, reads_per_plane, [&](int64_t plane) {
      const T* in = px + plane * p.H * p.W;
      T* out = py + plane * p.OH * p.OW;
      int64_t* idx = pi + plane * p.OH * p.OW;
      for (int64_t i = 0; i < p.OH; ++i) {
        const int64_t h0 = std::max<int64_t>(i * g.stride_h - g.pad_h, 0);
        const int64_t h1 = std::min(i * g.stride_h - g.pad_h + g.kernel_h, p.H);
        for (int64_t j = 0; j < p.OW; ++j) {
          const int64_t w0 = std::max<int64_t>(j * g.stride_w - g.pad_w, 0);
          const int64_t w1 = std::min(j * g.stride_w - g.pad_w + g.kernel_w, p.W);
          // y = max over the window; strict > keeps the first maximum, a NaN always wins
          T best = -std::numeric_limits<T>::infinity();
          int64_t best_at = h0 * p.W + w0;
          for (int64_t h = h0; h < h1; ++h) {
            for (int64_t w = w0; w < w1; ++w) {
              const T v = in[h * p.W + w];
              if (v > best || std::isnan(v)) {
                best = v;
                best_at = h * p.W + w;
              }
            }
          }
          out[i * p.OW + j] = best;
          idx[i * p.OW + j] = best_at;
        }
      }
    });
  });
  return r;
}

namespace {

// The avg-pool window of output (i, j) and its divisor D (PyTorch's avg_pool2d formula).
struct AvgWindow {
  int64_t h0, h1, w0, w1, divisor;
};

AvgWindow avg_window(const Pool2dGeometry& g, const Planes& p, int64_t i, int64_t j,
                     bool count_include_pad) {
  int64_t h0 = i * g.stride_h - g.pad_h, w0 = j * g.stride_w - g.pad_w;
  int64_t h1 = std::min(h0 + g.kernel_h, p.H + g.pad_h);
  int64_t w1 = std::min(w0 + g.kernel_w, p.W + g.pad_w);
  const int64_t padded_size = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, p.H);
  w1 = std::min(w1, p.W);
  return {h0, h1, w0, w1, count_include_pad ? padded_size : (h1 - h0) * (w1 - w0)};
}

}  // namespace

Tensor avg_pool2d_forward(const Tensor& x, const Pool2dGeometry& g, bool count_include_pad) {
  const Planes p = planes_of(x.shape(), pooled_size(x.size(2), g.kernel_h, g.stride_h, g.pad_h),
                             pooled_size(x.size(3), g.kernel_w, g.stride_w, g.pad_w));
  Tensor y = Tensor::empty({x.size(0), x.size(1), p.OH, p.OW}, x.dtype());
  dispatch_floating(x.dtype(), "avg_pool2d", [&]<class T>() {
    const T* px = x.data_ptr<T>();
    T* py = y.data_ptr<T>();
    for_each_plane(p, p.OH * p.OW * g.kernel_h * g.kernel_w, [&](int64_t plane) {
      const T* in = px + plane * p.H * p.W;
      T* out = py + plane * p.OH * p.OW;
      for (int64_t i = 0; i < p.OH; ++i) {
        for (int64_t j = 0; j < p.OW; ++j) {
          const AvgWindow win = avg_window(g, p, i, j, count_include_pad);
          // y = (1 / D) sum over the window, accumulated in double
          double sum = 0;
          for (int64_t h = win.h0; h < win.h1; ++h)
            for (int64_t w = win.w0; w < win.w1; ++w) sum += in[h * p.W + w];
          out[i * p.OW + j] = win.divisor > 0 ? static_cast<T>(sum / static_cast<double>(win.divisor)) : T(0);
        }
      }
    });
  });
  return y;
}

namespace {
// Adaptive window bounds: floor(i H / OH) and ceil((i + 1) H / OH).
inline int64_t adaptive_start(int64_t i, int64_t out, int64_t in) { return i * in / out; }
inline int64_t adaptive_end(int64_t i, int64_t out, int64_t in) { return ((i + 1) * in + out - 1) / out; }
}  // namespace

Tensor adaptive_avg_pool2d_forward(const Tensor& x, int64_t out_h, int64_t out_w) {
  const Planes p = planes_of(x.shape(), out_h, out_w);
  Tensor y = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.dtype());
  dispatch_floating(x.dtype(), "adaptive_avg_pool2d", [&]<class T>() {
    const T* px = x.data_ptr<T>();
    T* py = y.data_ptr<T>();
    // Each input element is read about once per covering window: ~H*W*(1 + overlap) reads.
    for_each_plane(p, 2 * p.H * p.W + p.OH * p.OW, [&](int64_t plane) {
      const T* in = px + plane * p.H * p.W;
      T* out = py + plane * p.OH * p.OW;
      for (int64_t i = 0; i < p.OH; ++i) {
        const int64_t h0 = adaptive_start(i, p.OH, p.H), h1 = adaptive_end(i, p.OH, p.H);
        for (int64_t j = 0; j < p.OW; ++j) {
          const int64_t w0 = adaptive_start(j, p.OW, p.W), w1 = adaptive_end(j, p.OW, p.W);
          // y = sum over the window / ((h1 - h0)(w1 - w0))
          double sum = 0;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) sum += in[h * p.W + w];
          out[i * p.OW + j] = static_cast<T>(sum / static_cast<double>((h1 - h0) * (w1 - w0)));
        }
      }
    });
  });
  return y;
}

// 3. Backward kernels.

Tensor max_pool2d_backward(const Tensor& grad_y, const Tensor& indices, const Shape& x_shape) {
  const Planes p = planes_of(x_shape, grad_y.size(2), grad_y.size(3));
  Tensor grad_x = Tensor::zeros(x_shape, grad_y.dtype());
  dispatch_floating(grad_y.dtype(), "max_pool2d backward", [&]<class T>() {
    const T* pg = grad_y.data_ptr<T>();
    const int64_t* pi = indices.data_ptr<int64_t>();
    T* px = grad_x.data_ptr<T>();
    for_each_plane(p, p.OH * p.OW, [&](int64_t plane) {
      const T* g = pg + plane * p.OH * p.OW;
      const int64_t* idx = pi + plane * p.OH * p.OW;
      T* gx = px + plane * p.H * p.W;
      // dL/dx[argmax(i, j)] += dL/dy[i, j]
      for (int64_t o = 0; o < p.OH * p.OW; ++o) gx[idx[o]] += g[o];
    });
  });
  return grad_x;
}

Tensor avg_pool2d_backward(const Tensor& grad_y, const Shape& x_shape, const Pool2dGeometry& g,
                           bool count_include_pad) {
  const Planes p = planes_of(x_shape, grad_y.size(2), grad_y.size(3));
  Tensor grad_x = Tensor::zeros(x_shape, grad_y.dtype());
  dispatch_floating(grad_y.dtype(), "avg_pool2d backward", [&]<class T>() {
    const T* pg = grad_y.data_ptr<T>();
    T* px = grad_x.data_ptr<T>();
    for_each_plane(p, p.OH * p.OW * g.kernel_h * g.kernel_w, [&](int64_t plane) {
      const T* gy = pg + plane * p.OH * p.OW;
      T* gx = px + plane * p.H * p.W;
      for (int64_t i = 0; i < p.OH; ++i) {
        for (int64_t j = 0; j < p.OW; ++j) {
          const AvgWindow win = avg_window(g, p, i, j, count_include_pad);
          if (win.divisor == 0) continue;
          // d/dx[a] of (1 / D) sum_window x = 1 / D for every a in the window
          const T delta = gy[i * p.OW + j] / static_cast<T>(win.divisor);
          for (int64_t h = win.h0; h < win.h1; ++h)
            for (int64_t w = win.w0; w < win.w1; ++w) gx[h * p.W + w] += delta;
        }
      }
    });
  });
  return grad_x;
}

Tensor adaptive_avg_pool2d_backward(const Tensor& grad_y, const Shape& x_shape) {
  const Planes p = planes_of(x_shape, grad_y.size(2), grad_y.size(3));
  Tensor grad_x = Tensor::zeros(x_shape, grad_y.dtype());
  dispatch_floating(grad_y.dtype(), "adaptive_avg_pool2d backward", [&]<class T>() {
    const T* pg = grad_y.data_ptr<T>();
    T* px = grad_x.data_ptr<T>();
    for_each_plane(p, 2 * p.H * p.W + p.OH * p.OW, [&](int64_t plane) {
      const T* gy = pg + plane * p.OH * p.OW;
      T* gx = px + plane * p.H * p.W;
      for (int64_t i = 0; i < p.OH; ++i) {
        const int64_t h0 = adaptive_start(i, p.OH, p.H), h1 = adaptive_end(i, p.OH, p.H);
        for (int64_t j = 0; j < p.OW; ++j) {
          const int64_t w0 = adaptive_start(j, p.OW, p.W), w1 = adaptive_end(j, p.OW, p.W);
          // d/dx[a] of the window mean = 1 / ((h1 - h0)(w1 - w0))
          const T delta = gy[i * p.OW + j] / static_cast<T>((h1 - h0) * (w1 - w0));
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) gx[h * p.W + w] += delta;
        }
      }
    });
  });
  return grad_x;
}

}  // namespace kiln::kernels

namespace kiln::nn {

namespace functional {

namespace {

// 4. The differentiable functions (grad_fn: MaxPool2dBackward, AvgPool2dBackward,
//    AdaptiveAvgPool2dBackward). Each takes a contiguous 4-D input.
struct MaxPool2d : autograd::Function<MaxPool2d> {
  static Tensor forward(autograd::Context& ctx, const Tensor& x, kernels::Pool2dGeometry g) {
    kernels::MaxPool2dResult r = kernels::max_pool2d_forward(x, g);
    ctx.save_for_backward({r.indices});
    ctx.saved_data["x_shape"] = x.shape();
    return r.y;
  }
  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& g) {
    return {kernels::max_pool2d_backward(kernels::contiguous(g[0]), ctx.saved()[0],
                                         std::any_cast<Shape>(ctx.saved_data["x_shape"]))};
  }
};

struct AvgPool2d : autograd::Function<AvgPool2d> {
  static Tensor forward(autograd::Context& ctx, const Tensor& x, kernels::Pool2dGeometry g,
                        bool count_include_pad) {
    ctx.saved_data["x_shape"] = x.shape();
    ctx.saved_data["geometry"] = g;
    ctx.saved_data["count_include_pad"] = count_include_pad;
    return kernels::avg_pool2d_forward(x, g, count_include_pad);
  }
  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& g) {
    return {kernels::avg_pool2d_backward(
        kernels::contiguous(g[0]), std::any_cast<Shape>(ctx.saved_data["x_shape"]),
        std::any_cast<kernels::Pool2dGeometry>(ctx.saved_data["geometry"]),
        std::any_cast<bool>(ctx.saved_data["count_include_pad"]))};
  }
};

struct AdaptiveAvgPool2d : autograd::Function<AdaptiveAvgPool2d> {
  static Tensor forward(autograd::Context& ctx, const Tensor& x, int64_t out_h, int64_t out_w) {
    ctx.saved_data["x_shape"] = x.shape();
    return kernels::adaptive_avg_pool2d_forward(x, out_h, out_w);
  }
  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& g) {
    return {kernels::adaptive_avg_pool2d_backward(kernels::contiguous(g[0]),
                                                  std::any_cast<Shape>(ctx.saved_data["x_shape"]))};
  }
};

// Checks x is [N, C, H, W] or [C, H, W] and floating.
void check_input(const Tensor& x, const char* op) {
  KILN_CHECK(x.defined(), op, ": the input is undefined");
  KILN_CHECK(x.dim() == 3 || x.dim() == 4, op, ": expected a 4-D input [N, C, H, W] (or 3-D"
             " [C, H, W]), got shape ", x.shape());
  KILN_CHECK(is_floating(x.dtype()), op, ": expected a floating input (f32 or f64), got ",
             dtype_name(x.dtype()), " of shape ", x.shape());
  KILN_CHECK(x.size(-2) > 0 && x.size(-1) > 0, op, ": the input of shape ", x.shape(),
             " has an empty spatial dim (H and W must be at least 1)");
}

// Resolves stride 0 to the kernel size and checks the window against x.
kernels::Pool2dGeometry geometry(const Tensor& x, int64_t kernel, Pool2dOptions options,
                                 const char* op) {
  const int64_t stride = options.stride == 0 ? kernel : options.stride;
  KILN_CHECK(kernel > 0, op, ": kernel_size must be positive, got ", kernel);
  KILN_CHECK(stride > 0, op, ": stride must be positive (or 0 for the kernel size), got ",
             options.stride);
  KILN_CHECK(options.padding >= 0 && options.padding <= kernel / 2, op, ": padding must be between"
             " 0 and half the kernel size (", kernel / 2, " for kernel_size ", kernel, "), got ",
             options.padding);
  const int64_t H = x.size(-2), W = x.size(-1);
  KILN_CHECK(H + 2 * options.padding >= kernel && W + 2 * options.padding >= kernel, op,
             ": the input of shape ", x.shape(), " is smaller than kernel_size ", kernel,
             " even with padding ", options.padding, " (its spatial size is ", H, "x", W, ")");
  return {kernel, kernel, stride, stride, options.padding, options.padding};
}

// Runs a 4-D pooling function on x, adding and removing the batch dim of a 3-D input.
template <class Fn>
Tensor with_batch_dim(const Tensor& x, Fn&& fn) {
  if (x.dim() == 3) return kiln::squeeze(fn(kiln::contiguous(kiln::unsqueeze(x, 0))), 0);
  return fn(kiln::contiguous(x));
}

}  // namespace

Tensor max_pool2d(const Tensor& x, int64_t kernel_size, Pool2dOptions options) {
  check_input(x, "max_pool2d");
  const kernels::Pool2dGeometry g = geometry(x, kernel_size, options, "max_pool2d");
  return with_batch_dim(x, [&](const Tensor& x4) { return MaxPool2d::apply(x4, g); });
}

Tensor avg_pool2d(const Tensor& x, int64_t kernel_size, Pool2dOptions options,
                  bool count_include_pad) {
  check_input(x, "avg_pool2d");
  const kernels::Pool2dGeometry g = geometry(x, kernel_size, options, "avg_pool2d");
  return with_batch_dim(x, [&](const Tensor& x4) {
    return AvgPool2d::apply(x4, g, count_include_pad);
  });
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t output_size) {
  return adaptive_avg_pool2d(x, output_size, output_size);
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t output_h, int64_t output_w) {
  check_input(x, "adaptive_avg_pool2d");
  KILN_CHECK(output_h > 0 && output_w > 0, "adaptive_avg_pool2d: the output size must be positive,"
             " got ", output_h, "x", output_w);
  return with_batch_dim(x, [&](const Tensor& x4) {
    return AdaptiveAvgPool2d::apply(x4, output_h, output_w);
  });
}

}  // namespace functional

// 5. The Modules.

MaxPool2d::MaxPool2d(int64_t kernel_size, Pool2dOptions options)
    : kernel_size(kernel_size),
      stride(options.stride == 0 ? kernel_size : options.stride),
      padding(options.padding) {
  KILN_CHECK(kernel_size > 0 && stride > 0 && padding >= 0 && padding <= kernel_size / 2,
             "MaxPool2d: expected kernel_size > 0, stride > 0 (0 means kernel_size) and"
             " 0 <= padding <= kernel_size / 2, got kernel_size=", kernel_size, ", stride=",
             stride, ", padding=", padding);
}

Tensor MaxPool2d::forward(const Tensor& x) {
  return functional::max_pool2d(x, kernel_size, {.stride = stride, .padding = padding});
}

std::string MaxPool2d::extra_repr() const {
  return "kernel_size=" + std::to_string(kernel_size) + ", stride=" + std::to_string(stride) +
         ", padding=" + std::to_string(padding) + ", dilation=1, ceil_mode=False";
}

AvgPool2d::AvgPool2d(int64_t kernel_size, Pool2dOptions options, bool count_include_pad)
    : kernel_size(kernel_size),
      stride(options.stride == 0 ? kernel_size : options.stride),
      padding(options.padding),
      count_include_pad(count_include_pad) {
  KILN_CHECK(kernel_size > 0 && stride > 0 && padding >= 0 && padding <= kernel_size / 2,
             "AvgPool2d: expected kernel_size > 0, stride > 0 (0 means kernel_size) and"
             " 0 <= padding <= kernel_size / 2, got kernel_size=", kernel_size, ", stride=",
             stride, ", padding=", padding);
}

Tensor AvgPool2d::forward(const Tensor& x) {
  return functional::avg_pool2d(x, kernel_size, {.stride = stride, .padding = padding},
                                count_include_pad);
}

std::string AvgPool2d::extra_repr() const {
  return "kernel_size=" + std::to_string(kernel_size) + ", stride=" + std::to_string(stride) +
         ", padding=" + std::to_string(padding);
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int64_t output_h, int64_t output_w)
    : output_h(output_h), output_w(output_w) {
  KILN_CHECK(output_h > 0 && output_w > 0, "AdaptiveAvgPool2d: the output size must be positive,"
             " got ", output_h, "x", output_w);
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) {
  return functional::adaptive_avg_pool2d(x, output_h, output_w);
}

std::string AdaptiveAvgPool2d::extra_repr() const {
  if (output_h == output_w) return "output_size=" + std::to_string(output_h);
  return "output_size=(" + std::to_string(output_h) + ", " + std::to_string(output_w) + ")";
}

}  // namespace kiln::nn
