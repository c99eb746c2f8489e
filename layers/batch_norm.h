// BatchNorm1d and BatchNorm2d with running statistics (Ioffe and Szegedy, 2015), and
// SyncBatchNorm, whose statistics run over the batches of every data-parallel rank.
//
// BatchNorm normalizes each channel over the set S_i = every sample of the batch, times H x W:
// unlike GroupNorm it looks across the batch, which is why it degrades when the batch is tiny.
// In data-parallel training "the batch" is each worker's share of it, unless the statistics are
// synchronized across workers (SyncBatchNorm), at the cost of a collective per layer each way.
#pragma once

#include <memory>

#include <kiln/layers/module.h>

namespace kiln::nn {

namespace functional {

/// x [N, C, *]. In training, normalizes with the batch statistics and, when running_mean and
/// running_var are defined, updates them in place:
///   running = (1 - momentum) running + momentum batch_stat   (the variance unbiased, M / (M - 1)).
/// Otherwise normalizes with running_mean / running_var. weight, bias [C] or undefined.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum = 0.1,
                  double eps = 1e-5);
/// relu(batch_norm(x, ...)) as one op, with the same bits and one pass fewer each way.
Tensor batch_norm_relu(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, bool training,
                       double momentum = 0.1, double eps = 1e-5);

/// batch_norm whose batch statistics, in training, run over the inputs of every rank of
/// kiln::dist together (torch.nn.SyncBatchNorm): the mean and variance over all ranks' [N_r, C, *]
/// inputs, and in backward the sums dL/dx needs, are combined across ranks (in rank order, in
/// double). Every rank must call it, in the same order. dL/dweight and dL/dbias are each rank's
/// own, for the gradient averaging to combine. Without kiln::dist initialized on more than one
/// rank, and in eval, it is batch_norm.
Tensor sync_batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, bool training,
                       double momentum = 0.1, double eps = 1e-5);

}  // namespace functional

/// The shared implementation of BatchNorm1d and BatchNorm2d (torch.nn.modules.batchnorm._BatchNorm).
class BatchNorm : public Module {
 public:
  /// momentum < 0 means a cumulative moving average (PyTorch's momentum=None).
  BatchNorm(int64_t num_features, double eps, double momentum, bool affine,
            bool track_running_stats);
  Tensor forward(const Tensor& x) override;
  /// relu(forward(x)) in one op, with the same bits and one pass fewer each way; nn::Sequential
  /// calls it for a BatchNorm followed by a ReLU.
  virtual Tensor forward_relu(const Tensor& x);
  std::string extra_repr() const override;

  /// C, the channels of the input.
  int64_t num_features;
  /// Added to the variance.
  double eps, momentum;  ///< the running statistics' update rate (negative: cumulative average)
  /// Whether there are a weight and a bias.
  bool affine, track_running_stats;  ///< whether running statistics are kept and used in eval
  /// [C], ones, when affine.
  Tensor weight, bias;  ///< [C], zeros, when affine
  /// [C], zeros, when track_running_stats (a buffer).
  Tensor running_mean, running_var;  ///< [C], ones, when track_running_stats (a buffer)
  Tensor num_batches_tracked;          ///< i64 scalar, when track_running_stats (a buffer)

 protected:
  /// Checks the input rank for the subclass ("BatchNorm2d: expected a 4-D input ...").
  virtual void check_input(const Tensor& x) const = 0;
  /// forward, with the batch statistics taken over every rank when synchronize is set, and
  /// followed by a ReLU in the same op when relu is.
  Tensor normalize(const Tensor& x, bool synchronize, bool relu = false);
};

/// BatchNorm1d(num_features, eps = 1e-5, momentum = 0.1, affine = true, track_running_stats =
/// true): input [N, C] or [N, C, L].
class BatchNorm1d : public BatchNorm {
 public:
  /// See the class.
  explicit BatchNorm1d(int64_t num_features, double eps = 1e-5, double momentum = 0.1,
                       bool affine = true, bool track_running_stats = true)
      : BatchNorm(num_features, eps, momentum, affine, track_running_stats) {}

 protected:
  void check_input(const Tensor& x) const override;
};

/// BatchNorm2d(num_features, eps = 1e-5, momentum = 0.1, affine = true, track_running_stats =
/// true): input [N, C, H, W].
class BatchNorm2d : public BatchNorm {
 public:
  /// See the class: `std::make_shared<nn::BatchNorm2d>(64)`.
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1,
                       bool affine = true, bool track_running_stats = true)
      : BatchNorm(num_features, eps, momentum, affine, track_running_stats) {}

 protected:
  void check_input(const Tensor& x) const override;
};

/// SyncBatchNorm(num_features, eps = 1e-5, momentum = 0.1, affine = true, track_running_stats =
/// true): BatchNorm whose training statistics run over the batches of all ranks of kiln::dist
/// (functional::sync_batch_norm), so P ranks of batch B normalize like one process of batch
/// P x B; the running statistics follow those global statistics, the same on every rank. Input
/// [N, C, *]. Same parameters, buffers and state_dict keys as BatchNorm2d, so checkpoints load
/// in either. On one process it is BatchNorm. GroupNorm needs none of this: its statistics never
/// leave a sample.
class SyncBatchNorm : public BatchNorm {
 public:
  /// The arguments are BatchNorm's; dist::init() must have run before the first training forward
  /// on more than one rank.
  explicit SyncBatchNorm(int64_t num_features, double eps = 1e-5, double momentum = 0.1,
                         bool affine = true, bool track_running_stats = true)
      : BatchNorm(num_features, eps, momentum, affine, track_running_stats) {}
  Tensor forward(const Tensor& x) override;
  Tensor forward_relu(const Tensor& x) override;

 protected:
  void check_input(const Tensor& x) const override;
};

}  // namespace kiln::nn
