// MNIST and Fashion-MNIST: 28x28 grayscale images in IDX files, gzipped or raw.
//
//   data::FashionMNIST train("/usr/share/datasets/fashion-mnist", data::Split::Train);
//   train.size() == 60000; train.get(0).image is f32 [1, 28, 28] in [0, 1]
//
// The files are train-images-idx3-ubyte / train-labels-idx1-ubyte and t10k-images-idx3-ubyte /
// t10k-labels-idx1-ubyte, each with or without .gz, in `root` or in `root/<Name>/raw` (the
// layout torchvision downloads to). The whole split is loaded into memory at construction.
#pragma once

#include <string>
#include <vector>

#include <kiln/datasets/idx.h>
#include <kiln/datasets/in_memory_images.h>

namespace kiln::data {

/// Reads a split of any dataset in the MNIST file layout: `name` is both the error prefix and the
/// torchvision sub-directory, and labels must index `classes`. Validates both headers and that
/// their counts agree before reading either body.
ImageBytes read_mnist_format(const std::string& name, const std::string& root, Split split,
                             std::vector<std::string> classes, const IdxLimits& limits = {});

/// Handwritten digits; classes "0" to "9".
class MNIST : public InMemoryImages {
 public:
  /// Loads the split from `root` (see the file comment for the layout).
  MNIST(const std::string& root, Split split);
};

/// Zalando's clothing images; classes "T-shirt/top", "Trouser", ..., "Ankle boot".
class FashionMNIST : public InMemoryImages {
 public:
  /// `data::FashionMNIST test("/usr/share/datasets/fashion-mnist", data::Split::Test)`.
  FashionMNIST(const std::string& root, Split split);
};

}  // namespace kiln::data
