// Group Normalization (Wu and He, 2018), with LayerNorm and InstanceNorm as special cases.
//
// ---- Formulation --------------------------------------------------------------------------------
// A feature map x [N, C, H, W] is viewed as [N, G, K, S]: G groups of K = C/G channels, each of
// S = H*W positions. For sample n and group g the set S_i holds the M = K*S values x[n, g, :, :]:
//
//   mu     = 1/M sum_{S_i} x                         (the group mean)
//   sigma2 = 1/M sum_{S_i} (x - mu)^2                (the biased group variance)
//   rstd   = 1 / sqrt(sigma2 + eps)
//   x_hat  = (x - mu) * rstd
//   y      = gamma_c * x_hat + beta_c                (per-channel affine, c = g*K + k)
//
// The same kernel covers the family by choosing the view:
//   GroupNorm(G)   [N, G, C/G, H*W], affine per channel
//   LayerNorm      [N, 1, D, 1] with D = prod(normalized_shape), affine per element
//   InstanceNorm   [N, C, 1, H*W], affine per channel
//
// ---- Backward -----------------------------------------------------------------------------------
// With g = dL/dy, and sums over the set S_i:
//   dL/dbeta_c  = sum_{n,s} g
//   dL/dgamma_c = sum_{n,s} g * x_hat
//   dL/dx       = rstd * (gamma_c g - 1/M sum_{S_i} gamma g - x_hat/M sum_{S_i} gamma g x_hat)
// The kernel gets these from two passes over each group: pass 1 accumulates, per channel,
//   db_k = sum_s g           dc_k = sum_s g (x - mu)
// so that sum gamma g = sum_k gamma_k db_k and sum gamma g x_hat = rstd sum_k gamma_k dc_k; pass 2
// writes dL/dx. dL/dgamma_c and dL/dbeta_c add the per-sample terms rstd*dc_k and db_k in n order.
//
// Statistics accumulate in double, on values shifted by the group's first element, and x_hat is
// formed in double, so inputs like 1e4 + 1e-2*randn normalize to unit variance and sigma2 >= 0.
// Work is split over the N*G groups, in fixed chunks: a batch of 2 still fills every core, and
// the result is bit-identical at any thread count.
//
// ---- Fused ReLU ---------------------------------------------------------------------------------
// group_norm_relu(x) = relu(group_norm(x)) in one op: the forward writes max(y, 0) as it
// normalizes, and the backward reads the ReLU's output r and uses g [r > 0] wherever the formulas
// above use g. The arithmetic is that of the two ops in turn, so the bits are too; what goes is a
// pass over the activations each way, and the tensor between the two. nn::Sequential runs a
// GroupNorm followed by a ReLU this way.
//
// ---- Fused ReLU and 2x2 max pooling -------------------------------------------------------------
// group_norm_relu_max_pool2d(x) = max_pool2d(relu(group_norm(x)), 2) for x [N, C, H, W]: each chunk
// pools the planes it has just normalized, while they are in its cache, saving each window's
// argmax as MaxPool2d does, and the backward first sends each window's gradient to its argmax
// (0 + g, into zeros, as MaxPool2d's backward adds it) and then makes the two passes above. The
// pooling is MaxPool2d's own plane kernel (pool_kernels.h), so the bits are those of the three
// ops in turn; what goes is the pooling's parallel loop each way, with its pass over data the
// other thread wrote. nn::Sequential runs a GroupNorm, a ReLU and a MaxPool2d(2) this way.
#include <kiln/layers/group_norm.h>
#include <kiln/layers/norm_kernels.h>
#include <kiln/layers/pool_kernels.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <kiln/autograd/function.h>
#include <kiln/autograd/ops.h>
#include <kiln/core/parallel.h>
#include <kiln/core/views.h>
#include <kiln/layers/repr.h>

namespace kiln::nn {

namespace {

// The [N, G, K, S] view of a normalization, and where gamma/beta index (c = g*K + k). With
// pool_w > 0 (GroupNorm-ReLU-MaxPool2d), each channel's S values are a pool_h x pool_w plane that
// the op also max-pools 2x2 into pooled_plane() values.
struct NormGeometry {
  int64_t N, G, K, S;
  int64_t pool_h = 0, pool_w = 0;
  int64_t group_size() const { return K * S; }
  bool pooled() const { return pool_w > 0; }
  int64_t pooled_plane() const { return (pool_h / 2) * (pool_w / 2); }
};

// ---- forward kernel ------------------------------------------------------------------------------
// x, y [N, G, K, S] contiguous; gamma, beta [G*K] or null; mean, rstd [N, G] (double).
// With relu, y = max(normalized, 0). When d.pooled(), pooled and pooled_at [N, G, K,
// pooled_plane()] get the 2x2 max pooling of each channel's plane of y, and its argmax within
// the plane.
template <class T>
void norm_forward(const T* x, const T* gamma, const T* beta, const NormGeometry& d, double eps,
                  bool relu, T* y, double* mean_out, double* rstd_out, T* pooled = nullptr,
                  int64_t* pooled_at = nullptr) {
  const int64_t M = d.group_size();
  parallel_for(0, d.N * d.G, grain_for(2 * M), [&](int64_t begin, int64_t end) {
    for (int64_t ng = begin; ng < end; ++ng) {
      const T* xg = x + ng * M;
      T* yg = y + ng * M;
      const int64_t g = ng % d.G;
      // mu and sigma2 from sums of (x - shift), shift = the first element: exact enough for
      // data with a large offset, in one pass.
      const double shift = M > 0 ? static_cast<double>(xg[0]) : 0.0;
      double sum = 0, sumsq = 0;
      norm_kernels::accumulate_shifted(xg, M, shift, sum, sumsq);
      const double mean_shifted = M > 0 ? sum / static_cast<double>(M) : 0.0;
      const double var = M > 0 ? std::max(sumsq / static_cast<double>(M) - mean_shifted * mean_shifted, 0.0) : 0.0;
      const double mu = shift + mean_shifted;
      const double rstd = 1.0 / std::sqrt(var + eps);
      mean_out[ng] = mu;
      rstd_out[ng] = rstd;
      // y = (x - mu) * (rstd * gamma_c) + beta_c, one run of S values per channel
      for (int64_t k = 0; k < d.K; ++k) {
        const int64_t c = g * d.K + k;
        const double scale = rstd * (gamma ? static_cast<double>(gamma[c]) : 1.0);
        const double offset = beta ? static_cast<double>(beta[c]) : 0.0;
        norm_kernels::normalize_run(xg + k * d.S, d.S, mu, scale, offset, yg + k * d.S, relu);
      }
    }
    // The chunk's planes, while they are in its cache.
    if (pooled)
      pool_kernels::max_pool_2x2_planes(y + begin * M, (end - begin) * d.K, d.pool_h, d.pool_w,
                                        pooled + begin * d.K * d.pooled_plane(),
                                        pooled_at + begin * d.K * d.pooled_plane());
  });
}

// ---- backward kernel -----------------------------------------------------------------------------
// x, dy, dx [N, G, K, S]; gamma [G*K] or null; mean, rstd [N, G];
// db_per_sample, dc_per_sample [N, G*K] scratch (double); dgamma, dbeta [G*K] or null.
// relu_y [N, G, K, S] or null: the fused ReLU's output, dy being the gradient at it. When
// d.pooled(), dy is instead the gradient at the pooled output, and pooled_at the forward's argmax,
// both [N, G, K, pooled_plane()]; grad_r [N, G, K, S] is scratch for the gradient at relu_y.
template <class T>
void norm_backward(const T* x, const T* dy, const T* relu_y, const T* gamma, const double* mean,
                   const double* rstd, const NormGeometry& d, T* dx, T* dgamma, T* dbeta,
                   double* db_per_sample, double* dc_per_sample,
                   const int64_t* pooled_at = nullptr, T* grad_r = nullptr) {
  const int64_t M = d.group_size();
  const int64_t C = d.G * d.K;
  parallel_for(0, d.N * d.G, grain_for(3 * M), [&](int64_t begin, int64_t end) {
    for (int64_t ng = begin; ng < end; ++ng) {
      const int64_t n = ng / d.G, g = ng % d.G;
      const T* xg = x + ng * M;
      T* dxg = dx ? dx + ng * M : nullptr;
      const T* rg = relu_y ? relu_y + ng * M : nullptr;
      const T* dyg = dy + ng * M;
      if (d.pooled()) {  // the gradient at r: each window's at its argmax, 0 elsewhere
        T* grad_rg = grad_r + ng * M;
        const int64_t P = d.pooled_plane();
        std::fill(grad_rg, grad_rg + M, T(0));
        for (int64_t k = 0; k < d.K; ++k) {
          const T* gp = dy + (ng * d.K + k) * P;
          const int64_t* at = pooled_at + (ng * d.K + k) * P;
          T* gr = grad_rg + k * d.S;
          for (int64_t o = 0; o < P; ++o) gr[at[o]] = T(0) + gp[o];
        }
        dyg = grad_rg;
      }
      const double mu = mean[ng], r = rstd[ng];
      // Pass 1: db_k = sum_s g, dc_k = sum_s g (x - mu); and the group sums of gamma-weighted terms.
      double sum_gamma_db = 0, sum_gamma_dc = 0;
      for (int64_t k = 0; k < d.K; ++k) {
        const int64_t c = g * d.K + k;
        double db = 0, dc = 0;
        norm_kernels::accumulate_grad(xg + k * d.S, dyg + k * d.S, d.S, mu, db, dc,
                                      rg ? rg + k * d.S : nullptr);
        db_per_sample[n * C + c] = db;
        dc_per_sample[n * C + c] = dc;
        const double gamma_c = gamma ? static_cast<double>(gamma[c]) : 1.0;
        sum_gamma_db += gamma_c * db;
        sum_gamma_dc += gamma_c * dc;
      }
      if (!dxg) continue;
      // Pass 2: dx = rstd gamma_c g - rstd/M sum(gamma g) - rstd x_hat/M sum(gamma g x_hat)
      //            = rstd gamma_c g + (x - mu) * coef_x + coef_1
      const double inv_m = 1.0 / static_cast<double>(M);
      const double sum_gamma_g_xhat = r * sum_gamma_dc;
      const double coef_x = -r * r * inv_m * sum_gamma_g_xhat;
      const double coef_1 = -r * inv_m * sum_gamma_db;
      for (int64_t k = 0; k < d.K; ++k) {
        const int64_t c = g * d.K + k;
        const double scale = r * (gamma ? static_cast<double>(gamma[c]) : 1.0);
        norm_kernels::grad_input_run(xg + k * d.S, dyg + k * d.S, d.S, mu, scale, coef_x, coef_1,
                                     dxg + k * d.S, rg ? rg + k * d.S : nullptr);
      }
    }
  });
  // dgamma_c = sum_n rstd[n, g] dc[n, c];  dbeta_c = sum_n db[n, c]   (n in order). Rows of the
  // [N, C] scratch are added in turn, so every read is contiguous; N*C is small next to the data.
  if (dgamma || dbeta) {
    std::vector<double> sum_gamma(static_cast<size_t>(C), 0.0), sum_beta(static_cast<size_t>(C), 0.0);
    for (int64_t n = 0; n < d.N; ++n) {
      const double* dc_row = dc_per_sample + n * C;
      const double* db_row = db_per_sample + n * C;
      for (int64_t g = 0; g < d.G; ++g) {  // c = g K + k (no division per channel)
        const double r = rstd[n * d.G + g];
        for (int64_t c = g * d.K; c < (g + 1) * d.K; ++c) {
          sum_gamma[static_cast<size_t>(c)] += r * dc_row[c];
          sum_beta[static_cast<size_t>(c)] += db_row[c];
        }
      }
    }
    for (int64_t c = 0; c < C; ++c) {
      if (dgamma) dgamma[c] = static_cast<T>(sum_gamma[static_cast<size_t>(c)]);
      if (dbeta) dbeta[c] = static_cast<T>(sum_beta[static_cast<size_t>(c)]);
    }
  }
}

// ---- differentiable function ---------------------------------------------------------------------

struct GroupNormalize : autograd::Function<GroupNormalize> {
  // x any shape whose contiguous layout is [N, G, K, S]; weight, bias [G*K] elements or undefined.
  // With relu, returns relu(group_norm(x)) (see Fused ReLU above); when d.pooled() as well, x is
  // [N, C, pool_h, pool_w] and the result is its 2x2 max pooling [N, C, pool_h / 2, pool_w / 2].
  static Tensor forward(autograd::Context& ctx, const Tensor& x_in, const Tensor& weight,
                        const Tensor& bias, NormGeometry d, double eps, bool relu) {
    Tensor x = kernels::contiguous(x_in);
    Tensor w = weight.defined() ? kernels::contiguous(kernels::to_dtype(weight, x.dtype())) : Tensor();
    Tensor b = bias.defined() ? kernels::contiguous(kernels::to_dtype(bias, x.dtype())) : Tensor();
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    Tensor pooled = d.pooled() ? Tensor::empty({d.N, d.G * d.K, d.pool_h / 2, d.pool_w / 2},
                                               x.dtype())
                               : Tensor();
    Tensor pooled_at = d.pooled() ? Tensor::empty(pooled.shape(), DType::i64) : Tensor();
    Tensor mean = Tensor::empty({d.N, d.G}, DType::f64);
    Tensor rstd = Tensor::empty({d.N, d.G}, DType::f64);
    dispatch_floating(x.dtype(), "group_norm", [&]<class T>() {
      norm_forward<T>(x.data_ptr<T>(), w.defined() ? w.data_ptr<T>() : nullptr,
                      b.defined() ? b.data_ptr<T>() : nullptr, d, eps, relu, y.data_ptr<T>(),
                      mean.data_ptr<double>(), rstd.data_ptr<double>(),
                      d.pooled() ? pooled.data_ptr<T>() : nullptr,
                      d.pooled() ? pooled_at.data_ptr<int64_t>() : nullptr);
    });
    if (d.pooled()) ctx.save_for_backward({x, w, mean, rstd, y, pooled_at});
    else if (relu) ctx.save_for_backward({x, w, mean, rstd, y});
    else ctx.save_for_backward({x, w, mean, rstd});
    ctx.saved_data["geometry"] = d;
    ctx.saved_data["weight_shape"] = weight.defined() ? weight.shape() : Shape{};
    return d.pooled() ? pooled : y;
  }

  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& grads) {
    auto saved = ctx.saved();
    const Tensor &x = saved[0], &w = saved[1], &mean = saved[2], &rstd = saved[3];
    const Tensor relu_y = saved.size() > 4 ? saved[4] : Tensor();
    const Tensor pooled_at = saved.size() > 5 ? saved[5] : Tensor();
    const auto d = std::any_cast<NormGeometry>(ctx.saved_data["geometry"]);
    const auto weight_shape = std::any_cast<Shape>(ctx.saved_data["weight_shape"]);
    Tensor dy = kernels::contiguous(grads[0]);
    const bool need_x = ctx.needs_input_grad(0), need_w = ctx.needs_input_grad(1),
               need_b = ctx.needs_input_grad(2);
    Tensor dx = need_x ? Tensor::empty(x.shape(), x.dtype()) : Tensor();
    Tensor dw = need_w ? Tensor::empty({d.G * d.K}, x.dtype()) : Tensor();
    Tensor db = need_b ? Tensor::empty({d.G * d.K}, x.dtype()) : Tensor();
    std::vector<double> db_scratch(static_cast<size_t>(d.N * d.G * d.K));
    std::vector<double> dc_scratch(db_scratch.size());
    Tensor grad_r = pooled_at.defined() ? Tensor::empty(x.shape(), x.dtype()) : Tensor();
    dispatch_floating(x.dtype(), "group_norm", [&]<class T>() {
      norm_backward<T>(x.data_ptr<T>(), dy.data_ptr<T>(),
                       relu_y.defined() ? relu_y.data_ptr<T>() : nullptr,
                       w.defined() ? w.data_ptr<T>() : nullptr,
                       mean.data_ptr<double>(), rstd.data_ptr<double>(), d,
                       need_x ? dx.data_ptr<T>() : nullptr, need_w ? dw.data_ptr<T>() : nullptr,
                       need_b ? db.data_ptr<T>() : nullptr, db_scratch.data(), dc_scratch.data(),
                       pooled_at.defined() ? pooled_at.data_ptr<int64_t>() : nullptr,
                       grad_r.defined() ? grad_r.data_ptr<T>() : nullptr);
    });
    if (need_w) dw = kernels::view(dw, weight_shape);
    if (need_b) db = kernels::view(db, weight_shape);
    return {dx, dw, db, Tensor(), Tensor(), Tensor()};
  }
};

void check_affine(const char* op, const Tensor& t, const char* name, const Shape& expected) {
  if (!t.defined()) return;
  KILN_CHECK(t.shape() == expected, op, ": expected ", name, " of shape ", expected, ", got ",
             t.shape());
  KILN_CHECK(is_floating(t.dtype()), op, ": expected a floating ", name, ", got ",
             dtype_name(t.dtype()));
}


}  // namespace

// ---- functional ----------------------------------------------------------------------------------

namespace functional {

namespace {

Tensor group_norm_op(const char* op, const Tensor& x, int64_t groups, const Tensor& weight,
                     const Tensor& bias, double eps, bool relu, bool pool = false) {
  KILN_CHECK(x.dim() >= 2, op, ": expected an input [N, C, *] with at least 2 dims, got ",
             x.shape());
  KILN_CHECK(is_floating(x.dtype()), op, ": expected a floating input, got ",
             dtype_name(x.dtype()));
  const int64_t N = x.shape()[0], C = x.shape()[1];
  KILN_CHECK(groups > 0, op, ": expected groups > 0, got ", groups);
  KILN_CHECK(C % groups == 0, op, ": channels ", C, " is not divisible by groups ", groups,
             " (input ", x.shape(), ")");
  KILN_CHECK(eps >= 0, op, ": expected eps >= 0, got ", eps);
  check_affine(op, weight, "weight", {C});
  check_affine(op, bias, "bias", {C});
  const int64_t S = N * C == 0 ? 0 : x.numel() / (N * C);
  NormGeometry d{N, groups, C / groups, S};
  if (pool) {
    KILN_CHECK(x.dim() == 4 && x.shape()[2] >= 2 && x.shape()[3] >= 2, op,
               ": expected an input [N, C, H, W] with H and W at least 2 (the pooling's 2x2"
               " window), got ", x.shape());
    d.pool_h = x.shape()[2];
    d.pool_w = x.shape()[3];
  }
  return GroupNormalize::apply(x, weight, bias, d, eps, relu);
}

}  // namespace

Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias, double eps) {
  return group_norm_op("group_norm", x, groups, weight, bias, eps, /*relu=*/false);
}

Tensor group_norm_relu(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias,
                       double eps) {
  return group_norm_op("group_norm_relu", x, groups, weight, bias, eps, /*relu=*/true);
}

Tensor group_norm_relu_max_pool2d(const Tensor& x, int64_t groups, const Tensor& weight,
                                  const Tensor& bias, double eps) {
  return group_norm_op("group_norm_relu_max_pool2d", x, groups, weight, bias, eps, /*relu=*/true,
                       /*pool=*/true);
}

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  const int64_t nd = static_cast<int64_t>(normalized_shape.size());
  KILN_CHECK(nd >= 1, "layer_norm: normalized_shape must have at least one dim");
  bool matches = x.dim() >= nd;
  for (int64_t i = 0; matches && i < nd; ++i)
    matches = x.shape()[x.dim() - nd + i] == normalized_shape[i];
  KILN_CHECK(matches, "layer_norm: expected an input whose trailing dims are normalized_shape ",
             normalized_shape, ", got ", x.shape());
  KILN_CHECK(is_floating(x.dtype()), "layer_norm: expected a floating input, got ",
             dtype_name(x.dtype()));
  check_affine("layer_norm", weight, "weight", normalized_shape);
  check_affine("layer_norm", bias, "bias", normalized_shape);
  const int64_t D = shape_numel(normalized_shape);
  const int64_t rows = D == 0 ? 0 : x.numel() / D;
  return GroupNormalize::apply(x, weight, bias, NormGeometry{rows, 1, D, 1}, eps, false);
}

Tensor instance_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  KILN_CHECK(x.dim() >= 3, "instance_norm: expected an input [N, C, *] with at least 3 dims, got ",
             x.shape());
  KILN_CHECK(is_floating(x.dtype()), "instance_norm: expected a floating input, got ",
             dtype_name(x.dtype()));
  const int64_t N = x.shape()[0], C = x.shape()[1];
  check_affine("instance_norm", weight, "weight", {C});
  check_affine("instance_norm", bias, "bias", {C});
  const int64_t S = N * C == 0 ? 0 : x.numel() / (N * C);
  return GroupNormalize::apply(x, weight, bias, NormGeometry{N, C, 1, S}, eps, false);
}

}  // namespace functional

// ---- modules -------------------------------------------------------------------------------------

GroupNorm::GroupNorm(int64_t num_groups_, int64_t num_channels_, double eps_, bool affine_)
    : num_groups(num_groups_), num_channels(num_channels_), eps(eps_), affine(affine_) {
  KILN_CHECK(num_groups > 0 && num_channels > 0, "GroupNorm: expected positive num_groups and"
             " num_channels, got ", num_groups, " and ", num_channels);
  KILN_CHECK(num_channels % num_groups == 0, "GroupNorm: channels ", num_channels,
             " is not divisible by groups ", num_groups);
  if (affine) {
    weight = register_parameter("weight", Tensor::ones({num_channels}));
    bias = register_parameter("bias", Tensor::zeros({num_channels}));
  }
}

namespace {
void check_group_norm_input(const Tensor& x, int64_t num_channels) {
  KILN_CHECK(x.dim() >= 2 && x.shape()[1] == num_channels, "GroupNorm: expected an input [N, ",
             num_channels, ", *], got ", x.shape());
}
}  // namespace

Tensor GroupNorm::forward(const Tensor& x) {
  check_group_norm_input(x, num_channels);
  return functional::group_norm(x, num_groups, weight, bias, eps);
}

Tensor GroupNorm::forward_relu(const Tensor& x) {
  check_group_norm_input(x, num_channels);
  return functional::group_norm_relu(x, num_groups, weight, bias, eps);
}

Tensor GroupNorm::forward_relu_max_pool2d(const Tensor& x) {
  check_group_norm_input(x, num_channels);
  return functional::group_norm_relu_max_pool2d(x, num_groups, weight, bias, eps);
}

std::string GroupNorm::extra_repr() const {
  return std::to_string(num_groups) + ", " + std::to_string(num_channels) +
         ", eps=" + repr_float(eps) + ", affine=" + repr_bool(affine);
}

LayerNorm::LayerNorm(Shape shape, double eps_, bool affine_)
    : normalized_shape(std::move(shape)), eps(eps_), elementwise_affine(affine_) {
  KILN_CHECK(!normalized_shape.empty(), "LayerNorm: normalized_shape must have at least one dim");
  for (int64_t s : normalized_shape)
    KILN_CHECK(s > 0, "LayerNorm: expected positive sizes in normalized_shape, got ", normalized_shape);
  if (elementwise_affine) {
    weight = register_parameter("weight", Tensor::ones(normalized_shape));
    bias = register_parameter("bias", Tensor::zeros(normalized_shape));
  }
}

Tensor LayerNorm::forward(const Tensor& x) {
  return functional::layer_norm(x, normalized_shape, weight, bias, eps);
}

std::string LayerNorm::extra_repr() const {
  std::string shape = "(";
  for (size_t i = 0; i < normalized_shape.size(); ++i)
    shape += (i ? ", " : "") + std::to_string(normalized_shape[i]);
  if (normalized_shape.size() == 1) shape += ",";
  shape += ")";
  return shape + ", eps=" + repr_float(eps) +
         ", elementwise_affine=" + repr_bool(elementwise_affine);
}

InstanceNorm2d::InstanceNorm2d(int64_t num_features_, double eps_, double momentum_, bool affine_,
                               bool track_running_stats)
    : num_features(num_features_), eps(eps_), momentum(momentum_), affine(affine_) {
  KILN_CHECK(num_features > 0, "InstanceNorm2d: expected num_features > 0, got ", num_features);
  KILN_CHECK(!track_running_stats, "InstanceNorm2d: track_running_stats=true is not supported;"
             " instance statistics are always computed from the input");
  if (affine) {
    weight = register_parameter("weight", Tensor::ones({num_features}));
    bias = register_parameter("bias", Tensor::zeros({num_features}));
  }
}

Tensor InstanceNorm2d::forward(const Tensor& x) {
  KILN_CHECK(x.dim() == 3 || x.dim() == 4, "InstanceNorm2d: expected an input [N, C, H, W] or"
             " [C, H, W], got ", x.shape());
  const bool unbatched = x.dim() == 3;
  Tensor in = unbatched ? x.unsqueeze(0) : x;
  KILN_CHECK(in.shape()[1] == num_features, "InstanceNorm2d: expected ", num_features,
             " channels, got input ", x.shape());
  Tensor y = functional::instance_norm(in, weight, bias, eps);
  return unbatched ? y.squeeze(0) : y;
}

std::string InstanceNorm2d::extra_repr() const {
  return std::to_string(num_features) + ", eps=" + repr_float(eps) +
         ", momentum=" + repr_float(momentum) + ", affine=" + repr_bool(affine) +
         ", track_running_stats=False";
}

}  // namespace kiln::nn
