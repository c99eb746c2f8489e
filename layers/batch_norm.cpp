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
//
// ---- SyncBatchNorm: the same set S_i across P ranks ----------------------------------------------
// Rank r holds x_r [N_r, C, S]; S_i is every value of channel c on every rank, M = sum_r M_r.
// Forward: each rank computes its (M_r, mu_r, sigma2_r) as above; one all-gather gives every rank
// all of them, and every rank combines them in rank order (Chan et al.'s parallel variance):
//   mu     = sum_r M_r mu_r / M
//   sigma2 = (sum_r M_r sigma2_r + sum_r M_r (mu_r - mu)^2) / M
// Backward: db_c and dc_c are sums over S_i, so each rank computes its own with the shared mu_c,
// and one all-reduce (2C values, in rank order) gives the totals for dL/dx. dL/dgamma and
// dL/dbeta stay each rank's own sums, as in PyTorch: the gradient averaging of data-parallel
// training (layers/data_parallel.h) combines them like every other parameter's gradient.
// P ranks of batch B then compute what one process computes on batch P x B, up to rounding.
//
// ---- Fused ReLU ---------------------------------------------------------------------------------
// As in group_norm.cpp: with relu the forward writes max(y, 0), and the backward reads that output
// r and uses g [r > 0] wherever the formulas above use g, in training, eval and SyncBatchNorm
// alike. The bits are those of batch_norm followed by relu. nn::Sequential runs a BatchNorm
// followed by a ReLU this way.
#include <kiln/layers/batch_norm.h>
#include <kiln/layers/norm_kernels.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <kiln/autograd/function.h>
#include <kiln/autograd/grad_mode.h>
#include <kiln/core/parallel.h>
#include <kiln/core/views.h>
#include <kiln/layers/repr.h>
#ifdef KILN_WITH_MPI
#include <kiln/core/distributed.h>
#endif

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

// y = (x - mean_c) * scale_c + beta_c with scale_c = gamma_c / sqrt(var_c + eps); with relu,
// max(y, 0).
template <class T>
void batch_normalize(const T* x, const double* mean, const double* rstd, const T* gamma,
                     const T* beta, const BatchGeometry& d, bool relu, T* y) {
  const int64_t M = d.count();
  parallel_for(0, d.C, grain_for(M), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const double mu = mean[c];
      const double scale = rstd[c] * (gamma ? static_cast<double>(gamma[c]) : 1.0);
      const double offset = beta ? static_cast<double>(beta[c]) : 0.0;
      for (int64_t n = 0; n < d.N; ++n)
        norm_kernels::normalize_run(x + (n * d.C + c) * d.S, d.S, mu, scale, offset,
                                    y + (n * d.C + c) * d.S, relu);
    }
  });
}

// ---- across ranks (SyncBatchNorm) ----------------------------------------------------------------

// Whether SyncBatchNorm has ranks to synchronize with: kiln::dist initialized with P > 1.
bool ranks_to_synchronize() {
#ifdef KILN_WITH_MPI
  return dist::is_initialized() && dist::world_size() > 1;
#else
  return false;
#endif
}

// mean, var [C]: this rank's statistics over `count` values in, the statistics over every rank's
// values out; returns the total count. Chan's combination, in rank order, in double.
int64_t combine_stats_over_ranks(double* mean, double* var, int64_t C, int64_t count) {
#ifdef KILN_WITH_MPI
  const int P = dist::world_size();
  const int64_t width = 2 * C + 1;  // [mean_0..mean_C-1, var_0..var_C-1, count]
  std::vector<double> mine(static_cast<size_t>(width)), all(static_cast<size_t>(width * P));
  std::copy(mean, mean + C, mine.begin());
  std::copy(var, var + C, mine.begin() + C);
  mine[static_cast<size_t>(2 * C)] = static_cast<double>(count);
  dist::all_gather(mine.data(), width, all.data());
  double total = 0;
  for (int r = 0; r < P; ++r) total += all[static_cast<size_t>(r * width + 2 * C)];
  for (int64_t c = 0; c < C; ++c) {
    double n = 0, mu = 0, m2 = 0;
    for (int r = 0; r < P; ++r) {
      const double* stats = all.data() + r * width;
      const double n_r = stats[2 * C];
      if (n_r == 0) continue;
      // merge (n_r, mu_r, M2_r = n_r sigma2_r) into (n, mu, m2)
      const double delta = stats[c] - mu, n_new = n + n_r;
      mu += delta * n_r / n_new;
      m2 += stats[C + c] * n_r + delta * delta * n * n_r / n_new;
      n = n_new;
    }
    mean[c] = mu;
    var[c] = n > 0 ? std::max(m2 / n, 0.0) : 0.0;
  }
  return static_cast<int64_t>(total);
#else
  (void)mean, (void)var, (void)C;
  return count;
#endif
}

void sum_over_ranks(std::vector<double>& values) {
#ifdef KILN_WITH_MPI
  dist::all_reduce(values.data(), static_cast<int64_t>(values.size()), dist::ReduceOp::sum);
#else
  (void)values;
#endif
}

// ---- backward kernels ----------------------------------------------------------------------------
// x, dy, dx [N, C, S]; mean, rstd [C]; gamma [C] or null; dgamma, dbeta [C] or null.
// training: the statistics depend on x (the full formula); eval: they are constants.
// relu_y [N, C, S] or null: the fused ReLU's output, dy being the gradient at it.

// Pass 1 over channel c: db = sum g, dc = sum g (x - mu).
template <class T>
void channel_grad_sums(const T* x, const T* dy, const T* relu_y, double mu, const BatchGeometry& d,
                       int64_t c, double& db, double& dc) {
  db = 0;
  dc = 0;
  for (int64_t n = 0; n < d.N; ++n) {
    const int64_t at = (n * d.C + c) * d.S;
    norm_kernels::accumulate_grad(x + at, dy + at, d.S, mu, db, dc, relu_y ? relu_y + at : nullptr);
  }
}

// Pass 2 over channel c, with db and dc summed over the M values of S_i:
//   dx = gamma rstd (g - db/M - (x - mu) rstd^2 dc/M)   (training)
//   dx = gamma rstd g                                   (eval)
template <class T>
void channel_grad_input(const T* x, const T* dy, const T* relu_y, double mu, double r, double gamma,
                        double db, double dc, double inv_m, bool training, const BatchGeometry& d,
                        int64_t c, T* dx) {
  const double scale = r * gamma;
  const double mean_g = training ? db * inv_m : 0.0;
  const double coef_x = training ? r * r * dc * inv_m : 0.0;
  // dx = scale g + (x - mu) (-scale coef_x) + (-scale mean_g)
  for (int64_t n = 0; n < d.N; ++n) {
    const int64_t at = (n * d.C + c) * d.S;
    norm_kernels::grad_input_run(x + at, dy + at, d.S, mu, scale, -scale * coef_x, -scale * mean_g,
                                 dx + at, relu_y ? relu_y + at : nullptr);
  }
}

// Both passes per channel while its values are in cache.
template <class T>
void batch_norm_backward(const T* x, const T* dy, const T* relu_y, const double* mean,
                         const double* rstd, const T* gamma, const BatchGeometry& d, bool training,
                         T* dx, T* dgamma, T* dbeta) {
  const double inv_m = 1.0 / static_cast<double>(d.count());
  parallel_for(0, d.C, grain_for(3 * d.count()), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double db, dc;
      channel_grad_sums(x, dy, relu_y, mean[c], d, c, db, dc);
      if (dgamma) dgamma[c] = static_cast<T>(rstd[c] * dc);
      if (dbeta) dbeta[c] = static_cast<T>(db);
      if (dx)
        channel_grad_input(x, dy, relu_y, mean[c], rstd[c],
                           gamma ? static_cast<double>(gamma[c]) : 1.0, db, dc, inv_m, training, d,
                           c, dx);
    }
  });
}

// SyncBatchNorm in training: pass 1 on every channel, the sums all-reduced over the ranks, then
// pass 2 with the totals and the global count M.
template <class T>
void sync_batch_norm_backward(const T* x, const T* dy, const T* relu_y, const double* mean,
                              const double* rstd, const T* gamma, const BatchGeometry& d, double M,
                              T* dx, T* dgamma, T* dbeta) {
  std::vector<double> sums(static_cast<size_t>(2 * d.C));  // [db_0..db_C-1, dc_0..dc_C-1]
  double* db = sums.data();
  double* dc = sums.data() + d.C;
  parallel_for(0, d.C, grain_for(2 * d.count()), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      channel_grad_sums(x, dy, relu_y, mean[c], d, c, db[c], dc[c]);
      if (dgamma) dgamma[c] = static_cast<T>(rstd[c] * dc[c]);
      if (dbeta) dbeta[c] = static_cast<T>(db[c]);
    }
  });
  if (!dx) return;
  sum_over_ranks(sums);
  const double inv_m = 1.0 / M;
  parallel_for(0, d.C, grain_for(d.count()), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      channel_grad_input(x, dy, relu_y, mean[c], rstd[c],
                         gamma ? static_cast<double>(gamma[c]) : 1.0, db[c], dc[c], inv_m,
                         /*training=*/true, d, c, dx);
  });
}

// ---- differentiable function ---------------------------------------------------------------------

struct BatchNormalize : autograd::Function<BatchNormalize> {
  // running_mean / running_var are updated in place when training and defined. synchronize: the
  // batch statistics and the backward sums run over every rank's batch (SyncBatchNorm). relu:
  // returns relu(batch_norm(x)) (see Fused ReLU above).
  static Tensor forward(autograd::Context& ctx, const Tensor& x_in, const Tensor& weight,
                        const Tensor& bias, Tensor running_mean, Tensor running_var,
                        bool training, double momentum, double eps, bool synchronize, bool relu) {
    Tensor x = kernels::contiguous(x_in);
    const BatchGeometry d{x.shape()[0], x.shape()[1],
                          x.shape()[0] * x.shape()[1] == 0 ? 0 : x.numel() / (x.shape()[0] * x.shape()[1])};
    Tensor w = weight.defined() ? kernels::contiguous(kernels::to_dtype(weight, x.dtype())) : Tensor();
    Tensor b = bias.defined() ? kernels::contiguous(kernels::to_dtype(bias, x.dtype())) : Tensor();
    Tensor mean = Tensor::empty({d.C}, DType::f64);
    Tensor rstd = Tensor::empty({d.C}, DType::f64);
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    synchronize = synchronize && training;
    int64_t count = d.count();  // M: the values each statistic runs over, on every rank together
    dispatch_floating(x.dtype(), "batch_norm", [&]<class T>() {
      double* pm = mean.data_ptr<double>();
      double* pr = rstd.data_ptr<double>();
      if (training) {
        std::vector<double> var(static_cast<size_t>(d.C));
        if (count > 0) batch_stats<T>(x.data_ptr<T>(), d, pm, var.data());
        else std::fill(pm, pm + d.C, 0.0);  // a rank with an empty batch adds nothing
        if (synchronize) {
          count = combine_stats_over_ranks(pm, var.data(), d.C, count);
          KILN_CHECK(count > 1, "SyncBatchNorm: expected more than 1 value per channel over all "
                     "ranks when training, got ", count, " (this rank's input ", x.shape(), ")");
        }
        for (int64_t c = 0; c < d.C; ++c) pr[c] = 1.0 / std::sqrt(var[c] + eps);
        if (running_mean.defined())
          update_running(running_mean, running_var, pm, var.data(), d.C, count, momentum);
      } else {
        Tensor rm = kernels::to_dtype(kernels::contiguous(running_mean), DType::f64);
        Tensor rv = kernels::to_dtype(kernels::contiguous(running_var), DType::f64);
        for (int64_t c = 0; c < d.C; ++c) {
          pm[c] = rm.data_ptr<double>()[c];
          pr[c] = 1.0 / std::sqrt(rv.data_ptr<double>()[c] + eps);
        }
      }
      batch_normalize<T>(x.data_ptr<T>(), pm, pr, w.defined() ? w.data_ptr<T>() : nullptr,
                         b.defined() ? b.data_ptr<T>() : nullptr, d, relu, y.data_ptr<T>());
    });
    if (relu) ctx.save_for_backward({x, w, mean, rstd, y});
    else ctx.save_for_backward({x, w, mean, rstd});
    ctx.saved_data["geometry"] = d;
    ctx.saved_data["training"] = training;
    ctx.saved_data["synchronize"] = synchronize;
    ctx.saved_data["count"] = count;
    return y;
  }

  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& grads) {
    auto saved = ctx.saved();
    const Tensor &x = saved[0], &w = saved[1], &mean = saved[2], &rstd = saved[3];
    const Tensor relu_y = saved.size() > 4 ? saved[4] : Tensor();
    const auto d = std::any_cast<BatchGeometry>(ctx.saved_data["geometry"]);
    const bool training = std::any_cast<bool>(ctx.saved_data["training"]);
    const bool synchronize = std::any_cast<bool>(ctx.saved_data["synchronize"]);
    const auto count = std::any_cast<int64_t>(ctx.saved_data["count"]);
    Tensor dy = kernels::contiguous(grads[0]);
    const bool need_x = ctx.needs_input_grad(0), need_w = ctx.needs_input_grad(1),
               need_b = ctx.needs_input_grad(2);
    Tensor dx = need_x ? Tensor::empty(x.shape(), x.dtype()) : Tensor();
    Tensor dw = need_w ? Tensor::empty({d.C}, x.dtype()) : Tensor();
    Tensor db = need_b ? Tensor::empty({d.C}, x.dtype()) : Tensor();
    dispatch_floating(x.dtype(), "batch_norm", [&]<class T>() {
      const T* gamma = w.defined() ? w.data_ptr<T>() : nullptr;
      T* pdx = need_x ? dx.data_ptr<T>() : nullptr;
      T* pdw = need_w ? dw.data_ptr<T>() : nullptr;
      T* pdb = need_b ? db.data_ptr<T>() : nullptr;
      const T* pr = relu_y.defined() ? relu_y.data_ptr<T>() : nullptr;
      if (synchronize)
        sync_batch_norm_backward<T>(x.data_ptr<T>(), dy.data_ptr<T>(), pr, mean.data_ptr<double>(),
                                    rstd.data_ptr<double>(), gamma, d, static_cast<double>(count),
                                    pdx, pdw, pdb);
      else
        batch_norm_backward<T>(x.data_ptr<T>(), dy.data_ptr<T>(), pr, mean.data_ptr<double>(),
                               rstd.data_ptr<double>(), gamma, d, training, pdx, pdw, pdb);
    });
    return {dx, dw, db, Tensor(), Tensor()};
  }

  // running = (1 - momentum) running + momentum stat, the variance made unbiased by M / (M - 1).
  static void update_running(Tensor& running_mean, Tensor& running_var, const double* mean,
                             const double* var, int64_t C, int64_t count, double momentum) {
    const double M = static_cast<double>(count);
    const double unbias = M > 1 ? M / (M - 1) : 1.0;
    dispatch_floating(running_mean.dtype(), "batch_norm", [&]<class R>() {
      R* rm = running_mean.data_ptr<R>();
      R* rv = running_var.data_ptr<R>();
      for (int64_t c = 0; c < C; ++c) {
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

namespace {

// The checks of batch_norm and sync_batch_norm; per_rank_count: check this rank's values per
// channel (the synchronized version checks the count over all ranks instead).
void check_batch_norm_args(const char* op, const Tensor& x, const Tensor& running_mean,
                           const Tensor& running_var, const Tensor& weight, const Tensor& bias,
                           bool training, double eps, bool per_rank_count) {
  KILN_CHECK(x.dim() >= 2, op, ": expected an input [N, C, *] with at least 2 dims, got ", x.shape());
  KILN_CHECK(is_floating(x.dtype()), op, ": expected a floating input, got ", dtype_name(x.dtype()));
  const int64_t C = x.shape()[1];
  for (const auto& [t, name] : {std::pair{&running_mean, "running_mean"}, {&running_var, "running_var"},
                                {&weight, "weight"}, {&bias, "bias"}}) {
    if (t->defined())
      KILN_CHECK(t->shape() == Shape{C}, op, ": expected ", name, " of shape [", C, "] for input ",
                 x.shape(), ", got ", t->shape());
  }
  KILN_CHECK(running_mean.defined() == running_var.defined(), op, ": running_mean and"
             " running_var must be given together");
  if (running_mean.defined())
    KILN_CHECK(is_floating(running_mean.dtype()) && is_floating(running_var.dtype()), op,
               ": running statistics must be floating tensors");
  if (training) {
    const int64_t values_per_channel = C == 0 ? 0 : x.numel() / C;
    if (per_rank_count)
      KILN_CHECK(values_per_channel > 1, op, ": expected more than 1 value per channel when"
                 " training, got input ", x.shape(), " (", values_per_channel, " per channel)");
  } else {
    KILN_CHECK(running_mean.defined(), op, ": eval mode needs running_mean and running_var");
  }
  KILN_CHECK(eps >= 0, op, ": expected eps >= 0, got ", eps);
}

// batch_norm (over_ranks false) or sync_batch_norm, followed by a ReLU in the same op when relu.
Tensor batch_norm_op(const char* op, const Tensor& x, const Tensor& running_mean,
                     const Tensor& running_var, const Tensor& weight, const Tensor& bias,
                     bool training, double momentum, double eps, bool over_ranks, bool relu) {
  const bool synchronize = over_ranks && training && ranks_to_synchronize();
  check_batch_norm_args(op, x, running_mean, running_var, weight, bias, training, eps,
                        /*per_rank_count=*/!synchronize);
  return BatchNormalize::apply(x, weight, bias, running_mean, running_var, training, momentum, eps,
                               synchronize, relu);
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps) {
  return batch_norm_op("batch_norm", x, running_mean, running_var, weight, bias, training,
                       momentum, eps, /*over_ranks=*/false, /*relu=*/false);
}

Tensor batch_norm_relu(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, bool training, double momentum,
                       double eps) {
  return batch_norm_op("batch_norm_relu", x, running_mean, running_var, weight, bias, training,
                       momentum, eps, /*over_ranks=*/false, /*relu=*/true);
}

Tensor sync_batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, bool training, double momentum,
                       double eps) {
  return batch_norm_op("sync_batch_norm", x, running_mean, running_var, weight, bias, training,
                       momentum, eps, /*over_ranks=*/true, /*relu=*/false);
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

Tensor BatchNorm::forward(const Tensor& x) { return normalize(x, /*synchronize=*/false); }

Tensor BatchNorm::forward_relu(const Tensor& x) {
  return normalize(x, /*synchronize=*/false, /*relu=*/true);
}

Tensor BatchNorm::normalize(const Tensor& x, bool synchronize, bool relu) {
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
  Tensor y = functional::batch_norm_op(
      synchronize ? "sync_batch_norm" : "batch_norm", x,
      track_running_stats ? running_mean : Tensor(), track_running_stats ? running_var : Tensor(),
      weight, bias, use_batch_stats, factor, eps, synchronize, relu);
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

Tensor SyncBatchNorm::forward(const Tensor& x) { return normalize(x, /*synchronize=*/true); }

Tensor SyncBatchNorm::forward_relu(const Tensor& x) {
  return normalize(x, /*synchronize=*/true, /*relu=*/true);
}

void SyncBatchNorm::check_input(const Tensor& x) const {
  KILN_CHECK(x.dim() >= 2, "SyncBatchNorm: expected an input [N, C, *] with at least 2 dims, got ",
             x.shape());
}

}  // namespace kiln::nn
