// Losses.
//
// 1. The math. Positions i run over the N samples (times d1...dK for the K-dimensional case), x_i
//    is the row of C scores at position i, y_i its label, and M = {i : y_i != ignore_index}.
//
//    Cross entropy with label smoothing eps (PyTorch's formulation):
//      q_i = (1 - eps) one_hot(y_i) + eps / C                       (a distribution: sum_c q_ic = 1)
//      l_i = -sum_c q_ic log softmax(x_i)_c
//          = lse_i - (1 - eps) x_i[y_i] - (eps / C) sum_c x_ic,    lse_i = log sum_c exp(x_ic)
//      and l_i = 0 for i not in M.
//    Reduction: none -> l;  sum -> sum_i l_i;  mean -> sum_i l_i / |M|  (NaN when M is empty).
//    Backward, with s_i = dL/dl_i (none), dL/dL (sum), or dL/dL / |M| (mean):
//      dL/dx_ic = s_i (softmax(x_i)_c - q_ic) = s_i (exp(x_ic - lse_i) - q_ic)   for i in M, else 0
//    which is why forward saves lse: backward needs no second log_softmax. Forward is one pass
//    per position: the max, then sum exp(x - max), in double.
//
//    NLL on log-probabilities z:  l_i = -z_i[y_i] for i in M;  dL/dz_ic = -s_i [c = y_i].
//
//    MSE: l = (a - b)^2 elementwise, reduced; a composition of differentiable ops, so its
//    gradient (2 (a - b) s for a, the negative for b) comes from autograd.
#include <kiln/layers/loss.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <kiln/autograd/function.h>
#include <kiln/autograd/ops.h>
#include <kiln/core/parallel.h>
#include <kiln/core/views.h>

namespace kiln::kernels {

namespace {

// x [N, C, S] seen as positions i = n * S + s, each a row of C values with stride S.
struct ClassLayout {
  int64_t N, C, S;
  int64_t positions() const { return N * S; }
  int64_t row_offset(int64_t i) const { return (i / S) * C * S + i % S; }
};

ClassLayout layout_of(const Shape& x_shape) {
  ClassLayout l{x_shape[0], x_shape[1], 1};
  for (size_t d = 2; d < x_shape.size(); ++d) l.S *= x_shape[d];
  return l;
}

// The per-position losses (double) combined as the reduction asks, into x's dtype.
Tensor reduce_losses(const std::vector<double>& losses, const ClassLayout& l, const Shape& x_shape,
                     nn::Reduction reduction, int64_t count, DType dtype) {
  if (reduction == nn::Reduction::none) {
    Shape out_shape{x_shape[0]};
    out_shape.insert(out_shape.end(), x_shape.begin() + 2, x_shape.end());
    Tensor out = Tensor::empty(out_shape, dtype);
    dispatch_floating(dtype, "loss", [&]<class T>() {
      T* p = out.data_ptr<T>();
      for (int64_t i = 0; i < l.positions(); ++i) p[i] = static_cast<T>(losses[i]);
    });
    return out;
  }
  // sum_i l_i over fixed chunks, combined in chunk order
  const double total = parallel_reduce(
      int64_t{0}, l.positions(), int64_t{1} << 14, 0.0,
      [&](int64_t b, int64_t e) {
        double s = 0;
        for (int64_t i = b; i < e; ++i) s += losses[i];
        return s;
      },
      [](double a, double b) { return a + b; });
  // mean = sum / |M|  (0 / 0 = NaN when every label is ignored, as PyTorch)
  const double value = reduction == nn::Reduction::sum
                           ? total
                           : (count > 0 ? total / static_cast<double>(count)
                                        : std::numeric_limits<double>::quiet_NaN());
  return Tensor::scalar(value, dtype);
}

// s_i: the gradient reaching l_i.
template <class T>
struct LossScale {
  const T* per_position = nullptr;  // Reduction::none
  double scalar = 0;                // sum and mean, already divided by |M| for mean
  double at(int64_t i) const { return per_position ? static_cast<double>(per_position[i]) : scalar; }
};

template <class T>
LossScale<T> loss_scale(const Tensor& grad_loss, nn::Reduction reduction, int64_t count) {
  LossScale<T> s;
  if (reduction == nn::Reduction::none) {
    s.per_position = grad_loss.data_ptr<T>();
  } else {
    s.scalar = static_cast<double>(grad_loss.data_ptr<T>()[0]);
    // d(sum / |M|) / dl_i = 1 / |M|
    if (reduction == nn::Reduction::mean) s.scalar /= static_cast<double>(count);
  }
  return s;
}

}  // namespace

// 2. Forward kernels.

CrossEntropyResult cross_entropy_forward(const Tensor& x, const Tensor& labels,
                                         const nn::CrossEntropyOptions& options) {
  const ClassLayout l = layout_of(x.shape());
  const int64_t* py = labels.data_ptr<int64_t>();
  const double eps = options.label_smoothing;
  CrossEntropyResult r;
  r.logsumexp = Tensor::empty({l.N, l.S}, DType::f64);
  double* plse = r.logsumexp.data_ptr<double>();
  std::vector<double> losses(static_cast<size_t>(l.positions()));
  dispatch_floating(x.dtype(), "cross_entropy", [&]<class T>() {
    const T* px = x.data_ptr<T>();
    parallel_for(0, l.positions(), grain_for(l.C), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t label = py[i];
        if (label == options.ignore_index) {
          losses[i] = 0;
          plse[i] = 0;
          continue;
        }
        const T* row = px + l.row_offset(i);
        // lse = m + log sum_c exp(x_c - m),  m = max_c x_c
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t c = 0; c < l.C; ++c) m = std::max(m, static_cast<double>(row[c * l.S]));
        double sum_exp = 0, sum_x = 0;
        for (int64_t c = 0; c < l.C; ++c) {
          const double v = static_cast<double>(row[c * l.S]);
          sum_exp += std::exp(v - m);
          sum_x += v;
        }
        const double lse = m + std::log(sum_exp);
        plse[i] = lse;
        // l = lse - (1 - eps) x_y - (eps / C) sum_c x_c
        double loss = lse - (1 - eps) * static_cast<double>(row[label * l.S]);
        if (eps > 0) loss -= eps / static_cast<double>(l.C) * sum_x;
        losses[i] = loss;
      }
    });
  });
  // |M|
  r.count = 0;
  for (int64_t i = 0; i < l.positions(); ++i) r.count += py[i] != options.ignore_index;
  r.loss = reduce_losses(losses, l, x.shape(), options.reduction, r.count, x.dtype());
  return r;
}

Tensor nll_loss_forward(const Tensor& z, const Tensor& labels, const nn::NLLLossOptions& options,
                        int64_t& count) {
  const ClassLayout l = layout_of(z.shape());
  const int64_t* py = labels.data_ptr<int64_t>();
  std::vector<double> losses(static_cast<size_t>(l.positions()));
  count = 0;
  dispatch_floating(z.dtype(), "nll_loss", [&]<class T>() {
    const T* pz = z.data_ptr<T>();
    for (int64_t i = 0; i < l.positions(); ++i) {
      const bool kept = py[i] != options.ignore_index;
      // l = -z[y]
      losses[i] = kept ? -static_cast<double>(pz[l.row_offset(i) + py[i] * l.S]) : 0.0;
      count += kept;
    }
  });
  return reduce_losses(losses, l, z.shape(), options.reduction, count, z.dtype());
}

// 3. Backward kernels.

Tensor cross_entropy_backward(const Tensor& grad_loss, const Tensor& x, const Tensor& labels,
                              const Tensor& logsumexp, int64_t count,
                              const nn::CrossEntropyOptions& options) {
  const ClassLayout l = layout_of(x.shape());
  const int64_t* py = labels.data_ptr<int64_t>();
  const double* plse = logsumexp.data_ptr<double>();
  const double eps = options.label_smoothing;
  const double uniform = eps / static_cast<double>(l.C);  // eps / C, the smoothed part of q
  Tensor grad_x = Tensor::empty(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), "cross_entropy backward", [&]<class T>() {
    const T* px = x.data_ptr<T>();
    T* pg = grad_x.data_ptr<T>();
    const LossScale<T> scale = loss_scale<T>(grad_loss, options.reduction, count);
    parallel_for(0, l.positions(), grain_for(l.C), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t label = py[i];
        const T* row = px + l.row_offset(i);
        T* grad_row = pg + l.row_offset(i);
        if (label == options.ignore_index) {
          for (int64_t c = 0; c < l.C; ++c) grad_row[c * l.S] = T(0);
          continue;
        }
        const double s = scale.at(i);
        // dl/dx_c = softmax_c - q_c,  softmax_c = exp(x_c - lse)
        for (int64_t c = 0; c < l.C; ++c) {
          const double q = uniform + (c == label ? 1 - eps : 0.0);
          const double softmax = std::exp(static_cast<double>(row[c * l.S]) - plse[i]);
          grad_row[c * l.S] = static_cast<T>(s * (softmax - q));
        }
      }
    });
  });
  return grad_x;
}

Tensor nll_loss_backward(const Tensor& grad_loss, const Shape& x_shape, const Tensor& labels,
                         int64_t count, const nn::NLLLossOptions& options) {
  const ClassLayout l = layout_of(x_shape);
  const int64_t* py = labels.data_ptr<int64_t>();
  Tensor grad_z = Tensor::zeros(x_shape, grad_loss.dtype());
  dispatch_floating(grad_loss.dtype(), "nll_loss backward", [&]<class T>() {
    T* pg = grad_z.data_ptr<T>();
    const LossScale<T> scale = loss_scale<T>(grad_loss, options.reduction, count);
    for (int64_t i = 0; i < l.positions(); ++i) {
      // d(-z[y]) / dz[y] = -1
      if (py[i] != options.ignore_index)
        pg[l.row_offset(i) + py[i] * l.S] = static_cast<T>(-scale.at(i));
    }
  });
  return grad_z;
}

}  // namespace kiln::kernels

namespace kiln::nn {

namespace functional {

namespace {

// 4. The differentiable functions (grad_fn: CrossEntropyBackward, NllLossBackward). Both take
//    a contiguous x [N, C, ...] and contiguous labels [N, ...].
struct CrossEntropy : autograd::Function<CrossEntropy> {
  static Tensor forward(autograd::Context& ctx, const Tensor& logits, const Tensor& labels,
                        CrossEntropyOptions options) {
    kernels::CrossEntropyResult r = kernels::cross_entropy_forward(logits, labels, options);
    ctx.save_for_backward({logits, labels, r.logsumexp});
    ctx.saved_data["options"] = options;
    ctx.saved_data["count"] = r.count;
    return r.loss;
  }
  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& g) {
    auto s = ctx.saved();
    return {kernels::cross_entropy_backward(kernels::contiguous(g[0]), s[0], s[1], s[2],
                                            std::any_cast<int64_t>(ctx.saved_data["count"]),
                                            std::any_cast<CrossEntropyOptions>(ctx.saved_data["options"])),
            Tensor()};
  }
};

struct NllLoss : autograd::Function<NllLoss> {
  static Tensor forward(autograd::Context& ctx, const Tensor& log_probs, const Tensor& labels,
                        NLLLossOptions options) {
    int64_t count = 0;
    Tensor loss = kernels::nll_loss_forward(log_probs, labels, options, count);
    ctx.save_for_backward({labels});
    ctx.saved_data["x_shape"] = log_probs.shape();
    ctx.saved_data["options"] = options;
    ctx.saved_data["count"] = count;
    return loss;
  }
  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& g) {
    return {kernels::nll_loss_backward(kernels::contiguous(g[0]),
                                       std::any_cast<Shape>(ctx.saved_data["x_shape"]),
                                       ctx.saved()[0], std::any_cast<int64_t>(ctx.saved_data["count"]),
                                       std::any_cast<NLLLossOptions>(ctx.saved_data["options"])),
            Tensor()};
  }
};

// Checks x [N, C, d...] against labels [N, d...] and every label against [0, C) or ignore_index.
// Returns the labels, contiguous.
Tensor check_class_inputs(const Tensor& x, const Tensor& labels, int64_t ignore_index,
                          const char* op, const char* x_name) {
  KILN_CHECK(x.defined() && labels.defined(), op, ": the ", x_name, " and the labels must be defined");
  KILN_CHECK(x.dim() >= 2, op, ": expected ", x_name, " [N, C] or [N, C, d1, ...], got shape ",
             x.shape());
  KILN_CHECK(is_floating(x.dtype()), op, ": expected floating ", x_name, " (f32 or f64), got ",
             dtype_name(x.dtype()));
  KILN_CHECK(labels.dtype() == DType::i64, op, ": expected labels as i64 class indices, got ",
             dtype_name(labels.dtype()), " of shape ", labels.shape());
  Shape expected{x.size(0)};
  expected.insert(expected.end(), x.shape().begin() + 2, x.shape().end());
  KILN_CHECK(labels.shape() == expected, op, ": ", x_name, " of shape ", x.shape(),
             " need labels of shape ", expected, ", got ", labels.shape());
  const int64_t C = x.size(1);
  Tensor y = kernels::contiguous(labels);
  const int64_t* py = y.data_ptr<int64_t>();
  for (int64_t i = 0; i < y.numel(); ++i) {
    const int64_t label = py[i];
    if (label == ignore_index || (label >= 0 && label < C)) continue;
    // The multi-index of position i within the labels.
    Shape index(expected.size());
    for (int64_t d = static_cast<int64_t>(expected.size()) - 1, rest = i; d >= 0; --d) {
      index[d] = rest % expected[d];
      rest /= expected[d];
    }
    KILN_FAIL(op, ": label ", label, " at index ", index, " is out of range for C = ", C,
              " classes (expected 0 <= label < ", C, ", or ignore_index ", ignore_index, ")");
  }
  return y;
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& options) {
  KILN_CHECK(options.label_smoothing >= 0 && options.label_smoothing <= 1, "cross_entropy:"
             " label_smoothing must be in [0, 1], got ", options.label_smoothing);
  Tensor y = check_class_inputs(logits, labels, options.ignore_index, "cross_entropy", "logits");
  return CrossEntropy::apply(kiln::contiguous(logits), y, options);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& labels, const NLLLossOptions& options) {
  Tensor y = check_class_inputs(log_probs, labels, options.ignore_index, "nll_loss", "log_probs");
  return NllLoss::apply(kiln::contiguous(log_probs), y, options);
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  KILN_CHECK(input.defined() && target.defined(), "mse_loss: the input and the target must be defined");
  KILN_CHECK(input.shape() == target.shape(), "mse_loss: the input ", input.shape(),
             " and the target ", target.shape(), " must have the same shape");
  KILN_CHECK(is_floating(input.dtype()) && input.dtype() == target.dtype(), "mse_loss: expected"
             " floating input and target of one dtype, got ", dtype_name(input.dtype()), " and ",
             dtype_name(target.dtype()));
  // l = (a - b)^2
  Tensor diff = input - target;
  Tensor squared = diff * diff;
  switch (reduction) {
    case Reduction::none: return squared;
    case Reduction::sum: return kiln::sum(squared);
    case Reduction::mean: return kiln::mean(squared);
  }
  KILN_FAIL("mse_loss: unknown reduction ", static_cast<int>(reduction));
}

}  // namespace functional

// 5. The Modules.
Tensor CrossEntropyLoss::forward(const Tensor& logits, const Tensor& labels) {
  return functional::cross_entropy(logits, labels, options);
}

Tensor NLLLoss::forward(const Tensor& log_probs, const Tensor& labels) {
  return functional::nll_loss(log_probs, labels, options);
}

Tensor MSELoss::forward(const Tensor& input, const Tensor& target) {
  return functional::mse_loss(input, target, reduction);
}

}  // namespace kiln::nn
