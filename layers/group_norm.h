// GroupNorm, and the LayerNorm and InstanceNorm that share its statistics kernels.
//
// All three normalize each sample on its own, over a set S_i that never crosses the batch:
//   GroupNorm     S_i = the C/G channels of i's group, times H x W
//   LayerNorm     S_i = the trailing normalized_shape dims of sample i
//   InstanceNorm  S_i = one channel of one sample, H x W
// See layers/group_norm.cpp for the formulation and docs/group-norm.md for the walk-through.
#pragma once

#include <memory>
#include <vector>

#include <kiln/layers/module.h>

namespace kiln::nn {

namespace functional {

/// x [N, C, *] -> y [N, C, *]; weight, bias [C] (either may be undefined). C % groups == 0.
Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
/// relu(group_norm(x, ...)) as one op, with the same bits and one pass fewer each way.
Tensor group_norm_relu(const Tensor& x, int64_t groups, const Tensor& weight = Tensor(),
                       const Tensor& bias = Tensor(), double eps = 1e-5);
/// max_pool2d(relu(group_norm(x, ...)), 2) as one op, with the same bits: x [N, C, H, W] ->
/// [N, C, H / 2, W / 2], H and W at least 2.
Tensor group_norm_relu_max_pool2d(const Tensor& x, int64_t groups, const Tensor& weight = Tensor(),
                                  const Tensor& bias = Tensor(), double eps = 1e-5);
/// x [*, normalized_shape] -> same; weight, bias of normalized_shape (either may be undefined).
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
/// x [N, C, *] -> same, normalized per (sample, channel); weight, bias [C] or undefined.
Tensor instance_norm(const Tensor& x, const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                     double eps = 1e-5);

}  // namespace functional

/// GroupNorm(num_groups, num_channels, eps = 1e-5, affine = true): torch.nn.GroupNorm.
class GroupNorm : public Module {
 public:
  /// See the class: `std::make_shared<nn::GroupNorm>(32, 64)`; num_channels % num_groups == 0.
  GroupNorm(int64_t num_groups, int64_t num_channels, double eps = 1e-5, bool affine = true);
  Tensor forward(const Tensor& x) override;
  /// relu(forward(x)) in one op (functional::group_norm_relu); nn::Sequential calls it for a
  /// GroupNorm followed by a ReLU.
  Tensor forward_relu(const Tensor& x);
  /// max_pool2d(relu(forward(x)), 2) in one op (functional::group_norm_relu_max_pool2d);
  /// nn::Sequential calls it for a GroupNorm, a ReLU and a MaxPool2d(2) in a row, on 4-D inputs.
  Tensor forward_relu_max_pool2d(const Tensor& x);
  std::string extra_repr() const override;

  /// G, the number of groups.
  int64_t num_groups, num_channels;  ///< C, the number of channels
  double eps;   ///< added to the variance
  bool affine;  ///< whether there are a weight and a bias
  /// [C], ones; undefined when !affine.
  Tensor weight, bias;  ///< [C], zeros; undefined when !affine
};

/// LayerNorm(normalized_shape, eps = 1e-5, elementwise_affine = true): torch.nn.LayerNorm.
class LayerNorm : public Module {
 public:
  /// See the class: `nn::LayerNorm(std::vector<int64_t>{C, H, W})`.
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  Shape normalized_shape;   ///< the trailing dims each sample is normalized over
  double eps;               ///< added to the variance
  bool elementwise_affine;  ///< whether there are a weight and a bias
  /// Of normalized_shape, ones; undefined when !elementwise_affine.
  Tensor weight, bias;  ///< of normalized_shape, zeros; undefined when !elementwise_affine
};

/// InstanceNorm2d(num_features, eps = 1e-5, momentum = 0.1, affine = false,
/// track_running_stats = false): torch.nn.InstanceNorm2d. Input [N, C, H, W] (or [C, H, W]).
/// Running statistics are not supported: track_running_stats = true is an error.
class InstanceNorm2d : public Module {
 public:
  /// See the class.
  explicit InstanceNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1,
                          bool affine = false, bool track_running_stats = false);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  int64_t num_features;  ///< C
  /// Added to the variance.
  double eps, momentum;  ///< unused (no running statistics); printed, as in PyTorch's repr
  bool affine;           ///< whether there are a weight and a bias
  /// [C], ones, when affine.
  Tensor weight, bias;  ///< [C], zeros, when affine
};

}  // namespace kiln::nn
