#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include <set>
#include <utility>

#include "dataset_files.h"

using namespace kiln;
using namespace kiln::data;
using Catch::Matchers::Contains;
using kiln::test::error_of;

namespace {

// An f32 image [C, H, W] with distinct values: value(c, y, x) = c * 1000 + y * 100 + x.
Tensor numbered_image(int64_t C, int64_t H, int64_t W) {
  std::vector<float> values;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) values.push_back(static_cast<float>(c * 1000 + y * 100 + x));
  return Tensor::from_vector(values, {C, H, W});
}

// Reference: zero-pad by p, then take the size x size window at (top, left).
std::vector<float> crop_reference(const Tensor& image, int64_t size, int64_t p, int64_t top,
                                  int64_t left) {
  const int64_t C = image.size(0), H = image.size(1), W = image.size(2);
  std::vector<float> in = image.to_vector<float>(), out;
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t y = 0; y < size; ++y) {
      for (int64_t x = 0; x < size; ++x) {
        const int64_t sy = top + y - p, sx = left + x - p;
        const bool inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
        out.push_back(inside ? in[(c * H + sy) * W + sx] : 0.0f);
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("Normalize subtracts the mean and divides by the std per channel") {
  Generator gen(0);
  Tensor image = Tensor::from_vector(std::vector<float>{0.5f, 1.0f, 0.0f, 0.25f}, {2, 1, 2});
  Tensor out = Normalize({0.5f, 0.25f}, {0.5f, 0.125f})(image, gen);
  CHECK(out.to_vector<float>() == std::vector<float>{0.0f, 1.0f, -2.0f, 0.0f});
  // One value for every channel.
  CHECK(Normalize({0.5f}, {0.5f})(image, gen).to_vector<float>() ==
        std::vector<float>{0.0f, 1.0f, -1.0f, -0.5f});

  CHECK_THAT(error_of([&] { Normalize(kCifar10Mean, kCifar10Std)(image, gen); }),
             Contains("Normalize: 3 channel statistics do not fit an image of 2 channels"));
  CHECK_THAT(error_of([] { Normalize({0.5f}, {0.0f}); }), Contains("every std must be positive"));
  CHECK_THAT(error_of([] {
               Normalize({0.5f, 0.5f}, {1.0f});
             }),
             Contains("mean and std of the same non-zero length, got 2 and 1"));
}

TEST_CASE("Pad surrounds the image with the fill value") {
  Generator gen(0);
  Tensor image = numbered_image(2, 3, 4);
  Tensor out = Pad(2)(image, gen);
  REQUIRE(out.shape() == Shape{2, 7, 8});
  std::vector<float> in = image.to_vector<float>(), want;
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t y = 0; y < 7; ++y)
      for (int64_t x = 0; x < 8; ++x) {
        const bool inside = y >= 2 && y < 5 && x >= 2 && x < 6;
        want.push_back(inside ? in[(c * 3 + y - 2) * 4 + x - 2] : 0.0f);
      }
  CHECK(out.to_vector<float>() == want);
  // Pad(p) is the top-left crop of size H + 2p of the padded image (for a square image).
  Tensor square = numbered_image(1, 28, 28);
  Tensor padded = Pad(2)(square, gen);
  REQUIRE(padded.shape() == Shape{1, 32, 32});
  CHECK(padded.to_vector<float>() == crop_reference(square, 32, 2, 0, 0));
  CHECK(Pad(1, 0.5f)(Tensor::zeros({1, 1, 1}), gen).to_vector<float>() ==
        std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f, 0.0f, 0.5f, 0.5f, 0.5f, 0.5f});
}

TEST_CASE("RandomCrop equals the pad-then-crop reference at every drawn offset") {
  for (auto [H, W, size, p] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{32, 32, 32, 4},
                               {5, 7, 3, 0},
                               {3, 3, 5, 1},
                               {17, 9, 9, 2},
                               {1, 1, 3, 1}}) {
    Tensor image = numbered_image(3, H, W);
    std::set<std::pair<int64_t, int64_t>> offsets;
    for (uint64_t seed = 0; seed < 2000; ++seed) {
      Generator gen(seed), replay(seed);
      Tensor out = RandomCrop(size, p)(image, gen);
      REQUIRE(out.shape() == Shape{3, size, size});
      // The offsets are two draws: top, then left.
      const auto top = static_cast<int64_t>(replay.next_below(H + 2 * p - size + 1));
      const auto left = static_cast<int64_t>(replay.next_below(W + 2 * p - size + 1));
      INFO("H " << H << " W " << W << " size " << size << " padding " << p << " top " << top
                << " left " << left);
      REQUIRE(out.to_vector<float>() == crop_reference(image, size, p, top, left));
      offsets.insert({top, left});
    }
    // Every offset turns up (the ranges here have at most 9 x 9 = 81 offsets).
    CHECK(static_cast<int64_t>(offsets.size()) == (H + 2 * p - size + 1) * (W + 2 * p - size + 1));
  }
  CHECK_THAT(
      error_of([] {
        Generator gen(0);
        RandomCrop(41, 4)(Tensor::zeros({3, 32, 32}), gen);
      }),
      Contains("RandomCrop: a 41x41 crop does not fit an image of shape [3, 32, 32] padded by 4"));
}

TEST_CASE("RandomHorizontalFlip mirrors with probability p") {
  Tensor image = numbered_image(2, 3, 5);
  std::vector<float> mirrored;
  {
    std::vector<float> in = image.to_vector<float>();
    for (int64_t row = 0; row < 6; ++row)
      for (int64_t x = 0; x < 5; ++x) mirrored.push_back(in[row * 5 + 4 - x]);
  }
  Generator gen(3);
  CHECK(RandomHorizontalFlip(1.0)(image, gen).to_vector<float>() == mirrored);
  CHECK(RandomHorizontalFlip(0.0)(image, gen).to_vector<float>() == image.to_vector<float>());
  int flips = 0;
  for (uint64_t seed = 0; seed < 1000; ++seed) {
    Generator g(seed), replay(seed);
    const bool flipped = RandomHorizontalFlip(0.5)(image, g).to_vector<float>() == mirrored;
    CHECK(flipped == (replay.next_double() < 0.5));
    flips += flipped;
  }
  CHECK(flips > 430);
  CHECK(flips < 570);
}

TEST_CASE("Compose runs its steps in order on one generator") {
  Tensor image = numbered_image(3, 32, 32);
  auto pipeline = cifar10_train_transform();
  CHECK(pipeline->output_shape({3, 32, 32}) == Shape{3, 32, 32});
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Generator a(seed), b(seed);
    Tensor composed = (*pipeline)(image, a);
    Tensor stepwise = RandomCrop(32, 4)(image, b);
    stepwise = RandomHorizontalFlip(0.5)(stepwise, b);
    stepwise = Normalize(kCifar10Mean, kCifar10Std)(stepwise, b);
    CHECK(composed.to_vector<float>() == stepwise.to_vector<float>());
    CHECK(a.offset() == b.offset());
  }
  // Shapes flow through the steps: 28x28 -> Pad(2) -> 32x32 -> crop 30.
  auto fashion = compose(Pad(2), RandomCrop(30), Normalize(kFashionMnistMean, kFashionMnistStd));
  CHECK(fashion->output_shape({1, 28, 28}) == Shape{1, 30, 30});
  Generator gen(0);
  CHECK((*fashion)(numbered_image(1, 28, 28), gen).shape() == Shape{1, 30, 30});
  auto two_channels = compose(Pad(2), Normalize({0.5f, 0.5f}, {1.0f, 1.0f}));
  CHECK_THAT(error_of([&] {
               two_channels->output_shape({3, 28, 28});
             }),
             Contains("Normalize: 2 channel statistics do not fit an image of 3 channels"));
}
