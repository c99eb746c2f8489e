// Helpers shared by the tests: reference-loop indexing, layout variants of one tensor, and
// comparisons that report the first mismatching element.
#pragma once

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <kiln/kiln.h>

namespace kiln::test {

/// Row-major multi-index of flat element i of `shape`.
inline Shape unravel(int64_t i, const Shape& shape) {
  Shape idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = i % shape[d];
    i /= shape[d];
  }
  return idx;
}

/// Flat row-major position of `idx` in `shape`.
inline int64_t ravel(const Shape& idx, const Shape& shape) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + idx[d];
  return flat;
}

/// The flat position in `shape` that a broadcast output index `out_idx` reads (NumPy rules).
inline int64_t broadcast_index(const Shape& out_idx, const Shape& shape) {
  const size_t lead = out_idx.size() - shape.size();
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d)
    flat = flat * shape[d] + (shape[d] == 1 ? 0 : out_idx[lead + d]);
  return flat;
}

/// A seeded f64 (or f32) tensor of normal samples, optionally shifted away from zero.
inline Tensor randn(const Shape& shape, uint64_t seed, DType dtype = DType::f64) {
  Generator gen(seed);
  return Tensor::randn(shape, dtype, &gen);
}

/// Uniform samples in [lo, hi).
inline Tensor uniform(const Shape& shape, double lo, double hi, uint64_t seed,
                      DType dtype = DType::f64) {
  Generator gen(seed);
  NoGradGuard no_grad;
  return Tensor::rand(shape, dtype, &gen) * (hi - lo) + lo;
}

/// The same values as `t` (contiguous or not), laid out every other element along the last dim of
/// a larger buffer: a non-contiguous leaf with a step-2 slice.
inline Tensor strided_copy(const Tensor& t) {
  if (t.dim() == 0) return t.clone().detach();
  Shape big = t.shape();
  big.back() = big.back() * 2 + 1;
  Tensor buffer = Tensor::full(big, -777.0, t.dtype());
  Tensor view = buffer.slice(-1, 1, big.back(), 2);
  view.copy_(t.detach());
  return view;
}

/// The same values as `t`, stored with its dims reversed: a non-contiguous (transposed) leaf.
inline Tensor permuted_copy(const Tensor& t) {
  if (t.dim() < 2) return strided_copy(t);
  std::vector<int64_t> reverse(static_cast<size_t>(t.dim()));
  for (int64_t d = 0; d < t.dim(); ++d) reverse[d] = t.dim() - 1 - d;
  Tensor stored = t.detach().permute(reverse).contiguous().clone();
  return stored.permute(reverse);
}

/// Element-by-element comparison with a tolerance; names the first bad element.
inline void require_close(const Tensor& actual, const std::vector<double>& expected,
                          double rtol = 1e-6, double atol = 1e-9) {
  REQUIRE(actual.numel() == static_cast<int64_t>(expected.size()));
  std::vector<double> got = actual.to_vector<double>();
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = expected[i], g = got[i];
    const bool both_nan = std::isnan(e) && std::isnan(g);
    const bool same_inf = std::isinf(e) && e == g;
    if (both_nan || same_inf) continue;
    if (!(std::fabs(g - e) <= atol + rtol * std::fabs(e))) {
      FAIL("element " << i << " of shape " << shape_str(actual.shape()) << ": got " << g
                      << ", expected " << e);
    }
  }
}

inline void require_close(const Tensor& actual, const Tensor& expected, double rtol = 1e-6,
                          double atol = 1e-9) {
  REQUIRE(actual.shape() == expected.shape());
  require_close(actual, expected.to_vector<double>(), rtol, atol);
}

/// Bitwise equality of two tensors' values (same shape and dtype).
inline void require_identical(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  REQUIRE(a.dtype() == b.dtype());
  std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  for (size_t i = 0; i < va.size(); ++i) {
    if (!(va[i] == vb[i] || (std::isnan(va[i]) && std::isnan(vb[i]))))
      FAIL("element " << i << " differs: " << va[i] << " vs " << vb[i]);
  }
}

/// The message of the kiln::Error that `fn` throws (fails the test when it throws none).
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("expected a kiln::Error");
  return "";
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

/// gradcheck on the given inputs, then on the same values laid out non-contiguously (step-2
/// slices, then transposed storage); all three must pass.
inline void gradcheck_layouts(const Fn& fn, const std::vector<Tensor>& inputs) {
  auto leaves = [](const std::vector<Tensor>& in, auto&& make) {
    std::vector<Tensor> out;
    for (const Tensor& t : in) {
      if (!t.defined() || !t.requires_grad()) { out.push_back(t); continue; }
      Tensor copy = make(t);
      out.push_back(copy.requires_grad_());
    }
    return out;
  };
  CHECK(autograd::gradcheck(fn, inputs));
  CHECK(autograd::gradcheck(fn, leaves(inputs, strided_copy)));
  CHECK(autograd::gradcheck(fn, leaves(inputs, permuted_copy)));
}

}  // namespace kiln::test
