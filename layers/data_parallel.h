// Data-parallel training over MPI: every rank holds the same model, trains on its own share of
// each batch, and averages the gradients before the optimizer step, so every rank makes the same
// update (PyTorch's DistributedDataParallel, without wrapping the model).
//
//   dist::init(&argc, &argv);
//   auto net = make_model();                       // built the same way on every rank
//   dist::GradientAverager averager(*net);          // rank 0's parameters and buffers to all
//   optim::SGD opt(net->parameters(), ...);
//   for (const data::Batch& b : loader) {          // a DistributedSampler: one shard per rank
//     opt.zero_grad();
//     nn::functional::cross_entropy(net->forward(b.images), b.labels).backward();
//     averager.average();                          // grad = 1/P sum over ranks, bucketed
//     opt.step();
//   }
//
// With a loss that is a mean over each rank's B images, the average over P ranks is the gradient
// of the mean over all P x B images: P ranks of batch B take the step one process takes on batch
// P x B, the same images, up to rounding, when every layer treats each image on its own (GroupNorm,
// LayerNorm, InstanceNorm) or synchronizes its statistics (SyncBatchNorm). A plain BatchNorm
// normalizes each rank's B images alone: that is the paper's "batch size per worker".
//
// Built only with KILN_WITH_MPI (see core/distributed.h).
#pragma once

#ifndef KILN_WITH_MPI
#error "<kiln/layers/data_parallel.h> needs kiln built with MPI (cmake -DKILN_WITH_MPI=ON, libopenmpi-dev)"
#endif

#include <cstdint>
#include <vector>

#include <kiln/core/distributed.h>
#include <kiln/layers/module.h>

namespace kiln::dist {

/// Copies root's parameters and buffers into every rank's module, in place. Throws kiln::Error on
/// every rank when the ranks' modules do not have the same tensors (count, shapes and dtypes).
void broadcast_module(nn::Module& module, int root = 0);

/// How GradientAverager packs and what it synchronizes.
struct GradientAveragerOptions {
  /// Gradients are packed into flat buckets of about this many bytes (a parameter larger than it
  /// gets a bucket of its own): one all-reduce per bucket, not one per tensor.
  int64_t bucket_bytes = int64_t{4} << 20;
  /// After averaging, also copy rank 0's buffers (BatchNorm's running statistics) to every rank,
  /// as DistributedDataParallel's broadcast_buffers does, so evaluation and checkpoints agree.
  bool broadcast_buffers = true;
};

/// Averages the gradients of a module's parameters over all ranks.
class GradientAverager {
 public:
  /// Broadcasts rank 0's parameters and buffers (broadcast_module) and plans the buckets: the
  /// parameters that require a gradient, in registration order, grouped by dtype. The module
  /// must outlive the averager and keep its parameters.
  explicit GradientAverager(nn::Module& module, GradientAveragerOptions options = {});

  /// Replaces each parameter's gradient with the mean over the ranks: grad = 1/P sum_r grad_r,
  /// summed in rank order (the same bits on every rank). A parameter with no gradient on a rank
  /// counts as zeros there; it gets a gradient when any rank had one, and stays without when
  /// none had. Call it on every rank after backward and before the optimizer step.
  void average();

  /// The number of buckets, which is the number of all-reduces average() makes.
  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  /// The number of values in each bucket (gradients, plus one presence flag per parameter).
  std::vector<int64_t> bucket_numels() const;

 private:
  struct Bucket {
    std::vector<Tensor> params;
    Tensor flat;  // [sum of numels + params.size()], the parameters' dtype
  };
  void sync_buffers();

  nn::Module& module_;
  GradientAveragerOptions options_;
  std::vector<Bucket> buckets_;
};

}  // namespace kiln::dist
