// Element types. f32 is the default everywhere; f64 is for gradcheck and tests; i64 for labels and
// indices.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <kiln/core/error.h>

namespace kiln {

/// The element type of a tensor: f32 (the default everywhere), f64 or i64.
enum class DType : uint8_t { f32, f64, i64 };

/// Bytes per element: 4 for f32, 8 for f64 and i64.
inline size_t itemsize(DType dtype) { return dtype == DType::f32 ? 4 : 8; }
/// True for f32 and f64.
inline bool is_floating(DType dtype) { return dtype != DType::i64; }
/// The name messages and printing use: "f32", "f64" or "i64".
const char* dtype_name(DType dtype);

/// The DType of the C++ element type T: `dtype_of<float>()` is DType::f32.
template <class T>
constexpr DType dtype_of();
/// float is f32.
template <>
constexpr DType dtype_of<float>() { return DType::f32; }
/// double is f64.
template <>
constexpr DType dtype_of<double>() { return DType::f64; }
/// int64_t is i64.
template <>
constexpr DType dtype_of<int64_t>() { return DType::i64; }

/// The dtype of a binary op's result: f64 > f32 > i64, as PyTorch promotes.
inline DType promote(DType a, DType b) {
  if (a == DType::f64 || b == DType::f64) return DType::f64;
  if (a == DType::f32 || b == DType::f32) return DType::f32;
  return DType::i64;
}

/// Calls `fn.template operator()<T>()` with T the C++ type of dtype:
/// `dispatch(x.dtype(), [&]<class T>() { ... T ... });`
template <class Fn>
decltype(auto) dispatch(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32: return fn.template operator()<float>();
    case DType::f64: return fn.template operator()<double>();
    case DType::i64: return fn.template operator()<int64_t>();
  }
  KILN_FAIL("dispatch: unknown dtype ", static_cast<int>(dtype));
}

/// Like dispatch, for ops that are defined on f32 and f64 only; `op` names the op in the error.
template <class Fn>
decltype(auto) dispatch_floating(DType dtype, const char* op, Fn&& fn) {
  switch (dtype) {
    case DType::f32: return fn.template operator()<float>();
    case DType::f64: return fn.template operator()<double>();
    default: break;
  }
  KILN_FAIL(op, ": expected a floating tensor (f32 or f64), got ", dtype_name(dtype));
}

}  // namespace kiln
