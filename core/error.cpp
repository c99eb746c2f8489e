#include <kiln/core/error.h>

namespace kiln {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

namespace detail {
void throw_check_failure(const std::string& message, const char* condition) {
  throw Error(message + " (check failed: " + condition + ")");
}
}  // namespace detail

}  // namespace kiln
