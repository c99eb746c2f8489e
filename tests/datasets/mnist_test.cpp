#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include <cmath>
#include <filesystem>

#include "dataset_files.h"

using namespace kiln;
using namespace kiln::data;
using Catch::Matchers::Contains;
using kiln::test::Bytes;
using kiln::test::error_of;

namespace {

constexpr uint32_t kRows = 5, kCols = 3;  // not square, so rows and columns cannot be swapped

// Writes a split of `n` images of kRows x kCols with labels 0, 1, ..., (mod 10).
void write_split(const std::string& dir, const std::string& prefix, uint32_t n, bool gzipped,
                 uint32_t label_count = 0) {
  if (label_count == 0) label_count = n;
  Bytes labels;
  for (uint32_t i = 0; i < label_count; ++i) labels.push_back(static_cast<uint8_t>(i % 10));
  Bytes images = kiln::test::idx_bytes({n, kRows, kCols}, kiln::test::pattern(n * kRows * kCols));
  Bytes label_file = kiln::test::idx_bytes({label_count}, labels);
  const std::string suffix = gzipped ? ".gz" : "";
  kiln::test::write_file(dir + "/" + prefix + "-images-idx3-ubyte" + suffix,
                         gzipped ? kiln::test::gzip(images) : images);
  kiln::test::write_file(dir + "/" + prefix + "-labels-idx1-ubyte" + suffix,
                         gzipped ? kiln::test::gzip(label_file) : label_file);
}

}  // namespace

TEST_CASE("MNIST reads a generated split, gzipped or raw") {
  kiln::test::TempDir dir;
  write_split(dir.path(), "train", 12, /*gzipped=*/true);
  write_split(dir.path(), "t10k", 7, /*gzipped=*/false);

  MNIST train(dir.path(), Split::Train);
  MNIST test(dir.path(), Split::Test);
  CHECK(train.size() == 12);
  CHECK(test.size() == 7);
  CHECK(train.image_shape() == Shape{1, kRows, kCols});
  CHECK(train.classes().size() == 10);

  const Bytes pixels = kiln::test::pattern(12 * kRows * kCols);
  for (int64_t i : {0, 5, 11}) {
    Example e = train.get(i);
    CHECK(e.label == i % 10);
    REQUIRE(e.image.shape() == Shape{1, kRows, kCols});
    REQUIRE(e.image.dtype() == DType::f32);
    std::vector<float> values = e.image.to_vector<float>();
    for (size_t k = 0; k < values.size(); ++k) {
      // [1, H, W] row-major: element (y, x) of image i is byte i * H * W + y * W + x.
      CHECK(values[k] == static_cast<float>(pixels[i * kRows * kCols + k]) / 255.0f);
    }
  }
  CHECK_THAT(error_of([&] { train.get(12); }), Contains("MNIST: index 12 is out of range [0, 12)"));
  CHECK_THAT(error_of([&] { train.get(-1); }), Contains("index -1 is out of range"));
}

TEST_CASE("FashionMNIST finds the torchvision layout and names its classes") {
  kiln::test::TempDir dir;
  write_split(dir.file("FashionMNIST/raw"), "t10k", 3, /*gzipped=*/true);
  FashionMNIST test(dir.path(), Split::Test);
  CHECK(test.size() == 3);
  CHECK(test.classes().front() == "T-shirt/top");
  CHECK(test.classes().back() == "Ankle boot");
  CHECK_THAT(error_of([&] { FashionMNIST(dir.path(), Split::Train); }),
             Contains("FashionMNIST: found neither train-images-idx3-ubyte nor "
                      "train-images-idx3-ubyte.gz in " +
                      dir.path()));
  CHECK_THROWS_AS(FashionMNIST(dir.path(), Split::Train), kiln::FileNotFoundError);
}

TEST_CASE("MNIST refuses images and labels whose counts disagree") {
  kiln::test::TempDir dir;
  write_split(dir.path(), "train", 12, /*gzipped=*/true, /*label_count=*/11);
  std::string message = error_of([&] { MNIST(dir.path(), Split::Train); });
  CHECK_THAT(message, Contains("train-images-idx3-ubyte.gz holds 12 images but"));
  CHECK_THAT(message, Contains("train-labels-idx1-ubyte.gz holds 11 labels"));
  CHECK_THAT(message, Contains("dims[0] (item count) must agree"));
}

TEST_CASE("MNIST refuses a label out of range") {
  kiln::test::TempDir dir;
  write_split(dir.path(), "t10k", 4, /*gzipped=*/false);
  kiln::test::write_file(dir.file("t10k-labels-idx1-ubyte"), kiln::test::idx_bytes({4}, {1, 2, 10, 3}));
  CHECK_THAT(error_of([&] { MNIST(dir.path(), Split::Test); }),
             Contains("t10k-labels-idx1-ubyte: label 2 is 10, out of range [0, 10)"));
}

TEST_CASE("MNIST refuses swapped files and truncated images with the file and field") {
  kiln::test::TempDir dir;
  write_split(dir.path(), "t10k", 4, /*gzipped=*/false);
  std::filesystem::rename(dir.file("t10k-images-idx3-ubyte"), dir.file("swap"));
  std::filesystem::rename(dir.file("t10k-labels-idx1-ubyte"), dir.file("t10k-images-idx3-ubyte"));
  std::filesystem::rename(dir.file("swap"), dir.file("t10k-labels-idx1-ubyte"));
  CHECK_THAT(error_of([&] { MNIST(dir.path(), Split::Test); }),
             Contains("t10k-images-idx3-ubyte: magic: expected 0x00000803 (unsigned byte, 3 dims), "
                      "got 0x00000801"));

  write_split(dir.path(), "t10k", 4, /*gzipped=*/false);
  Bytes images = kiln::test::idx_bytes({4, kRows, kCols}, kiln::test::pattern(4 * kRows * kCols));
  images.resize(images.size() - 7);
  kiln::test::write_file(dir.file("t10k-images-idx3-ubyte"), images);
  CHECK_THAT(error_of([&] { MNIST(dir.path(), Split::Test); }),
             Contains("t10k-images-idx3-ubyte: file size 69 bytes, but the header declares 76 "
                      "(16 header + 60 data): truncated"));
}

// The real data, from Debian's dataset-fashion-mnist (scripts/install-deps.sh installs it).
TEST_CASE("FashionMNIST reads the real Debian dataset exactly") {
  const std::string root = "/usr/share/datasets/fashion-mnist";
  INFO("install it with scripts/install-deps.sh (Debian package dataset-fashion-mnist)");
  REQUIRE(std::filesystem::exists(root + "/train-images-idx3-ubyte.gz"));

  struct Expected {
    Split split;
    int64_t size;
    std::vector<int64_t> first_labels;
    uint64_t pixel_sum;        // the sum of every pixel byte
    uint64_t first_image_sum;  // the sum of the first image's bytes
  };
  const Expected expected[] = {
      {Split::Train, 60000, {9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9}, 3431114169u, 76247},
      {Split::Test, 10000, {9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5}, 573469082u, 33456},
  };
  for (const Expected& want : expected) {
    FashionMNIST data(root, want.split);
    INFO(split_name(want.split));
    REQUIRE(data.size() == want.size);
    CHECK(data.image_shape() == Shape{1, 28, 28});
    for (size_t i = 0; i < want.first_labels.size(); ++i) {
      CHECK(data.get(static_cast<int64_t>(i)).label == want.first_labels[i]);
    }
    uint64_t sum = 0;
    std::vector<int64_t> label_counts(10, 0);
    for (int64_t i = 0; i < data.size(); ++i) {
      const uint8_t* pixels = data.pixels(i);
      for (int k = 0; k < 28 * 28; ++k) sum += pixels[k];
      ++label_counts[data.label(i)];
    }
    CHECK(sum == want.pixel_sum);
    for (int64_t count : label_counts) CHECK(count == want.size / 10);  // balanced classes

    // get() is the bytes scaled to [0, 1].
    std::vector<float> first = data.get(0).image.to_vector<float>();
    double first_sum = 0;
    for (float v : first) first_sum += std::lround(v * 255.0f);
    CHECK(first_sum == static_cast<double>(want.first_image_sum));
  }
}
