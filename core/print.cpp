// operator<< for tensors, in PyTorch's style:
//   tensor([[ 1.0000, -2.5000],
//           [ 0.0000,  3.0000]], dtype=f64, grad_fn=<MulBackward>)
//
// One number format serves the whole tensor, chosen as PyTorch chooses it: floats that are all
// integral print as "3.", a wide range of magnitudes (max / min > 1000, max > 1e8, or min < 1e-4)
// prints every element as "1.2346e+05", and the rest as "0.5000". Columns are right-aligned,
// tensors of more than 1000 elements show only three items at each end of every dim, and long
// rows and the suffixes wrap at 80 columns.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <sstream>
#include <string>

#include <kiln/core/tensor.h>

namespace kiln {

std::ostream& operator<<(std::ostream& out, DType dtype) { return out << dtype_name(dtype); }

namespace {

constexpr int64_t kEdgeItems = 3;  // elements shown at each end of a long dim
constexpr int64_t kSummarizeAbove = 1000;
constexpr size_t kLineWidth = 80;
constexpr size_t kPrefix = 7;  // "tensor(": the column of the outermost bracket's contents

enum class Style { integral_float, fixed, scientific };

std::string format_float(double v, Style style) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  switch (style) {
    case Style::integral_float: std::snprintf(buf, sizeof buf, "%.0f.", v); break;
    case Style::scientific: std::snprintf(buf, sizeof buf, "%.4e", v); break;
    case Style::fixed: std::snprintf(buf, sizeof buf, "%.4f", v); break;
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
  bool summarize;
  size_t width;
  const std::vector<std::string>& text;  // formatted elements, in for_each_shown order
  size_t next = 0;

  // The contents of dim `dim`'s bracket start at column kPrefix + dim + 1.
  void print(std::ostream& out, size_t dim) {
    const size_t indent = kPrefix + dim;
    const int64_t n = shape[dim];
    const bool cut = summarize && n > 2 * kEdgeItems;
    out << '[';
    if (dim + 1 == shape.size()) {
      // The innermost dim: right-aligned items, as many per line as fit in kLineWidth.
      std::vector<std::string> items;
      for (int64_t i = 0; i < n; ++i) {
        if (cut && i == kEdgeItems) {
          items.push_back(" ...");
          i = n - kEdgeItems - 1;
          continue;
        }
        const std::string& s = text[next++];
        items.push_back(std::string(width > s.size() ? width - s.size() : 0, ' ') + s);
      }
      const size_t room = kLineWidth > indent ? kLineWidth - indent : 0;
      const size_t per_line = std::max<size_t>(1, room / (width + 2));
      std::string line_break(",\n");
      line_break.append(indent + 1, ' ');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out << (i % per_line == 0 ? line_break : ", ");
        out << items[i];
      }
    } else {
      // Between rows: a comma, a newline per remaining dim, and the indent of the rows.
      std::string row_break(1, ',');
      row_break.append(shape.size() - dim - 1, '\n');
      row_break.append(indent + 1, ' ');
      for (int64_t i = 0; i < n; ++i) {
        if (i > 0) out << row_break;
        if (cut && i == kEdgeItems) {
          out << "...";
          i = n - kEdgeItems - 1;
          continue;
        }
        print(out, dim + 1);
      }
    }
    out << ']';
  }
};

}  // namespace

std::ostream& operator<<(std::ostream& out, const Tensor& t) {
  if (!t.defined()) return out << "tensor(undefined)";
  const Shape& shape = t.shape();
  const Shape strides = contiguous_strides(shape);  // of the row-major values below
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
    const Style style = integral ? (wide ? Style::scientific : Style::integral_float)
                                 : (wide || (any_nonzero && lo < 1e-4) ? Style::scientific : Style::fixed);
    for (double v : shown) {
      text.push_back(format_float(v, style));
      if (std::isfinite(v) && v != 0) width = std::max(width, text.back().size());
    }
  }

  std::ostringstream body;
  body << "tensor(";
  if (t.numel() == 0) body << "[]";
  else if (t.dim() == 0) body << text[0];
  else Printer{shape, summarize, width, text}.print(body, 0);

  std::vector<std::string> suffixes;
  if (t.numel() == 0 && shape != Shape{0}) suffixes.push_back("size=" + shape_str(shape));
  if (t.dtype() == DType::f64) suffixes.push_back(std::string("dtype=") + dtype_name(t.dtype()));
  if (t.grad_fn()) suffixes.push_back("grad_fn=<" + autograd::node_name(*t.grad_fn()) + ">");
  else if (t.requires_grad()) suffixes.push_back("requires_grad=true");

  // A suffix that would pass kLineWidth starts a new line (PyTorch's _add_suffixes, including its
  // count of the last line's length).
  std::string s = body.str();
  const size_t newline = s.rfind('\n');
  size_t last_line = newline == std::string::npos ? s.size() + 2 : s.size() - newline + 1;
  for (const std::string& suffix : suffixes) {
    if (last_line + suffix.size() + 2 > kLineWidth) {
      s += ",\n" + std::string(kPrefix, ' ') + suffix;
      last_line = kPrefix + suffix.size();
    } else {
      s += ", " + suffix;
      last_line += suffix.size() + 2;
    }
  }
  return out << s << ')';
}

}  // namespace kiln
