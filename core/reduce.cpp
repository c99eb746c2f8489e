#include <kiln/core/reduce.h>

#include <algorithm>
#include <cmath>

#include <kiln/core/parallel.h>
#include <kiln/core/views.h>

namespace kiln::kernels {

std::vector<bool> reduction_mask(const std::vector<int64_t>& dims, int64_t ndim, const char* op) {
  std::vector<bool> mask(static_cast<size_t>(ndim), dims.empty());
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, ndim, op);
    if (ndim == 0) continue;
    KILN_CHECK(!mask[w], op, ": dim ", d, " appears more than once in ", Shape(dims));
    mask[w] = true;
  }
  return mask;
}

Shape reduced_shape(const Shape& shape, const std::vector<bool>& mask, bool keepdim) {
  Shape out;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (!mask[d]) out.push_back(shape[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

namespace {

// `t` rearranged as a contiguous [outer, inner] matrix: kept dims first, reduced dims last.
// No copy when t is contiguous and the reduced dims are already the trailing ones.
struct RowsView {
  Tensor data;
  int64_t outer = 1, inner = 1;
};

RowsView as_rows(const Tensor& t, const std::vector<bool>& mask) {
  std::vector<int64_t> order;
  RowsView r;
  for (int64_t d = 0; d < t.dim(); ++d)
    if (!mask[d]) { order.push_back(d); r.outer *= t.shape()[d]; }
  for (int64_t d = 0; d < t.dim(); ++d)
    if (mask[d]) { order.push_back(d); r.inner *= t.shape()[d]; }
  r.data = contiguous(permute(t, order));
  return r;
}

// True when t is contiguous and every reduced dim precedes every kept dim: then the reduction is
// over rows of a [inner, outer] matrix and runs column-wise without a copy.
bool reduces_leading_dims(const Tensor& t, const std::vector<bool>& mask) {
  if (!t.is_contiguous()) return false;
  bool seen_kept = false;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (!mask[d]) seen_kept = true;
    else if (seen_kept && t.shape()[d] != 1) return false;
  }
  return true;
}

template <class T>
using Acc = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;

constexpr int64_t kInnerChunk = 1 << 15;

// Sum of each row of a contiguous [outer, inner] matrix into out[outer], accumulated in Acc<T>.
// A single long row is split into fixed chunks whose partials add in order.
template <class T>
void sum_rows(const T* x, int64_t outer, int64_t inner, Acc<T>* out) {
  if (outer == 1 && inner > kInnerChunk) {
    out[0] = parallel_reduce(
        0, inner, kInnerChunk, Acc<T>(0),
        [&](int64_t b, int64_t e) {
          Acc<T> s = 0;
          for (int64_t i = b; i < e; ++i) s += x[i];
          return s;
        },
        [](Acc<T> a, Acc<T> b) { return a + b; });
    return;
  }
  parallel_for(0, outer, grain_for(inner), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* row = x + r * inner;
      Acc<T> s = 0;
      for (int64_t i = 0; i < inner; ++i) s += row[i];
      out[r] = s;
    }
  });
}

// Column sums of a contiguous [inner, outer] matrix: out[j] = sum_i x[i, j], i in order.
// A single column is one long row. A few long columns are cut into fixed blocks of rows whose
// partial column sums add in block order.
template <class T>
void sum_columns(const T* x, int64_t inner, int64_t outer, Acc<T>* out) {
  if (outer == 1) return sum_rows<T>(x, 1, inner, out);
  const int64_t block_rows = std::max<int64_t>(1, kInnerChunk / outer);
  const int64_t blocks = (inner + block_rows - 1) / block_rows;
  if (outer < 256 && blocks > 1) {
    // partial[b, j] = sum of x[i, j] over the rows i of block b
    std::vector<Acc<T>> partial(static_cast<size_t>(blocks * outer), Acc<T>(0));
    parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        Acc<T>* p = partial.data() + b * outer;
        const int64_t end = std::min(inner, (b + 1) * block_rows);
        for (int64_t i = b * block_rows; i < end; ++i) {
          const T* row = x + i * outer;
          for (int64_t c = 0; c < outer; ++c) p[c] += row[c];
        }
      }
    });
    for (int64_t c = 0; c < outer; ++c) out[c] = 0;
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t c = 0; c < outer; ++c) out[c] += partial[b * outer + c];
    return;
  }
  parallel_for(0, outer, 256, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) out[c] = 0;
    for (int64_t i = 0; i < inner; ++i) {
      const T* row = x + i * outer;
      for (int64_t c = c0; c < c1; ++c) out[c] += row[c];
    }
  });
}

template <class T>
std::vector<Acc<T>> sums(const Tensor& t, const std::vector<bool>& mask, int64_t& outer,
                         int64_t& inner) {
  if (reduces_leading_dims(t, mask)) {
    outer = 1;
    inner = 1;
    for (int64_t d = 0; d < t.dim(); ++d) (mask[d] ? inner : outer) *= t.shape()[d];
    std::vector<Acc<T>> acc(static_cast<size_t>(outer));
    sum_columns<T>(t.data_ptr<T>(), inner, outer, acc.data());
    return acc;
  }
  RowsView r = as_rows(t, mask);
  outer = r.outer;
  inner = r.inner;
  std::vector<Acc<T>> acc(static_cast<size_t>(outer));
  sum_rows<T>(r.data.data_ptr<T>(), outer, inner, acc.data());
  return acc;
}

template <class T, bool kMax>
void extreme_rows(const T* x, int64_t outer, int64_t inner, T* out) {
  parallel_for(0, outer, grain_for(inner), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* row = x + r * inner;
      T best = row[0];
      for (int64_t i = 1; i < inner; ++i) {
        T v = row[i];
        if constexpr (std::is_floating_point_v<T>) {
          if (std::isnan(best)) break;
          if (std::isnan(v)) { best = v; break; }
        }
        if (kMax ? v > best : v < best) best = v;
      }
      out[r] = best;
    }
  });
}

}  // namespace

Tensor reduce(Reduce op, const Tensor& t, const std::vector<int64_t>& dims, bool keepdim) {
  static const char* names[] = {"sum", "mean", "max", "min"};
  const char* name = names[static_cast<int>(op)];
  std::vector<bool> mask = reduction_mask(dims, t.dim(), name);
  Shape out_shape = reduced_shape(t.shape(), mask, keepdim);

  if (op == Reduce::max || op == Reduce::min) {
    for (int64_t d = 0; d < t.dim(); ++d)
      KILN_CHECK(!mask[d] || t.shape()[d] > 0, name, ": cannot reduce over dim ", d,
                 " of size 0 in shape ", t.shape(), " (there is no identity)");
    RowsView r = as_rows(t, mask);
    Tensor out = Tensor::empty(out_shape, t.dtype());
    dispatch(t.dtype(), [&]<class T>() {
      if (op == Reduce::max) extreme_rows<T, true>(r.data.data_ptr<T>(), r.outer, r.inner, out.data_ptr<T>());
      else extreme_rows<T, false>(r.data.data_ptr<T>(), r.outer, r.inner, out.data_ptr<T>());
    });
    return out;
  }

  if (op == Reduce::mean)
    KILN_CHECK(is_floating(t.dtype()), "mean: expected a floating tensor, got ",
               dtype_name(t.dtype()), " of shape ", t.shape());
  Tensor out = Tensor::empty(out_shape, t.dtype());
  dispatch(t.dtype(), [&]<class T>() {
    int64_t outer = 0, inner = 0;
    std::vector<Acc<T>> acc = sums<T>(t, mask, outer, inner);
    T* o = out.data_ptr<T>();
    for (int64_t i = 0; i < outer; ++i) {
      if (op == Reduce::mean) {
        o[i] = static_cast<T>(static_cast<double>(acc[i]) / static_cast<double>(inner));
      } else {
        o[i] = static_cast<T>(acc[i]);
      }
    }
  });
  return out;
}

Tensor var(const Tensor& t, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  KILN_CHECK(is_floating(t.dtype()), "var: expected a floating tensor, got ",
             dtype_name(t.dtype()), " of shape ", t.shape());
  KILN_CHECK(correction >= 0, "var: expected correction >= 0, got ", correction);
  std::vector<bool> mask = reduction_mask(dims, t.dim(), "var");
  RowsView r = as_rows(t, mask);
  Tensor out = Tensor::empty(reduced_shape(t.shape(), mask, keepdim), t.dtype());
  dispatch_floating(t.dtype(), "var", [&]<class T>() {
    const T* x = r.data.data_ptr<T>();
    T* o = out.data_ptr<T>();
    const int64_t inner = r.inner;
    parallel_for(0, r.outer, grain_for(2 * inner), [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        const T* v = x + row * inner;
        // mean = sum(x) / n;  var = sum((x - mean)^2) / (n - correction)
        double sum = 0;
        for (int64_t i = 0; i < inner; ++i) sum += v[i];
        const double mean = sum / static_cast<double>(inner);
        double ss = 0;
        for (int64_t i = 0; i < inner; ++i) {
          double d = v[i] - mean;
          ss += d * d;
        }
        // n - correction <= 0 divides by 0, as PyTorch: inf, or NaN when ss is 0 too.
        const double denom = static_cast<double>(std::max<int64_t>(inner - correction, 0));
        o[row] = static_cast<T>(ss / denom);
      }
    });
  });
  return out;
}

namespace {
template <bool kMax>
Tensor arg_extreme(const Tensor& t, int64_t dim, bool keepdim, const char* name) {
  dim = wrap_dim(dim, t.dim(), name);
  std::vector<bool> mask(static_cast<size_t>(t.dim()), false);
  if (t.dim() > 0) {
    mask[dim] = true;
    KILN_CHECK(t.shape()[dim] > 0, name, ": cannot reduce over dim ", dim,
               " of size 0 in shape ", t.shape());
  }
  RowsView r = as_rows(t, mask);
  Tensor out = Tensor::empty(reduced_shape(t.shape(), mask, keepdim), DType::i64);
  int64_t* o = out.data_ptr<int64_t>();
  dispatch(t.dtype(), [&]<class T>() {
    const T* x = r.data.data_ptr<T>();
    parallel_for(0, r.outer, grain_for(r.inner), [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        const T* v = x + row * r.inner;
        int64_t best = 0;
        for (int64_t i = 1; i < r.inner; ++i) {
          if constexpr (std::is_floating_point_v<T>) {
            if (std::isnan(v[best])) break;
            if (std::isnan(v[i])) { best = i; break; }
          }
          if (kMax ? v[i] > v[best] : v[i] < v[best]) best = i;
        }
        o[row] = best;
      }
    });
  });
  return out;
}
}  // namespace

Tensor argmax(const Tensor& t, int64_t dim, bool keepdim) {
  return arg_extreme<true>(t, dim, keepdim, "argmax");
}
Tensor argmin(const Tensor& t, int64_t dim, bool keepdim) {
  return arg_extreme<false>(t, dim, keepdim, "argmin");
}

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  const int64_t lead = t.dim() - static_cast<int64_t>(shape.size());
  KILN_CHECK(lead >= 0, "sum_to: cannot sum shape ", t.shape(), " to the larger rank of ", shape);
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (d < lead) { dims.push_back(d); continue; }
    const int64_t want = shape[d - lead];
    KILN_CHECK(want == t.shape()[d] || want == 1, "sum_to: shape ", shape,
               " does not broadcast to ", t.shape());
    if (want == 1 && t.shape()[d] != 1) dims.push_back(d);
  }
  if (dims.empty()) return view(contiguous(t), shape);
  Tensor s = reduce(Reduce::sum, t, dims, /*keepdim=*/true);
  return view(s, shape);
}

}  // namespace kiln::kernels
