// Shared test helpers: fixture loading and tensor comparison.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <kiln/kiln.h>

namespace kiln::testing {

/// Loads tests/data/<name> (a safetensors file written by a tests/tools generator) as a map.
inline std::map<std::string, Tensor> load_fixture(const std::string& name) {
  std::map<std::string, Tensor> out;
  for (auto& [key, t] : load_safetensors(std::string(KILN_TEST_DATA) + "/" + name)) out[key] = t;
  return out;
}

/// The largest |a - b| - (atol + rtol |b|) over all elements (<= 0 means all close), after
/// checking the shapes match. Reports the worst element in `where`.
inline double worst_excess(const Tensor& a, const Tensor& b, double atol, double rtol,
                           std::string* where = nullptr) {
  REQUIRE(a.shape() == b.shape());
  std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  double worst = -INFINITY;
  for (size_t i = 0; i < va.size(); ++i) {
    double excess = std::fabs(va[i] - vb[i]) - (atol + rtol * std::fabs(vb[i]));
    if (std::isnan(va[i]) != std::isnan(vb[i])) excess = INFINITY;
    if (excess > worst) {
      worst = excess;
      if (where) {
        std::ostringstream s;
        s << "element " << i << ": " << va[i] << " vs expected " << vb[i];
        *where = s.str();
      }
    }
  }
  return va.empty() ? 0 : worst;
}

/// REQUIREs that a and b have the same shape and |a - b| <= atol + rtol |b| everywhere.
#define KILN_REQUIRE_CLOSE(a, b, atol, rtol)                                        \
  do {                                                                              \
    std::string kiln_where_;                                                        \
    double kiln_excess_ = ::kiln::testing::worst_excess((a), (b), (atol), (rtol), &kiln_where_); \
    INFO("worst " << kiln_where_);                                                  \
    REQUIRE(kiln_excess_ <= 0);                                                     \
  } while (0)

/// max |a - b| / max |b|: the error relative to the tensor's scale (same numel required).
inline double relative_error(const Tensor& a, const Tensor& b) {
  const std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  REQUIRE(va.size() == vb.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    diff = std::max(diff, std::fabs(va[i] - vb[i]));
    scale = std::max(scale, std::fabs(vb[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

/// REQUIREs bit-identical values and equal shapes and dtypes. Compared as bits, not with ==, so
/// that +0 and -0 differ and a NaN equals a NaN of the same bits.
inline void require_equal(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  REQUIRE(a.dtype() == b.dtype());
  const std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  std::vector<uint64_t> bits_a(va.size()), bits_b(vb.size());
  if (!va.empty()) std::memcpy(bits_a.data(), va.data(), va.size() * sizeof(double));
  if (!vb.empty()) std::memcpy(bits_b.data(), vb.data(), vb.size() * sizeof(double));
  if (bits_a != bits_b) REQUIRE(va == vb);  // prints the values when they differ as numbers
  REQUIRE(bits_a == bits_b);
}

/// The text of the kiln::Error that fn throws ("" when it throws nothing).
template <class Fn>
std::string error_text(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace kiln::testing
