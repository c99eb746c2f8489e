// The VGG-style models of the benchmark workloads (../shared/bench/WORKLOADS.md), shared by
// kiln-cifar10 and kiln-bench.
//
// Each entry c of a block is Conv2d(c_in, c, 3, padding 1) -> norm -> ReLU; every block ends with
// MaxPool2d(2, 2); after the last block come Flatten and Linear(c_last, 10). On 32x32 inputs the
// five blocks leave a 1x1 map.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <kiln/layers/sequential.h>

namespace kiln::apps {

using Blocks = std::vector<std::vector<int64_t>>;

/// "vgg8" or "vgg16"; throws kiln::Error naming the choices otherwise.
Blocks vgg_blocks(const std::string& model);

/// The normalization after each convolution:
///   gn     GroupNorm(min(groups, c), c)
///   bn     BatchNorm2d(c)
///   syncbn SyncBatchNorm(c): BatchNorm2d over the batches of all ranks (BatchNorm2d on one process)
///   ln     GroupNorm(1, c): LayerNorm over (C, H, W) with a per-channel affine, as in the paper
///   in     InstanceNorm2d(c, affine) (GroupNorm with one channel per group)
///   gn+ws  GroupNorm after a weight-standardized convolution (WSConv2d)
///   none   no normalization (an Identity, so layer indices match the other norms)
std::shared_ptr<nn::Sequential> make_vgg(const Blocks& blocks, const std::string& norm,
                                         int64_t groups = 32, int64_t in_channels = 3,
                                         int64_t classes = 10);

/// Throws kiln::Error unless GroupNorm(min(groups, c), c) fits every layer's c: groups >= 1 and
/// each c divisible by min(groups, c). make_vgg checks this too; the app calls it before loading
/// any data, so a bad --groups is reported at once.
void check_vgg_groups(const Blocks& blocks, int64_t groups);

/// The names make_vgg accepts, for flag validation and help text.
const std::vector<std::string>& norm_names();

/// Forward + backward multiply-adds x 2 per image of a VGG on 32x32 inputs: 3x the forward conv
/// and linear FLOPs (the backward pass costs twice the forward).
double vgg_train_flops_per_image(const Blocks& blocks, int64_t in_channels = 3, int64_t size = 32);

}  // namespace kiln::apps
