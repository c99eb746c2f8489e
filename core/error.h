/// \file
/// kiln::Error and KILN_CHECK: the one way the library reports bad input.
///
///     KILN_CHECK(x.dim() == 4, "conv2d: expected a 4-D input [N, C, H, W], got shape ", x.shape());
///
/// throws kiln::Error("conv2d: expected a 4-D input [N, C, H, W], got shape [2, 3]
/// (check failed: x.dim() == 4)"). The library never aborts or exits.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln {

/// Every error the library raises. what() says what was expected and what was got.
class Error : public std::runtime_error {
 public:
  /// An error whose what() is `message`.
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// A kiln::Error for input that is not there at all: a dataset reader that finds none of the files
/// it looks for throws this, so a caller can tell "no data here" from "bad data here" without
/// reading the message.
class FileNotFoundError : public Error {
 public:
  /// An error whose what() is `message`.
  explicit FileNotFoundError(const std::string& message) : Error(message) {}
};

/// Formats a shape the way messages and printing show it: "[2, 3, 4]".
std::string shape_str(const std::vector<int64_t>& shape);

namespace detail {
inline void append(std::ostringstream&) {}
template <class T, class... Rest>
void append(std::ostringstream& out, const T& first, const Rest&... rest) {
  if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    out << shape_str(first);
  } else {
    out << first;
  }
  append(out, rest...);
}
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  append(out, parts...);
  return out.str();
}
[[noreturn]] void throw_check_failure(const std::string& message, const char* condition);
}  // namespace detail

}  // namespace kiln

/// Throws kiln::Error built from the message parts (shapes print as [a, b]) when cond is false.
#define KILN_CHECK(cond, ...)                                                          \
  do {                                                                                 \
    if (!(cond)) [[unlikely]] {                                                        \
      ::kiln::detail::throw_check_failure(::kiln::detail::concat(__VA_ARGS__), #cond); \
    }                                                                                  \
  } while (0)

/// Throws kiln::Error built from the message parts, unconditionally.
#define KILN_FAIL(...) throw ::kiln::Error(::kiln::detail::concat(__VA_ARGS__))
