// The inner loops shared by the normalization kernels (group_norm.cpp, batch_norm.cpp). Each runs
// over one contiguous run of a channel or group; the callers own the parallel split.
//
// Accuracy: statistics accumulate values shifted by a nearby element, so large offsets (1e4 +
// 1e-2 randn) lose nothing, and the f32 versions keep 16 float lanes that are flushed into double
// every kFlush elements through a fixed pairwise tree (deterministic). (x - mu) is formed as
// (x - mu_hi) - mu_lo with mu split into two floats, which is exact enough when |mu| >> sigma.
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

// ---- y = (x - mu) * scale + offset -------------------------------------------------------------
template <class T>
inline void normalize_run(const T* x, int64_t n, double mu, double scale, double offset, T* y) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = static_cast<T>((static_cast<double>(x[i]) - mu) * scale + offset);
}

inline void normalize_run(const float* x, int64_t n, double mu, double scale_d, double offset_d, float* y) {
  const SplitMean m(mu);
  const float scale = static_cast<float>(scale_d), offset = static_cast<float>(offset_d);
  for (int64_t i = 0; i < n; ++i) y[i] = ((x[i] - m.hi) - m.lo) * scale + offset;
}

// ---- db += sum g, dc += sum g (x - mu) ---------------------------------------------------------
template <class T>
inline void accumulate_grad(const T* x, const T* g, int64_t n, double mu, double& db, double& dc) {
  for (int64_t i = 0; i < n; ++i) {
    const double gv = static_cast<double>(g[i]);
    db += gv;
    dc += gv * (static_cast<double>(x[i]) - mu);
  }
}

inline void accumulate_grad(const float* x, const float* g, int64_t n, double mu, double& db, double& dc) {
  const SplitMean m(mu);
  int64_t i = 0;
  const Lanes hi = broadcast(m.hi), lo = broadcast(m.lo);
  while (n - i >= kLanes) {
    Lanes b0 = {}, b1 = {}, c0 = {}, c1 = {};
    const int64_t stop = i + ((n - i) < kFlush ? (n - i) : kFlush) / kLanes * kLanes;
    for (; i + 2 * kLanes <= stop; i += 2 * kLanes) {
      const Lanes g0 = load_lanes(g + i), g1 = load_lanes(g + i + kLanes);
      b0 += g0;
      b1 += g1;
      c0 += g0 * ((load_lanes(x + i) - hi) - lo);
      c1 += g1 * ((load_lanes(x + i + kLanes) - hi) - lo);
    }
    if (i < stop) {
      const Lanes g0 = load_lanes(g + i);
      b0 += g0;
      c0 += g0 * ((load_lanes(x + i) - hi) - lo);
      i += kLanes;
    }
    db += sum_lanes(b0 + b1);
    dc += sum_lanes(c0 + c1);
  }
  for (; i < n; ++i) {
    const double gv = static_cast<double>(g[i]);
    db += gv;
    dc += gv * (static_cast<double>(x[i]) - mu);
  }
}

// ---- dx = scale g + (x - mu) coef_x + coef_1 ---------------------------------------------------
template <class T>
inline void grad_input_run(const T* x, const T* g, int64_t n, double mu, double scale, double coef_x,
                           double coef_1, T* dx) {
  for (int64_t i = 0; i < n; ++i)
    dx[i] = static_cast<T>(scale * static_cast<double>(g[i]) + (static_cast<double>(x[i]) - mu) * coef_x + coef_1);
}

inline void grad_input_run(const float* x, const float* g, int64_t n, double mu, double scale_d,
                           double coef_x_d, double coef_1_d, float* dx) {
  const SplitMean m(mu);
  const float scale = static_cast<float>(scale_d), coef_x = static_cast<float>(coef_x_d),
              coef_1 = static_cast<float>(coef_1_d);
  for (int64_t i = 0; i < n; ++i) dx[i] = scale * g[i] + ((x[i] - m.hi) - m.lo) * coef_x + coef_1;
}

}  // namespace kiln::nn::norm_kernels
