// operator<< for tensors, in PyTorch's style:
//   tensor([[ 1.0000, -2.5000],
//           [ 0.0000,  3.0000]], dtype=f64, requires_grad=true)
#include <cmath>
#include <cstdio>
#include <ostream>
#include <string>

#include <kiln/core/tensor.h>
#include <kiln/core/views.h>

namespace kiln {

std::ostream& operator<<(std::ostream& out, DType dtype) { return out << dtype_name(dtype); }

namespace {

constexpr int64_t kEdgeItems = 3;     // elements shown at each end of a long dim
constexpr int64_t kSummarizeAbove = 1000;

std::string format_value(double v, bool integral) {
  char buf[64];
  if (integral) std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  else if (std::isnan(v)) std::snprintf(buf, sizeof buf, "nan");
  else if (std::isinf(v)) std::snprintf(buf, sizeof buf, v > 0 ? "inf" : "-inf");
  else if (v != 0 && (std::fabs(v) >= 1e8 || std::fabs(v) < 1e-4)) std::snprintf(buf, sizeof buf, "%.4e", v);
  else std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

void print_dim(std::ostream& out, const std::vector<double>& values, const Shape& shape,
               const Shape& strides, int64_t base, size_t dim, bool integral, bool summarize,
               size_t width, int indent) {
  if (dim == shape.size()) {
    std::string s = format_value(values[static_cast<size_t>(base)], integral);
    out << std::string(width > s.size() ? width - s.size() : 0, ' ') << s;
    return;
  }
  out << '[';
  const int64_t n = shape[dim];
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) {
      out << (dim + 1 == shape.size() ? "..., " : "...,\n" + std::string(indent + dim + 1, ' '));
      i = n - kEdgeItems - 1;
      continue;
    }
    print_dim(out, values, shape, strides, base + i * strides[dim], dim + 1, integral, summarize,
              width, indent);
    if (i + 1 < n) {
      if (dim + 1 == shape.size()) out << ", ";
      else out << ',' << std::string(shape.size() - dim - 1, '\n') << std::string(indent + dim + 1, ' ');
    }
  }
  out << ']';
}

}  // namespace

std::ostream& operator<<(std::ostream& out, const Tensor& t) {
  if (!t.defined()) return out << "tensor(undefined)";
  const std::vector<double> values = t.to_vector<double>();
  const bool integral = t.dtype() == DType::i64;
  const bool summarize = t.numel() > kSummarizeAbove;
  size_t width = 0;
  for (double v : values) width = std::max(width, format_value(v, integral).size());
  out << "tensor(";
  print_dim(out, values, t.shape(), contiguous_strides(t.shape()), 0, 0, integral, summarize,
            width, 7);
  if (t.dtype() != DType::f32) out << ", dtype=" << dtype_name(t.dtype());
  if (t.numel() == 0) out << ", size=" << shape_str(t.shape());
  if (t.requires_grad() && t.is_leaf()) out << ", requires_grad=true";
  return out << ')';
}

}  // namespace kiln
