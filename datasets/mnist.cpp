#include <kiln/datasets/mnist.h>

#include <filesystem>

#include <kiln/core/error.h>

namespace kiln::data {

namespace {

// The first of root/<stem>, root/<stem>.gz, root/<name>/raw/<stem>, root/<name>/raw/<stem>.gz
// that exists.
std::string find_idx_file(const std::string& name, const std::string& root,
                          const std::string& stem) {
  namespace fs = std::filesystem;
  const fs::path dirs[] = {fs::path(root), fs::path(root) / name / "raw"};
  for (const fs::path& dir : dirs) {
    for (const char* suffix : {"", ".gz"}) {
      fs::path candidate = dir / (stem + suffix);
      std::error_code ec;
      if (fs::exists(candidate, ec)) return candidate.string();
    }
  }
  throw FileNotFoundError(detail::concat(name, ": found neither ", stem, " nor ", stem, ".gz in ",
                                         root, " or ", (fs::path(root) / name / "raw").string()));
}

}  // namespace

ImageBytes read_mnist_format(const std::string& name, const std::string& root, Split split,
                             std::vector<std::string> classes, const IdxLimits& limits) {
  const std::string prefix = split == Split::Train ? "train" : "t10k";
  IdxFile images(find_idx_file(name, root, prefix + "-images-idx3-ubyte"), 3, name, limits);
  IdxFile labels(find_idx_file(name, root, prefix + "-labels-idx1-ubyte"), 1, name, limits);
  KILN_CHECK(images.dims()[0] == labels.dims()[0], name, ": ", images.path(), " holds ",
             images.dims()[0], " images but ", labels.path(), " holds ", labels.dims()[0],
             " labels; dims[0] (item count) must agree");

  ImageBytes contents;
  contents.name = name;
  contents.image_shape = {1, images.dims()[1], images.dims()[2]};
  contents.classes = std::move(classes);
  contents.labels = labels.read_data();
  for (size_t i = 0; i < contents.labels.size(); ++i) {
    KILN_CHECK(contents.labels[i] < contents.classes.size(), name, ": ", labels.path(), ": label ",
               i, " is ", static_cast<int>(contents.labels[i]), ", out of range [0, ",
               contents.classes.size(), ")");
  }
  contents.pixels = images.read_data();
  return contents;
}

MNIST::MNIST(const std::string& root, Split split)
    : InMemoryImages(read_mnist_format("MNIST", root, split,
                                       {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"})) {}

FashionMNIST::FashionMNIST(const std::string& root, Split split)
    : InMemoryImages(read_mnist_format("FashionMNIST", root, split,
                                       {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"})) {}

}  // namespace kiln::data
