// Transforms: per-example image operations for the DataLoader, as torchvision's.
//
//   auto augment = data::compose(data::RandomCrop(32, 4), data::RandomHorizontalFlip(0.5),
//                                data::Normalize(data::kCifar10Mean, data::kCifar10Std));
//   data::DataLoader loader(train, {.batch_size = 128, .shuffle = true, .transform = augment});
//
// A transform maps one f32 image [C, H, W] to another. Random transforms draw from the Generator
// they are given; the DataLoader gives every example its own, keyed on (seed, epoch, position), so
// the result does not depend on prefetching or on the thread count. apply() is const and must be
// safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <kiln/core/generator.h>
#include <kiln/core/tensor.h>

namespace kiln::data {

// Per-channel statistics of the training sets, on pixels scaled to [0, 1].
/// CIFAR-10's per-channel mean (R, G, B).
inline const std::vector<float> kCifar10Mean = {0.49139968f, 0.48215841f, 0.44653091f};
/// CIFAR-10's per-channel standard deviation (R, G, B).
inline const std::vector<float> kCifar10Std = {0.24703223f, 0.24348513f, 0.26158784f};
/// Fashion-MNIST's mean.
inline const std::vector<float> kFashionMnistMean = {0.28604060f};
/// Fashion-MNIST's standard deviation.
inline const std::vector<float> kFashionMnistStd = {0.35302424f};

/// An image transform for the DataLoader, deterministic given the generator it draws from.
class Transform {
 public:
  virtual ~Transform() = default;
  /// The output shape for an input of shape [C, H, W]; throws kiln::Error when the transform
  /// cannot take that input (the DataLoader asks once, at construction).
  virtual Shape output_shape(const Shape& input) const { return input; }
  /// in: contiguous f32 of shape `input`; out: contiguous f32 of output_shape(input), not
  /// overlapping `in`. Random transforms draw from gen.
  virtual void apply(const float* in, const Shape& input, float* out, Generator& gen) const = 0;

  /// Applies the transform to one f32 image [C, H, W] and returns a new tensor.
  Tensor operator()(const Tensor& image, Generator& gen) const;
};

/// out[c] = (in[c] - mean[c]) / std[c], with one value per channel, or one for all channels.
class Normalize : public Transform {
 public:
  /// `data::Normalize(data::kFashionMnistMean, data::kFashionMnistStd)`.
  Normalize(std::vector<float> mean, std::vector<float> std);
  Shape output_shape(const Shape& input) const override;
  void apply(const float* in, const Shape& input, float* out, Generator& gen) const override;

 private:
  std::vector<float> mean_, std_;
};

/// Adds `padding` pixels of value `fill` on every side: [C, H, W] -> [C, H + 2p, W + 2p].
/// Pad(2) makes Fashion-MNIST's 28x28 images 32x32, the size of CIFAR-10's.
class Pad : public Transform {
 public:
  /// `data::Pad(2)`.
  explicit Pad(int64_t padding, float fill = 0.0f);
  Shape output_shape(const Shape& input) const override;
  void apply(const float* in, const Shape& input, float* out, Generator& gen) const override;

 private:
  int64_t padding_;
  float fill_;
};

/// Zero-pads by `padding` on every side, then crops a size x size window at a uniformly random
/// offset: top = below(H + 2p - size + 1), then left = below(W + 2p - size + 1).
class RandomCrop : public Transform {
 public:
  /// `data::RandomCrop(32, 4)`: CIFAR-10's crop.
  explicit RandomCrop(int64_t size, int64_t padding = 0);
  Shape output_shape(const Shape& input) const override;
  void apply(const float* in, const Shape& input, float* out, Generator& gen) const override;

 private:
  int64_t size_, padding_;
};

/// Mirrors the image left to right with probability p (one draw: flip when next_double() < p).
class RandomHorizontalFlip : public Transform {
 public:
  /// Flips with probability p.
  explicit RandomHorizontalFlip(double p = 0.5);
  void apply(const float* in, const Shape& input, float* out, Generator& gen) const override;

 private:
  double p_;
};

/// Applies its steps in order; each step draws from the same generator, after the previous one.
class Compose : public Transform {
 public:
  /// The steps, in order (compose() builds one from transform values).
  explicit Compose(std::vector<std::shared_ptr<const Transform>> steps);
  Shape output_shape(const Shape& input) const override;
  void apply(const float* in, const Shape& input, float* out, Generator& gen) const override;

 private:
  std::vector<std::shared_ptr<const Transform>> steps_;
};

/// compose(RandomCrop(32, 4), RandomHorizontalFlip(), ...): a shared Compose of copies of the
/// given transforms.
template <class... Steps>
std::shared_ptr<const Transform> compose(Steps... steps) {
  return std::make_shared<Compose>(
      std::vector<std::shared_ptr<const Transform>>{std::make_shared<Steps>(std::move(steps))...});
}

/// The standard CIFAR-10 training augmentation: RandomCrop(32, 4), RandomHorizontalFlip(0.5),
/// Normalize(kCifar10Mean, kCifar10Std).
std::shared_ptr<const Transform> cifar10_train_transform();
/// Normalize(kCifar10Mean, kCifar10Std) alone, for evaluation.
std::shared_ptr<const Transform> cifar10_test_transform();

}  // namespace kiln::data
