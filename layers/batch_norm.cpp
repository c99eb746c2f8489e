// Batch Normalization (Ioffe and Szegedy, 2015).
//
// ---- Formulation --------------------------------------------------------------------------------
// x [N, C, S] (S = H*W for BatchNorm2d, L or 1 for BatchNorm1d). For channel c the set S_i holds
// the M = N*S values x[:, c, :], across the whole batch:
//
//   mu_c     = 1/M sum_{n,s} x                      (batch mean)
//   sigma2_c = 1/M sum_{n,s} (x - mu_c)^2           (biased batch variance, used to normalize)
//   x_hat    = (x - mu_c) / sqrt(sigma2_c + eps)
//   y        = gamma_c x_hat + beta_c
//
// In training the running statistics follow the batch ones:
//   running_mean = (1 - momentum) running_mean + momentum mu_c
//   running_var  = (1 - momentum) running_var  + momentum sigma2_c M / (M - 1)   (unbiased)
// In eval mode mu_c and sigma2_c are replaced by running_mean and running_var, constants.
//
// ---- Backward (training) ------------------------------------------------------------------------
// With g = dL/dy and rstd = 1 / sqrt(sigma2_c + eps), per channel:
//   db_c = sum_{n,s} g            dc_c = sum_{n,s} g (x - mu_c)
//   dL/dbeta_c  = db_c
//   dL/dgamma_c = rstd dc_c
//   dL/dx       = gamma_c rstd (g - db_c/M - (x - mu_c) rstd^2 dc_c/M)
// In eval mode the statistics are constants: dL/dx = gamma_c rstd g.
//
// Two passes over the data each way, statistics in double on values shifted by the channel's
// first element, work split over channels in fixed chunks (bit-identical at any thread count).
#include <kiln/layers/batch_norm.h>
#include <kiln/layers/norm_kernels.h>

#include <cmath>

#include <kiln/autograd/function.h>
#include <kiln/autograd/grad_mode.h>
#include <kiln/core/parallel.h>
#include <kiln/core/views.h>
#include <kiln/layers/repr.h>

namespace kiln::nn {

namespace {

struct BatchGeometry {
  int64_t N, C, S;
  int64_t count() const { return N * S; }
};

// ---- forward kernels -----------------------------------------------------------------------------
// Batch statistics: x [N, C, S] -> mean, var (biased) [C], in double.
template <class T>
void batch_stats(const T* x, const BatchGeometry& d, double* mean, double* var) {
  const int64_t M = d.count();
  parallel_for(0, d.C, grain_for(M), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const double shift = M > 0 ? static_cast<double>(x[c * d.S]) : 0.0;
      double sum = 0, sumsq = 0;
      for (int64_t n = 0; n < d.N; ++n)
        norm_kernels::accumulate_shifted(x + (n * d.C + c) * d.S, d.S, shift, sum, sumsq);
      const double m = sum / static_cast<double>(M);
      mean[c] = shift + m;
      var[c] = std::max(sumsq / static_cast<double>(M) - m * m, 0.0);
    }
  });
}

// y = (x - mean_c) * scale_c + beta_c with scale_c = gamma_c / sqrt(var_c + eps).
template <class T>
void batch_normalize(const T* x, const double* mean, const double* rstd, const T* gamma,
                     const T* beta, const BatchGeometry& d, T* y) {
  const int64_t M = d.count();
  parallel_for(0, d.C, grain_for(M), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const double mu = mean[c];
      const double scale = rstd[c] * (gamma ? static_cast<double>(gamma[c]) : 1.0);
      const double offset = beta ? static_cast<double>(beta[c]) : 0.0;
      for (int64_t n = 0; n < d.N; ++n)
        norm_kernels::normalize_run(x + (n * d.C + c) * d.S, d.S, mu, scale, offset, y + (n * d.C + c) * d.S);
    }
  });
}

// ---- backward kernel -----------------------------------------------------------------------------
// x, dy, dx [N, C, S]; mean, rstd [C]; gamma [C] or null; dgamma, dbeta [C] or null.
// training: the statistics depend on x (the full formula); eval: they are constants.
template <class T>
void batch_norm_backward(const T* x, const T* dy, const double* mean, const double* rstd,
                         const T* gamma, const BatchGeometry& d, bool training, T* dx, T* dgamma,
                         T* dbeta) {
  const int64_t M = d.count();
  parallel_for(0, d.C, grain_for(3 * M), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const double mu = mean[c], r = rstd[c];
      // Pass 1: db = sum g, dc = sum g (x - mu)
      double db = 0, dc = 0;
      for (int64_t n = 0; n < d.N; ++n)
        norm_kernels::accumulate_grad(x + (n * d.C + c) * d.S, dy + (n * d.C + c) * d.S, d.S, mu, db, dc);
      if (dgamma) dgamma[c] = static_cast<T>(r * dc);
      if (dbeta) dbeta[c] = static_cast<T>(db);
      if (!dx) continue;
      // Pass 2: dx = gamma rstd (g - db/M - (x - mu) rstd^2 dc/M)   (training)
      //         dx = gamma rstd g                                   (eval)
      const double scale = r * (gamma ? static_cast<double>(gamma[c]) : 1.0);
      const double inv_m = 1.0 / static_cast<double>(M);
      const double mean_g = training ? db * inv_m : 0.0;
      const double coef_x = training ? r * r * dc * inv_m : 0.0;
      // dx = scale g + (x - mu) (-scale coef_x) + (-scale mean_g)
      for (int64_t n = 0; n < d.N; ++n) {
        const int64_t at = (n * d.C + c) * d.S;
        norm_kernels::grad_input_run(x + at, dy + at, d.S, mu, scale, -scale * coef_x,
                                     -scale * mean_g, dx + at);
      }
    }
  });
}

// ---- differentiable function ---------------------------------------------------------------------

struct BatchNormalize : autograd::Function<BatchNormalize> {
  // running_mean / running_var are updated in place when training and defined.
  static Tensor forward(autograd::Context& ctx, const Tensor& x_in, const Tensor& weight,
                        const Tensor& bias, Tensor running_mean, Tensor running_var,
                        bool training, double momentum, double eps) {
    Tensor x = kernels::contiguous(x_in);
    const BatchGeometry d{x.shape()[0], x.shape()[1],
                          x.shape()[0] * x.shape()[1] == 0 ? 0 : x.numel() / (x.shape()[0] * x.shape()[1])};
    Tensor w = weight.defined() ? kernels::contiguous(kernels::to_dtype(weight, x.dtype())) : Tensor();
    Tensor b = bias.defined() ? kernels::contiguous(kernels::to_dtype(bias, x.dtype())) : Tensor();
    Tensor mean = Tensor::empty({d.C}, DType::f64);
    Tensor rstd = Tensor::empty({d.C}, DType::f64);
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    dispatch_floating(x.dtype(), "batch_norm", [&]<class T>() {
      double* pm = mean.data_ptr<double>();
      double* pr = rstd.data_ptr<double>();
      if (training) {
        std::vector<double> var(static_cast<size_t>(d.C));
        batch_stats<T>(x.data_ptr<T>(), d, pm, var.data());
        for (int64_t c = 0; c < d.C; ++c) pr[c] = 1.0 / std::sqrt(var[c] + eps);
        if (running_mean.defined()) update_running(running_mean, running_var, pm, var.data(), d, momentum);
      } else {
        Tensor rm = kernels::to_dtype(kernels::contiguous(running_mean), DType::f64);
        Tensor rv = kernels::to_dtype(kernels::contiguous(running_var), DType::f64);
        for (int64_t c = 0; c < d.C; ++c) {
          pm[c] = rm.data_ptr<double>()[c];
          pr[c] = 1.0 / std::sqrt(rv.data_ptr<double>()[c] + eps);
        }
      }
      batch_normalize<T>(x.data_ptr<T>(), pm, pr, w.defined() ? w.data_ptr<T>() : nullptr,
                         b.defined() ? b.data_ptr<T>() : nullptr, d, y.data_ptr<T>());
    });
    ctx.save_for_backward({x, w, mean, rstd});
    ctx.saved_data["geometry"] = d;
    ctx.saved_data["training"] = training;
    return y;
  }

  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& grads) {
    auto saved = ctx.saved();
    const Tensor &x = saved[0], &w = saved[1], &mean = saved[2], &rstd = saved[3];
    const auto d = std::any_cast<BatchGeometry>(ctx.saved_data["geometry"]);
    const bool training = std::any_cast<bool>(ctx.saved_data["training"]);
    Tensor dy = kernels::contiguous(grads[0]);
    const bool need_x = ctx.needs_input_grad(0), need_w = ctx.needs_input_grad(1),
               need_b = ctx.needs_input_grad(2);
    Tensor dx = need_x ? Tensor::empty(x.shape(), x.dtype()) : Tensor();
    Tensor dw = need_w ? Tensor::empty({d.C}, x.dtype()) : Tensor();
    Tensor db = need_b ? Tensor::empty({d.C}, x.dtype()) : Tensor();
    dispatch_floating(x.dtype(), "batch_norm", [&]<class T>() {
      batch_norm_backward<T>(x.data_ptr<T>(), dy.data_ptr<T>(), mean.data_ptr<double>(),
                             rstd.data_ptr<double>(), w.defined() ? w.data_ptr<T>() : nullptr, d,
                             training, need_x ? dx.data_ptr<T>() : nullptr,
                             need_w ? dw.data_ptr<T>() : nullptr, need_b ? db.data_ptr<T>() : nullptr);
    });
    return {dx, dw, db, Tensor(), Tensor()};
  }

  // running = (1 - momentum) running + momentum stat, the variance made unbiased by M / (M - 1).
  static void update_running(Tensor& running_mean, Tensor& running_var, const double* mean,
                             const double* var, const BatchGeometry& d, double momentum) {
    const double M = static_cast<double>(d.count());
    const double unbias = M > 1 ? M / (M - 1) : 1.0;
    dispatch_floating(running_mean.dtype(), "batch_norm", [&]<class R>() {
      R* rm = running_mean.data_ptr<R>();
      R* rv = running_var.data_ptr<R>();
      for (int64_t c = 0; c < d.C; ++c) {
        rm[c] = static_cast<R>((1 - momentum) * static_cast<double>(rm[c]) + momentum * mean[c]);
        rv[c] = static_cast<R>((1 - momentum) * static_cast<double>(rv[c]) + momentum * var[c] * unbias);
      }
    });
    running_mean.unsafe_impl()->storage->bump_version();
    running_var.unsafe_impl()->storage->bump_version();
  }
};


}  // namespace

namespace functional {

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps) {
  KILN_CHECK(x.dim() >= 2, "batch_norm: expected an input [N, C, *] with at least 2 dims, got ",
             x.shape());
  KILN_CHECK(is_floating(x.dtype()), "batch_norm: expected a floating input, got ",
             dtype_name(x.dtype()));
  const int64_t C = x.shape()[1];
  for (const auto& [t, name] : {std::pair{&running_mean, "running_mean"}, {&running_var, "running_var"},
                                {&weight, "weight"}, {&bias, "bias"}}) {
    if (t->defined())
      KILN_CHECK(t->shape() == Shape{C}, "batch_norm: expected ", name, " of shape [", C,
                 "] for input ", x.shape(), ", got ", t->shape());
  }
  KILN_CHECK(running_mean.defined() == running_var.defined(), "batch_norm: running_mean and"
             " running_var must be given together");
  if (running_mean.defined())
    KILN_CHECK(is_floating(running_mean.dtype()) && is_floating(running_var.dtype()),
               "batch_norm: running statistics must be floating tensors");
  if (training) {
    const int64_t values_per_channel = C == 0 ? 0 : x.numel() / C;
    KILN_CHECK(values_per_channel > 1, "batch_norm: expected more than 1 value per channel when"
               " training, got input ", x.shape(), " (", values_per_channel, " per channel)");
  } else {
    KILN_CHECK(running_mean.defined(), "batch_norm: eval mode needs running_mean and running_var");
  }
  KILN_CHECK(eps >= 0, "batch_norm: expected eps >= 0, got ", eps);
  return BatchNormalize::apply(x, weight, bias, running_mean, running_var, training, momentum, eps);
}

}  // namespace functional

BatchNorm::BatchNorm(int64_t num_features_, double eps_, double momentum_, bool affine_,
                     bool track_running_stats_)
    : num_features(num_features_),
      eps(eps_),
      momentum(momentum_),
      affine(affine_),
      track_running_stats(track_running_stats_) {
  KILN_CHECK(num_features > 0, "BatchNorm: expected num_features > 0, got ", num_features);
  if (affine) {
    weight = register_parameter("weight", Tensor::ones({num_features}));
    bias = register_parameter("bias", Tensor::zeros({num_features}));
  }
  if (track_running_stats) {
    running_mean = register_buffer("running_mean", Tensor::zeros({num_features}));
    running_var = register_buffer("running_var", Tensor::ones({num_features}));
    num_batches_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}, DType::i64));
  }
}

Tensor BatchNorm::forward(const Tensor& x) {
  check_input(x);
  KILN_CHECK(x.shape()[1] == num_features, type_name(), ": expected ", num_features,
             " channels, got input ", x.shape());
  const bool updating = is_training() && track_running_stats;
  // momentum < 0: a cumulative average, factor 1 / batches seen (PyTorch's momentum=None).
  double factor = momentum;
  if (updating && momentum < 0)
    factor = 1.0 / static_cast<double>(num_batches_tracked.item<int64_t>() + 1);
  // Batch statistics in training, and in eval too when no running statistics are kept; in
  // training the running statistics are updated, in eval they normalize.
  const bool use_batch_stats = is_training() || !track_running_stats;
  Tensor y = functional::batch_norm(x, track_running_stats ? running_mean : Tensor(),
                                    track_running_stats ? running_var : Tensor(), weight, bias,
                                    use_batch_stats, factor, eps);
  if (updating) {
    NoGradGuard no_grad;
    num_batches_tracked.add_(Tensor::scalar(1, DType::i64));
  }
  return y;
}

std::string BatchNorm::extra_repr() const {
  return std::to_string(num_features) + ", eps=" + repr_float(eps) + ", momentum=" +
         (momentum < 0 ? std::string("None") : repr_float(momentum)) +
         ", affine=" + repr_bool(affine) +
         ", track_running_stats=" + repr_bool(track_running_stats);
}

void BatchNorm1d::check_input(const Tensor& x) const {
  KILN_CHECK(x.dim() == 2 || x.dim() == 3, "BatchNorm1d: expected a 2-D or 3-D input [N, C] or"
             " [N, C, L], got ", x.shape());
}

void BatchNorm2d::check_input(const Tensor& x) const {
  KILN_CHECK(x.dim() == 4, "BatchNorm2d: expected a 4-D input [N, C, H, W], got ", x.shape());
}

}  // namespace kiln::nn
