// InMemoryImages: N uint8 images [C, H, W] and their labels, kept in one contiguous buffer and
// converted to f32 in [0, 1] one example at a time. The file readers (MNIST, FashionMNIST,
// CIFAR10) load a whole split into one of these; benchmarks and tests build one directly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <kiln/datasets/dataset.h>

namespace kiln::data {

/// The contents of an InMemoryImages.
struct ImageBytes {
  std::string name;                  ///< used in error messages: "CIFAR10", "FashionMNIST", ...
  Shape image_shape;                 ///< [C, H, W]
  std::vector<uint8_t> pixels;       ///< N * C * H * W bytes, example-major, then C, H, W
  std::vector<uint8_t> labels;       ///< N labels, each < classes.size()
  std::vector<std::string> classes;  ///< class names in label order
};

/// A labelled image dataset held in memory as bytes, served as f32 in [0, 1].
class InMemoryImages : public Dataset {
 public:
  /// Takes the buffers; checks that their sizes agree and every label is in range.
  explicit InMemoryImages(ImageBytes contents);

  int64_t size() const override { return size_; }
  /// image: f32 [C, H, W], pixel / 255.
  Example get(int64_t index) const override;
  Shape image_shape() const override { return contents_.image_shape; }
  int64_t get_into(int64_t index, float* image) const override;
  std::vector<std::string> classes() const override { return contents_.classes; }

  /// The dataset's name, "FashionMNIST".
  const std::string& name() const { return contents_.name; }
  /// The C * H * W bytes of image `index`.
  const uint8_t* pixels(int64_t index) const;
  /// The label of example `index`.
  int64_t label(int64_t index) const;

 private:
  void check_index(int64_t index) const;

  ImageBytes contents_;
  int64_t size_ = 0;
  int64_t image_numel_ = 0;
};

/// n images of uniform random pixels with uniform random labels in [0, num_classes), drawn from
/// Generator(seed). For benchmarks and tests that need data of a given shape without files.
InMemoryImages random_images(int64_t n, const Shape& image_shape, int64_t num_classes,
                             uint64_t seed = 0);

/// Converts n bytes to floats in [0, 1]: out[i] = in[i] / 255.
void bytes_to_unit_floats(const uint8_t* in, int64_t n, float* out);

}  // namespace kiln::data
