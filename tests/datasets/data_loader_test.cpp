#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <type_traits>

#include "dataset_files.h"

using namespace kiln;
using namespace kiln::data;
using Catch::Matchers::Contains;
using kiln::test::error_of;

namespace {

// A batch reduced to plain values, so batches compare exactly.
struct Flat {
  Shape shape;
  std::vector<float> images;
  std::vector<int64_t> labels;
  std::vector<int64_t> indices;
  bool operator==(const Flat&) const = default;
};

Flat flat(const Batch& b) {
  return {b.images.shape(), b.images.to_vector<float>(), b.labels.to_vector<int64_t>(), b.indices};
}

// Every batch of the loader's next `epochs` epochs.
std::vector<Flat> run(DataLoader& loader, int epochs) {
  std::vector<Flat> out;
  for (int e = 0; e < epochs; ++e) {
    for (const Batch& b : loader) out.push_back(flat(b));
  }
  return out;
}

// Restores the thread count a test changes, even when it fails.
struct ThreadCountGuard {
  int saved = num_threads();
  ~ThreadCountGuard() { set_num_threads(saved); }
};

// A dataset that implements only size() and get(): image [1, 2, 2] filled with the index.
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t n) : n_(n) {}
  int64_t size() const override { return n_; }
  Example get(int64_t index) const override {
    KILN_CHECK(index >= 0 && index < n_, "CountingDataset: index ", index, " out of range");
    return {Tensor::full({1, 2, 2}, static_cast<double>(index)), index % 3};
  }

 private:
  int64_t n_;
};

// get() fails for one index, as a reader of a broken file would.
class FailingDataset : public Dataset {
 public:
  int64_t size() const override { return 20; }
  Shape image_shape() const override { return {1, 2, 2}; }
  Example get(int64_t index) const override {
    KILN_CHECK(index != 13, "FailingDataset: example 13 is unreadable");
    return {Tensor::zeros({1, 2, 2}), 0};
  }
};

}  // namespace

// A loader over a temporary dataset would dangle: it does not compile.
static_assert(!std::is_constructible_v<DataLoader, InMemoryImages&&, LoaderOptions>);
static_assert(std::is_constructible_v<DataLoader, InMemoryImages&, LoaderOptions>);

TEST_CASE("DataLoader runs the public API example on the real Fashion-MNIST") {
  REQUIRE(std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"));
  data::FashionMNIST train("/usr/share/datasets/fashion-mnist", data::Split::Train);
  data::Example e = train.get(0);
  CHECK(e.image.shape() == Shape{1, 28, 28});
  CHECK(e.label == 9);
  data::DataLoader loader(train, data::LoaderOptions{.batch_size = 32, .shuffle = true, .seed = 0});
  int64_t batches = 0, examples = 0;
  std::vector<int64_t> label_counts(10, 0);
  for (const data::Batch& b : loader) {
    REQUIRE(b.images.dim() == 4);
    REQUIRE(b.images.size(0) == b.labels.size(0));
    for (int64_t label : b.labels.to_vector<int64_t>()) ++label_counts[label];
    examples += b.images.size(0);
    ++batches;
  }
  CHECK(batches == 1875);
  CHECK(examples == 60000);
  for (int64_t count : label_counts) CHECK(count == 6000);
}

TEST_CASE("DataLoader passes on a dataset's error, with prefetch on or off") {
  FailingDataset data;
  for (int64_t prefetch : {0, 3}) {
    DataLoader loader(data, LoaderOptions{.batch_size = 4, .prefetch = prefetch});
    std::string message = error_of([&] {
      for (const Batch& b : loader) (void)b;
    });
    INFO("prefetch " << prefetch);
    CHECK_THAT(message, Contains("FailingDataset: example 13 is unreadable"));
    CHECK(loader.state().batch == 3);  // batches 0..2 were delivered; batch 3 failed
    // The loader is still usable: asking again fails the same way, and other positions work.
    CHECK_THROWS_AS(loader.next(), kiln::Error);
    loader.load_state({.seed = 0, .epoch = 0, .batch = 4});
    CHECK(loader.next()->labels.size(0) == 4);
  }
}

TEST_CASE("DataLoader batches in index order without shuffle") {
  InMemoryImages data = random_images(10, {3, 4, 5}, 7, /*seed=*/1);
  DataLoader loader(data, LoaderOptions{.batch_size = 4});
  CHECK(loader.num_batches() == 3);
  std::vector<int64_t> sizes;
  int64_t next_index = 0;
  for (const Batch& b : loader) {
    const int64_t B = b.images.size(0);
    sizes.push_back(B);
    REQUIRE(b.images.shape() == Shape{B, 3, 4, 5});
    REQUIRE(b.images.dtype() == DType::f32);
    REQUIRE(b.labels.shape() == Shape{B});
    REQUIRE(b.labels.dtype() == DType::i64);
    std::vector<float> images = b.images.to_vector<float>();
    std::vector<int64_t> labels = b.labels.to_vector<int64_t>();
    for (int64_t j = 0; j < B; ++j, ++next_index) {
      CHECK(b.indices[j] == next_index);
      Example e = data.get(next_index);
      CHECK(labels[j] == e.label);
      std::vector<float> want = e.image.to_vector<float>();
      CHECK(std::equal(want.begin(), want.end(), images.begin() + j * 60));
    }
  }
  CHECK(sizes == std::vector<int64_t>{4, 4, 2});
  CHECK(loader.state().epoch == 1);

  DataLoader dropping(data, LoaderOptions{.batch_size = 4, .drop_last = true});
  CHECK(dropping.num_batches() == 2);
  CHECK(run(dropping, 1).size() == 2);
}

TEST_CASE("DataLoader reshuffles every epoch, the same way for the same seed") {
  InMemoryImages data = random_images(23, {1, 2, 3}, 5, /*seed=*/2);
  const LoaderOptions options{.batch_size = 5, .shuffle = true, .seed = 42};
  DataLoader a(data, options), b(data, options);
  std::vector<Flat> first = run(a, 3), second = run(b, 3);
  CHECK(first == second);

  // Each epoch visits every example once, in an order of its own.
  std::vector<std::vector<int64_t>> orders(3);
  for (size_t k = 0; k < first.size(); ++k) {
    auto& order = orders[k / 5];
    order.insert(order.end(), first[k].indices.begin(), first[k].indices.end());
  }
  for (const auto& order : orders) {
    std::vector<int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> all(23);
    std::iota(all.begin(), all.end(), int64_t{0});
    CHECK(sorted == all);
  }
  CHECK(orders[0] != orders[1]);
  CHECK(orders[1] != orders[2]);

  DataLoader other(data, LoaderOptions{.batch_size = 5, .shuffle = true, .seed = 43});
  CHECK(run(other, 1) != std::vector<Flat>(first.begin(), first.begin() + 5));
}

TEST_CASE("DataLoader gives the same batches with prefetch on or off, at any thread count") {
  ThreadCountGuard guard;
  InMemoryImages data = random_images(50, {3, 32, 32}, 10, /*seed=*/3);
  auto options = [](int64_t prefetch) {
    return LoaderOptions{.batch_size = 8,
                         .shuffle = true,
                         .seed = 7,
                         .prefetch = prefetch,
                         .transform = cifar10_train_transform()};
  };
  set_num_threads(2);
  DataLoader off(data, options(0));
  const std::vector<Flat> reference = run(off, 3);
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    for (int64_t prefetch : {0, 1, 4}) {
      INFO(threads << " threads, prefetch " << prefetch);
      DataLoader loader(data, options(prefetch));
      CHECK(run(loader, 3) == reference);
    }
  }
  // The augmentation really happened: the images differ from the raw, normalized ones.
  set_num_threads(2);
  DataLoader plain(
      data,
      LoaderOptions{
          .batch_size = 8, .shuffle = true, .seed = 7, .transform = cifar10_test_transform()});
  std::vector<Flat> unaugmented = run(plain, 1);
  CHECK(unaugmented[0].indices == reference[0].indices);
  CHECK(unaugmented[0].images != reference[0].images);
  // And it differs between epochs for the same example.
  CHECK(reference[0].images != reference[7].images);
}

TEST_CASE("DataLoader resumes from a saved state with exactly the same batches") {
  InMemoryImages data = random_images(30, {3, 8, 8}, 4, /*seed=*/4);
  const LoaderOptions options{.batch_size = 7,
                              .shuffle = true,
                              .seed = 11,
                              .transform = compose(RandomCrop(8, 2), RandomHorizontalFlip(0.5))};
  DataLoader original(data, options);
  const std::vector<Flat> all = run(original, 3);  // 5 batches per epoch
  REQUIRE(all.size() == 15);

  // Train through epoch 0 and three batches of epoch 1, saving the state after each batch.
  DataLoader first(data, options);
  LoaderState saved;
  int seen = 0;
  for (int e = 0; e < 2 && seen < 8; ++e) {
    for (const Batch& b : first) {
      CHECK(flat(b) == all[seen]);
      ++seen;
      saved = first.state();
      if (seen == 8) break;
    }
  }
  CHECK(saved.epoch == 1);
  CHECK(saved.batch == 3);
  CHECK(saved.seed == 11);

  // A new loader, with different prefetching, restored from the three integers.
  LoaderOptions restored_options = options;
  restored_options.prefetch = 0;
  restored_options.seed = 999;  // the state's seed wins
  DataLoader resumed(data, restored_options);
  resumed.load_state(saved);
  std::vector<Flat> rest = run(resumed, 2);  // the rest of epoch 1, then epoch 2
  CHECK(rest == std::vector<Flat>(all.begin() + 8, all.end()));

  // The interrupted loader itself also continues where it stopped.
  std::vector<Flat> continued = run(first, 2);
  CHECK(continued == rest);

  // A state saved after the last batch of an epoch resumes at the next epoch.
  DataLoader at_end(data, options);
  at_end.load_state({.seed = 11, .epoch = 0, .batch = 5});
  CHECK(run(at_end, 1) == std::vector<Flat>(all.begin() + 5, all.begin() + 10));

  // batch_at assembles any batch without moving the loader.
  CHECK(flat(original.batch_at(2, 4)) == all[14]);
}

TEST_CASE("DataLoader reads datasets that only implement get()") {
  CountingDataset data(9);
  DataLoader loader(data, LoaderOptions{.batch_size = 4, .shuffle = true, .seed = 5});
  CHECK(loader.image_shape() == Shape{1, 2, 2});
  for (const Batch& b : loader) {
    std::vector<float> images = b.images.to_vector<float>();
    std::vector<int64_t> labels = b.labels.to_vector<int64_t>();
    for (size_t j = 0; j < b.indices.size(); ++j) {
      CHECK(images[4 * j] == static_cast<float>(b.indices[j]));
      CHECK(labels[j] == b.indices[j] % 3);
    }
  }
}

TEST_CASE("DataLoader checks its options and states") {
  InMemoryImages data = random_images(10, {1, 28, 28}, 10);
  CHECK_THAT(error_of([&] { DataLoader(data, LoaderOptions{.batch_size = 0}); }),
             Contains("DataLoader: batch_size must be at least 1, got 0"));
  CHECK_THAT(
      error_of([&] { DataLoader(data, LoaderOptions{.batch_size = 11, .drop_last = true}); }),
      Contains("drop_last with batch_size 11 leaves no batch of a dataset of 10 examples"));
  CHECK_THAT(error_of([&] { DataLoader(data, LoaderOptions{.prefetch = -1}); }),
             Contains("prefetch must be in [0, 64], got -1"));
  CHECK_THAT(
      error_of([&] { DataLoader(data, LoaderOptions{.transform = cifar10_train_transform()}); }),
      Contains("Normalize: 3 channel statistics do not fit an image of 1 channels"));
  CHECK_THAT(
      error_of([&] {
        DataLoader(data, LoaderOptions{.transform = std::make_shared<RandomCrop>(37, 4)});
      }),
      Contains("RandomCrop: a 37x37 crop does not fit an image of shape [1, 28, 28] padded by 4"));
  DataLoader loader(data, LoaderOptions{.batch_size = 3});
  CHECK_THAT(error_of([&] { loader.load_state({.seed = 0, .epoch = 0, .batch = 5}); }),
             Contains("expected epoch >= 0 and batch in [0, 4], got epoch 0, batch 5"));
}

TEST_CASE("DataLoader pads Fashion-MNIST-sized images to 32x32") {
  InMemoryImages data = random_images(6, {1, 28, 28}, 10);
  DataLoader loader(data, LoaderOptions{.batch_size = 6, .transform = std::make_shared<Pad>(2)});
  Batch b = *loader.next();
  CHECK(b.images.shape() == Shape{6, 1, 32, 32});
}
