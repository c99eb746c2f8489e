// The inner loops shared by the normalization kernels (group_norm.cpp, batch_norm.cpp). Each runs
// over one contiguous run of a channel or group; the callers own the parallel split.
//
// Accuracy: statistics accumulate values shifted by a nearby element, so large offsets (1e4 +
// 1e-2 randn) lose nothing, and the f32 versions keep 16 float lanes that are flushed into double
// every kFlush elements through a fixed pairwise tree (deterministic). (x - mu) is formed as
// (x - mu_hi) - mu_lo with mu split into two floats, which is exact enough when |mu| >> sigma.
//
// A norm followed by a ReLU can run fused: normalize_run then writes max(y, 0), and the backward
// runs take the ReLU's output relu_y and use its gradient, g where relu_y > 0 and 0 elsewhere,
// with the same select as kiln::relu_backward, so the bits are those of the two ops in turn.
#pragma once

#include <cstdint>

namespace kiln::nn::norm_kernels {

constexpr int64_t kLanes = 16;
constexpr int64_t kFlush = 1024;

// 16 float lanes (one AVX-512 register, or two AVX ones), with GCC/Clang vector extensions.
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));
inline Lanes load_lanes(const float* p) {
  Lanes v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline Lanes broadcast(float v) { return Lanes{} + v; }

// The sum of the 16 lanes as a fixed pairwise tree (halves added, then halves of the result...),
// in float: cheap enough to flush short runs, and the same order every time. Shuffles, not
// memcpy, so the accumulators never leave their registers.
typedef float Lanes8 __attribute__((vector_size(8 * sizeof(float))));
typedef float Lanes4 __attribute__((vector_size(4 * sizeof(float))));
inline float sum_lanes(Lanes v) {
  const Lanes8 s8 = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                    __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const Lanes4 s4 = __builtin_shufflevector(s8, s8, 0, 1, 2, 3) +
                    __builtin_shufflevector(s8, s8, 4, 5, 6, 7);
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

/// mu as the sum of two floats: hi = float(mu), lo = float(mu - hi).
struct SplitMean {
  float hi, lo;
  explicit SplitMean(double mu) : hi(static_cast<float>(mu)), lo(static_cast<float>(mu - static_cast<double>(static_cast<float>(mu)))) {}
};

// ---- sum (x - shift), sum (x - shift)^2 --------------------------------------------------------
template <class T>
inline void accumulate_shifted(const T* x, int64_t n, double shift, double& sum, double& sumsq) {
  for (int64_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(x[i]) - shift;
    sum += v;
    sumsq += v * v;
  }
}

inline void accumulate_shifted(const float* x, int64_t n, double shift_d, double& sum, double& sumsq) {
  const float shift = static_cast<float>(shift_d);  // callers pass an element, so this is exact
  int64_t i = 0;
  const Lanes shift_v = broadcast(shift);
  // Two independent accumulator pairs hide the add latency; they are combined in a fixed order.
  while (n - i >= kLanes) {
    Lanes s0 = {}, s1 = {}, q0 = {}, q1 = {};
    const int64_t stop = i + ((n - i) < kFlush ? (n - i) : kFlush) / kLanes * kLanes;
    for (; i + 2 * kLanes <= stop; i += 2 * kLanes) {
      const Lanes v0 = load_lanes(x + i) - shift_v;
      const Lanes v1 = load_lanes(x + i + kLanes) - shift_v;
      s0 += v0;
      s1 += v1;
      q0 += v0 * v0;
      q1 += v1 * v1;
    }
    if (i < stop) {
      const Lanes v0 = load_lanes(x + i) - shift_v;
      s0 += v0;
      q0 += v0 * v0;
      i += kLanes;
    }
    sum += sum_lanes(s0 + s1);
    sumsq += sum_lanes(q0 + q1);
  }
  for (; i < n; ++i) {
    const double v = static_cast<double>(x[i]) - shift_d;
    sum += v;
    sumsq += v * v;
  }
}

// ReLU's forward and the gradient it passes back, as kiln::relu and kiln::relu_backward compute them.
template <class T>
inline T relu_value(T v) {
  return v > T(0) ? v : T(0);
}
template <class T>
inline T relu_grad(T g, T relu_y) {
  return relu_y > T(0) ? g : T(0);
}

// ---- y = (x - mu) * scale + offset, or max(that, 0) with relu ----------------------------------
template <class T>
inline void normalize_run(const T* x, int64_t n, double mu, double scale, double offset, T* y,
                          bool relu = false) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = static_cast<T>((static_cast<double>(x[i]) - mu) * scale + offset);
  if (relu)
    for (int64_t i = 0; i < n; ++i) y[i] = relu_value(y[i]);
}

inline void normalize_run(const float* x, int64_t n, double mu, double scale_d, double offset_d,
                          float* y, bool relu = false) {
  const SplitMean m(mu);
  const float scale = static_cast<float>(scale_d), offset = static_cast<float>(offset_d);
  if (relu)
    for (int64_t i = 0; i < n; ++i) y[i] = relu_value(((x[i] - m.hi) - m.lo) * scale + offset);
  else
    for (int64_t i = 0; i < n; ++i) y[i] = ((x[i] - m.hi) - m.lo) * scale + offset;
}

// ---- db += sum g, dc += sum g (x - mu) ---------------------------------------------------------
// (with relu_y: g is the ReLU's output gradient, and its input gradient is used)
template <class T>
inline void accumulate_grad(const T* x, const T* g, int64_t n, double mu, double& db, double& dc,
                            const T* relu_y = nullptr) {
  for (int64_t i = 0; i < n; ++i) {
    const double gv = static_cast<double>(relu_y ? relu_grad(g[i], relu_y[i]) : g[i]);
    db += gv;
    dc += gv * (static_cast<double>(x[i]) - mu);
  }
}

namespace detail {
// g's lanes at i, through the ReLU when kRelu
template <bool kRelu>
inline Lanes grad_lanes(const float* g, const float* relu_y, int64_t i) {
  const Lanes v = load_lanes(g + i);
  if constexpr (kRelu) return load_lanes(relu_y + i) > Lanes{} ? v : Lanes{};
  return v;
}
template <bool kRelu>
inline float grad_at(const float* g, const float* relu_y, int64_t i) {
  if constexpr (kRelu) return relu_grad(g[i], relu_y[i]);
  return g[i];
}

template <bool kRelu>
inline void accumulate_grad(const float* x, const float* g, const float* relu_y, int64_t n,
                            double mu, double& db, double& dc) {
  const SplitMean m(mu);
  int64_t i = 0;
  const Lanes hi = broadcast(m.hi), lo = broadcast(m.lo);
  while (n - i >= kLanes) {
    Lanes b0 = {}, b1 = {}, c0 = {}, c1 = {};
    const int64_t stop = i + ((n - i) < kFlush ? (n - i) : kFlush) / kLanes * kLanes;
    for (; i + 2 * kLanes <= stop; i += 2 * kLanes) {
      const Lanes g0 = grad_lanes<kRelu>(g, relu_y, i), g1 = grad_lanes<kRelu>(g, relu_y, i + kLanes);
      b0 += g0;
      b1 += g1;
      c0 += g0 * ((load_lanes(x + i) - hi) - lo);
      c1 += g1 * ((load_lanes(x + i + kLanes) - hi) - lo);
    }
    if (i < stop) {
      const Lanes g0 = grad_lanes<kRelu>(g, relu_y, i);
      b0 += g0;
      c0 += g0 * ((load_lanes(x + i) - hi) - lo);
      i += kLanes;
    }
    db += sum_lanes(b0 + b1);
    dc += sum_lanes(c0 + c1);
  }
  for (; i < n; ++i) {
    const double gv = static_cast<double>(grad_at<kRelu>(g, relu_y, i));
    db += gv;
    dc += gv * (static_cast<double>(x[i]) - mu);
  }
}
}  // namespace detail

inline void accumulate_grad(const float* x, const float* g, int64_t n, double mu, double& db,
                            double& dc, const float* relu_y = nullptr) {
  if (relu_y) detail::accumulate_grad<true>(x, g, relu_y, n, mu, db, dc);
  else detail::accumulate_grad<false>(x, g, nullptr, n, mu, db, dc);
}

// ---- dx = scale g + (x - mu) coef_x + coef_1 ---------------------------------------------------
template <class T>
inline void grad_input_run(const T* x, const T* g, int64_t n, double mu, double scale, double coef_x,
                           double coef_1, T* dx, const T* relu_y = nullptr) {
  for (int64_t i = 0; i < n; ++i) {
    const T gv = relu_y ? relu_grad(g[i], relu_y[i]) : g[i];
    dx[i] = static_cast<T>(scale * static_cast<double>(gv) + (static_cast<double>(x[i]) - mu) * coef_x + coef_1);
  }
}

inline void grad_input_run(const float* x, const float* g, int64_t n, double mu, double scale_d,
                           double coef_x_d, double coef_1_d, float* dx,
                           const float* relu_y = nullptr) {
  const SplitMean m(mu);
  const float scale = static_cast<float>(scale_d), coef_x = static_cast<float>(coef_x_d),
              coef_1 = static_cast<float>(coef_1_d);
  if (relu_y)
    for (int64_t i = 0; i < n; ++i)
      dx[i] = scale * relu_grad(g[i], relu_y[i]) + ((x[i] - m.hi) - m.lo) * coef_x + coef_1;
  else
    for (int64_t i = 0; i < n; ++i) dx[i] = scale * g[i] + ((x[i] - m.hi) - m.lo) * coef_x + coef_1;
}

}  // namespace kiln::nn::norm_kernels
