// Formatting helpers for Module::extra_repr(), so kiln modules print the way PyTorch's do:
//   Dropout(p=0.5, inplace=False), LeakyReLU(negative_slope=0.01), GroupNorm(4, 8, eps=1e-05)
#pragma once

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace kiln::nn {

/// Python's repr() of a float: the shortest digits that round-trip, in fixed notation for
/// exponents -4..15 (always with a '.', as "1.0") and scientific otherwise ("1e-05").
inline std::string repr_float(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  std::string s(buf, result.ptr);  // [-]d[.ddd]e(+|-)XX
  std::string sign;
  if (s[0] == '-') {
    sign = "-";
    s.erase(0, 1);
  }
  const size_t e = s.find('e');
  const int exponent = std::atoi(s.c_str() + e + 1);
  std::string digits;
  for (size_t i = 0; i < e; ++i)
    if (s[i] != '.') digits += s[i];
  std::string out;
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out = "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    } else {
      const size_t whole = static_cast<size_t>(exponent) + 1;
      if (digits.size() <= whole) out = digits + std::string(whole - digits.size(), '0') + ".0";
      else out = digits.substr(0, whole) + "." + digits.substr(whole);
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp_text[16];
    std::snprintf(exp_text, sizeof exp_text, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += exp_text;
  }
  return sign + out;
}

/// Python's True / False.
inline const char* repr_bool(bool value) { return value ? "True" : "False"; }

}  // namespace kiln::nn
