// operator<< for tensors, in PyTorch's style:
//   tensor([[ 1.0000, -2.5000],
//           [ 0.0000,  3.0000]], dtype=f64, grad_fn=<MulBackward>)
//
// One number format serves the whole tensor, chosen as PyTorch chooses it: floats that are all
// integral print as "3.", a wide range of magnitudes (max / min > 1000, max > 1e8, or min < 1e-4)
// prints every element as "1.2346e+05", and the rest as "0.5000". Columns are right-aligned, and
// tensors of more than 1000 elements show only three items at each end of every dim.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <string>

#include <kiln/core/tensor.h>

namespace kiln {

std::ostream& operator<<(std::ostream& out, DType dtype) { return out << dtype_name(dtype); }

namespace {

constexpr int64_t kEdgeItems = 3;     // elements shown at each end of a long dim
constexpr int64_t kSummarizeAbove = 1000;

enum class Style { integer, integral_float, fixed, scientific };

std::string format_float(double v, Style style) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  switch (style) {
    case Style::integral_float: std::snprintf(buf, sizeof buf, "%.0f.", v); break;
    case Style::scientific: std::snprintf(buf, sizeof buf, "%.4e", v); break;
    default: std::snprintf(buf, sizeof buf, "%.4f", v); break;
  }
  return buf;
}

// Calls fn(flat) for every element shown, in row-major order; flat indexes the contiguous layout.
template <class Fn>
void for_each_shown(const Shape& shape, const Shape& strides, size_t dim, int64_t base,
                    bool summarize, Fn&& fn) {
  if (dim == shape.size()) return fn(base);
  const int64_t n = shape[dim];
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) i = n - kEdgeItems;
    for_each_shown(shape, strides, dim + 1, base + i * strides[dim], summarize, fn);
  }
}

struct Printer {
  const Shape& shape;
  Shape strides;  // of the contiguous layout
  bool summarize;
  size_t width;
  int indent;
  const std::vector<std::string>& text;  // formatted elements, in for_each_shown order
  size_t next = 0;

  void print(std::ostream& out, size_t dim) {
    if (dim == shape.size()) {
      const std::string& s = text[next++];
      out << std::string(width > s.size() ? width - s.size() : 0, ' ') << s;
      return;
    }
    const bool last = dim + 1 == shape.size();
    // Between rows: a comma, a newline per remaining dim, and the indent of this level.
    std::string row_separator(1, ',');
    row_separator.append(shape.size() - dim - 1, '\n');
    row_separator.append(indent + dim + 1, ' ');
    out << '[';
    const int64_t n = shape[dim];
    for (int64_t i = 0; i < n; ++i) {
      if (i > 0) out << (last ? ", " : row_separator);
      if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) {
        out << (last ? " ..." : "...");
        i = n - kEdgeItems - 1;
        continue;
      }
      print(out, dim + 1);
    }
    out << ']';
  }
};

}  // namespace

std::ostream& operator<<(std::ostream& out, const Tensor& t) {
  if (!t.defined()) return out << "tensor(undefined)";
  const Shape& shape = t.shape();
  const Shape strides = contiguous_strides(shape);
  const bool summarize = t.numel() > kSummarizeAbove;
  std::vector<std::string> text;
  size_t width = 0;  // of the widest integer, or of the widest non-zero finite float (as PyTorch)
  if (t.dtype() == DType::i64) {
    const std::vector<int64_t> values = t.to_vector<int64_t>();
    for_each_shown(shape, strides, 0, 0, summarize, [&](int64_t i) { text.push_back(std::to_string(values[i])); });
    for (const std::string& s : text) width = std::max(width, s.size());
  } else {
    const std::vector<double> values = t.to_vector<double>();
    std::vector<double> shown;
    for_each_shown(shape, strides, 0, 0, summarize, [&](int64_t i) { shown.push_back(values[i]); });
    bool integral = true;
    double lo = INFINITY, hi = 0;  // smallest and largest non-zero finite magnitude
    for (double v : shown) {
      if (!std::isfinite(v)) continue;
      integral &= v == std::ceil(v);
      if (v != 0) {
        lo = std::min(lo, std::fabs(v));
        hi = std::max(hi, std::fabs(v));
      }
    }
    const bool any_nonzero = hi > 0;
    const bool wide = any_nonzero && (hi / lo > 1000 || hi > 1e8);
    Style style = integral ? (wide ? Style::scientific : Style::integral_float)
                           : (wide || (any_nonzero && lo < 1e-4) ? Style::scientific : Style::fixed);
    for (double v : shown) {
      text.push_back(format_float(v, style));
      if (std::isfinite(v) && v != 0) width = std::max(width, text.back().size());
    }
  }

  out << "tensor(";
  if (t.numel() == 0) {
    out << "[]";
    if (shape != Shape{0}) out << ", size=" << shape_str(shape);
  } else {
    Printer{shape, strides, summarize, width, 7, text}.print(out, 0);
  }
  if (t.dtype() == DType::f64) out << ", dtype=" << dtype_name(t.dtype());
  if (t.grad_fn()) out << ", grad_fn=<" << autograd::node_name(*t.grad_fn()) << '>';
  else if (t.requires_grad()) out << ", requires_grad=true";
  return out << ')';
}

}  // namespace kiln
