// The dataset interface: a fixed number of labelled images, each read by index.
//
//   data::FashionMNIST train("/usr/share/datasets/fashion-mnist", data::Split::Train);
//   data::Example e = train.get(0);   // e.image: f32 [C, H, W] in [0, 1]; e.label: int64_t
//
// A dataset of your own implements size() and get(). The built-in readers also override
// image_shape() and get_into(), which the DataLoader uses to write images straight into a batch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <kiln/core/tensor.h>

namespace kiln::data {

/// Which half of a dataset to read.
enum class Split { Train, Test };

/// "train" or "test".
const char* split_name(Split split);

/// One labelled image: image f32 [C, H, W], label in [0, num_classes).
struct Example {
  Tensor image;       ///< f32 [C, H, W]
  int64_t label = 0;  ///< the class index
};

/// A fixed number of labelled images, each read by index. A dataset of your own implements
/// size() and get().
class Dataset {
 public:
  virtual ~Dataset() = default;

  /// The number of examples.
  virtual int64_t size() const = 0;
  /// Example `index` in [0, size()). Throws kiln::Error when index is out of range.
  virtual Example get(int64_t index) const = 0;

  /// [C, H, W], the same for every example. The default reads it from get(0).
  virtual Shape image_shape() const;
  /// Writes image `index` as contiguous f32 [C, H, W] to `image` (image_shape() numel floats)
  /// and returns its label. Must be safe to call from several threads at once. The default calls
  /// get(index) and checks the image's dtype and shape against image_shape(), so a dataset whose
  /// get(0) is costly should override image_shape().
  virtual int64_t get_into(int64_t index, float* image) const;
  /// Class names in label order; empty when the dataset has none.
  virtual std::vector<std::string> classes() const { return {}; }
};

}  // namespace kiln::data
