#include <kiln/optim/clip_grad.h>

#include <algorithm>

#include <kiln/core/elementwise.h>
#include <kiln/core/parallel.h>
#include <kiln/core/views.h>
#include <kiln/optim/update.h>

namespace kiln::optim {

namespace {

// The contiguous gradients of the parameters that have one.
std::vector<Tensor> gradients(const std::vector<Tensor>& parameters, const char* op) {
  std::vector<Tensor> grads;
  for (size_t i = 0; i < parameters.size(); ++i) {
    KILN_CHECK(parameters[i].defined(), op, ": parameter ", i, " is an undefined tensor");
    Tensor g = parameters[i].grad();
    if (!g.defined()) continue;
    KILN_CHECK(is_floating(g.dtype()), op, ": the gradient of parameter ", i, " is ",
               dtype_name(g.dtype()), "; expected f32 or f64");
    grads.push_back(g);
  }
  return grads;
}

// Applies fn(T* data, int64_t n) to each gradient, through a contiguous buffer when needed, and
// records the in-place write.
template <class Fn>
void update_each(const std::vector<Tensor>& grads, Fn&& fn) {
  for (const Tensor& g : grads) {
    Tensor work = kernels::contiguous(g);
    dispatch_floating(g.dtype(), "clip_grad", [&]<class T>() { fn(work.data_ptr<T>(), work.numel()); });
    if (!work.is_same(g)) kernels::copy(g, work);
    g.unsafe_impl()->storage->bump_version();
  }
}

}  // namespace

double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  // A negative max_norm would flip the gradients' signs; as clip_grad_value_, refuse it.
  KILN_CHECK(max_norm >= 0, "clip_grad_norm_: max_norm must be >= 0, got ", max_norm);
  KILN_CHECK(norm_type > 0, "clip_grad_norm_: norm_type must be > 0 (or infinity), got ", norm_type);
  const std::vector<Tensor> grads = gradients(parameters, "clip_grad_norm_");
  if (grads.empty()) return 0;
  const bool inf_norm = std::isinf(norm_type);
  // sum |g|^p (or max |g|) over each gradient, in fixed chunks combined in order.
  double accumulated = 0;
  for (const Tensor& g : grads) {
    const Tensor c = kernels::contiguous(g);
    const double partial = dispatch_floating(c.dtype(), "clip_grad_norm_", [&]<class T>() {
      const T* data = c.data_ptr<T>();
      return parallel_reduce(
          int64_t{0}, c.numel(), kUpdateGrain, 0.0,
          [&](int64_t begin, int64_t end) {
            double acc = 0;
            for (int64_t i = begin; i < end; ++i) {
              const double a = std::fabs(static_cast<double>(data[i]));
              if (inf_norm) {
                acc = (a > acc || std::isnan(a)) ? a : acc;
              } else if (norm_type == 2) {
                acc += a * a;
              } else if (norm_type == 1) {
                acc += a;
              } else {
                acc += std::pow(a, norm_type);
              }
            }
            return acc;
          },
          [&](double x, double y) {
            if (inf_norm) return (y > x || std::isnan(y)) ? y : x;
            return x + y;
          });
    });
    accumulated = inf_norm ? ((partial > accumulated || std::isnan(partial)) ? partial : accumulated)
                           : accumulated + partial;
  }
  const double total = inf_norm ? accumulated
                       : norm_type == 2 ? std::sqrt(accumulated)
                       : norm_type == 1 ? accumulated
                                        : std::pow(accumulated, 1 / norm_type);
  KILN_CHECK(!error_if_nonfinite || std::isfinite(total), "clip_grad_norm_: the total norm of order ",
             norm_type, " of the gradients of ", grads.size(), " parameters is ", total,
             ", so they cannot be clipped; pass error_if_nonfinite = false to scale them anyway");
  // coef = max_norm / (total + 1e-6), applied when it is below 1 (or NaN)
  const double coef = max_norm / (total + 1e-6);
  if (!(coef < 1) && !std::isnan(coef)) return total;
  update_each(grads, [&]<class T>(T* data, int64_t n) {
    const T scale = static_cast<T>(coef);
    parallel_for(0, n, kUpdateGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) data[i] *= scale;
    });
  });
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value) {
  KILN_CHECK(clip_value >= 0, "clip_grad_value_: clip_value must be >= 0, got ", clip_value);
  const std::vector<Tensor> grads = gradients(parameters, "clip_grad_value_");
  update_each(grads, [&]<class T>(T* data, int64_t n) {
    const T hi = static_cast<T>(clip_value), lo = -hi;
    parallel_for(0, n, kUpdateGrain, [&](int64_t begin, int64_t end) {
      // clamp(g, -clip, clip), NaN kept as torch.clamp keeps it
      for (int64_t i = begin; i < end; ++i) data[i] = data[i] < lo ? lo : (data[i] > hi ? hi : data[i]);
    });
  });
}

}  // namespace kiln::optim
