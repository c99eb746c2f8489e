// DistributedSampler (in one process, one sampler per rank): disjoint shards that cover every
// index once per epoch, PyTorch's padding and drop_last, reshuffling by epoch, and the DataLoader
// with a sampler, whose ranks together see exactly the batches of one process.
#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include <algorithm>
#include <numeric>

#include "../test_helpers.h"

using namespace kiln;
using namespace kiln::data;
using kiln::testing::error_text;

namespace {

std::vector<std::vector<int64_t>> shards(int64_t n, int64_t replicas, bool shuffle, bool drop_last,
                                         int64_t epoch, uint64_t seed = 0) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t r = 0; r < replicas; ++r)
    out.push_back(DistributedSampler(n, {.num_replicas = replicas, .rank = r, .shuffle = shuffle,
                                         .seed = seed, .drop_last = drop_last})
                      .indices(epoch));
  return out;
}

}  // namespace

TEST_CASE("DistributedSampler covers every index exactly once per epoch across ranks",
          "[datasets][sampler]") {
  for (int64_t n : {1, 2, 7, 12, 100, 1001}) {
    for (int64_t replicas : {1, 2, 3, 4}) {
      if (n % replicas != 0) continue;  // no padding: exactly once
      for (int64_t epoch : {0, 1, 5}) {
        INFO("n " << n << ", " << replicas << " replicas, epoch " << epoch);
        std::vector<int64_t> all;
        for (const auto& shard : shards(n, replicas, true, false, epoch)) {
          REQUIRE(static_cast<int64_t>(shard.size()) == n / replicas);
          all.insert(all.end(), shard.begin(), shard.end());
        }
        std::sort(all.begin(), all.end());
        std::vector<int64_t> every(static_cast<size_t>(n));
        std::iota(every.begin(), every.end(), int64_t{0});
        REQUIRE(all == every);
      }
    }
  }
}

TEST_CASE("DistributedSampler pads or drops like PyTorch when the ranks do not divide n",
          "[datasets][sampler]") {
  // torch.utils.data.DistributedSampler(range(5), num_replicas=2, rank=r, shuffle=False)
  auto padded = shards(5, 2, false, false, 0);
  REQUIRE(padded[0] == std::vector<int64_t>{0, 2, 4});
  REQUIRE(padded[1] == std::vector<int64_t>{1, 3, 0});
  // ... with drop_last=True
  auto dropped = shards(5, 2, false, true, 0);
  REQUIRE(dropped[0] == std::vector<int64_t>{0, 2});
  REQUIRE(dropped[1] == std::vector<int64_t>{1, 3});
  // Padding longer than the dataset repeats it: range(2) over 5 replicas.
  auto repeated = shards(2, 5, false, false, 0);
  REQUIRE(repeated == std::vector<std::vector<int64_t>>{{0}, {1}, {0}, {1}, {0}});
  REQUIRE(DistributedSampler(2, {.num_replicas = 5, .rank = 0}).total_size() == 5);
  REQUIRE(DistributedSampler(2, {.num_replicas = 5, .rank = 0, .drop_last = true}).size() == 0);

  // Shuffled: every index at least once, and only the padding repeats.
  for (int64_t n : {5, 13, 101}) {
    INFO("n " << n);
    std::vector<int64_t> seen(static_cast<size_t>(n), 0);
    int64_t total = 0;
    for (const auto& shard : shards(n, 3, true, false, 2)) {
      for (int64_t i : shard) ++seen[static_cast<size_t>(i)];
      total += static_cast<int64_t>(shard.size());
    }
    REQUIRE(total == (n + 2) / 3 * 3);
    REQUIRE(*std::min_element(seen.begin(), seen.end()) == 1);
    REQUIRE(*std::max_element(seen.begin(), seen.end()) <= 2);  // fewer than n repeats
  }
}

TEST_CASE("DistributedSampler reshuffles every epoch, the same way for a seed",
          "[datasets][sampler]") {
  DistributedSampler sampler(50, {.num_replicas = 2, .rank = 1, .seed = 9});
  REQUIRE(sampler.indices(0) != sampler.indices(1));
  REQUIRE(sampler.indices(3) == DistributedSampler(50, {.num_replicas = 2, .rank = 1, .seed = 9}).indices(3));
  REQUIRE(sampler.indices(3) != DistributedSampler(50, {.num_replicas = 2, .rank = 1, .seed = 8}).indices(3));
  // set_epoch, as in PyTorch, picks the epoch indices() gives.
  REQUIRE(sampler.epoch() == 0);
  sampler.set_epoch(4);
  REQUIRE(sampler.indices() == sampler.indices(4));
  // Rank r takes every P-th position of the epoch's shuffle, starting at r.
  const std::vector<int64_t> order = shuffled_order(50, 9, 4), mine = sampler.indices();
  for (size_t i = 0; i < mine.size(); ++i) REQUIRE(mine[i] == order[2 * i + 1]);
}

TEST_CASE("DataLoader with a sampler: 2 ranks of batch B see one process's batches of 2B",
          "[datasets][sampler]") {
  const InMemoryImages images = random_images(26, {1, 4, 4}, 5, /*seed=*/2);
  const auto augment = compose(RandomHorizontalFlip(), RandomCrop(4, 1));
  DataLoader single(images, {.batch_size = 6, .shuffle = true, .drop_last = true, .seed = 4,
                             .transform = augment});
  std::vector<std::unique_ptr<DataLoader>> ranks;
  for (int64_t r = 0; r < 2; ++r) {
    auto sampler = std::make_shared<DistributedSampler>(
        images, DistributedSamplerOptions{.num_replicas = 2, .rank = r, .seed = 4});
    ranks.push_back(std::make_unique<DataLoader>(
        images, LoaderOptions{.batch_size = 3, .sampler = sampler, .drop_last = true, .seed = 4,
                              .transform = augment}));
  }
  REQUIRE(ranks[0]->num_batches() == 4);
  REQUIRE(single.num_batches() == 4);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    for (int64_t k = 0; k < 4; ++k) {
      INFO("epoch " << epoch << ", batch " << k);
      const Batch whole = single.batch_at(epoch, k);
      const Batch b0 = ranks[0]->batch_at(epoch, k), b1 = ranks[1]->batch_at(epoch, k);
      // Rank r's j-th image is the single batch's image 2j + r: the same index, augmented alike.
      for (int64_t j = 0; j < 3; ++j) {
        for (int64_t r = 0; r < 2; ++r) {
          const Batch& mine = r == 0 ? b0 : b1;
          REQUIRE(mine.indices[static_cast<size_t>(j)] == whole.indices[static_cast<size_t>(2 * j + r)]);
          kiln::testing::require_equal(mine.images.slice(0, j, j + 1),
                                       whole.images.slice(0, 2 * j + r, 2 * j + r + 1));
        }
      }
    }
  }
  // A sampler with one replica is the loader's own shuffle.
  auto one = std::make_shared<DistributedSampler>(images, DistributedSamplerOptions{.seed = 4});
  DataLoader alone(images, {.batch_size = 6, .sampler = one, .drop_last = true, .seed = 4,
                            .transform = augment});
  for (int64_t k = 0; k < 4; ++k) {
    kiln::testing::require_equal(alone.batch_at(1, k).images, single.batch_at(1, k).images);
  }
}

TEST_CASE("DistributedSampler and DataLoader errors", "[datasets][sampler]") {
  REQUIRE_THAT(error_text([] { DistributedSampler(10, {.num_replicas = 2, .rank = 2}); }),
               Catch::Contains("DistributedSampler: expected rank in [0, 2), got 2"));
  REQUIRE_THAT(error_text([] { DistributedSampler(10, {.num_replicas = 0}); }),
               Catch::Contains("expected num_replicas >= 1, got 0"));
  const InMemoryImages images = random_images(8, {1, 2, 2}, 2);
  auto sampler = std::make_shared<DistributedSampler>(9, DistributedSamplerOptions{.num_replicas = 2});
  REQUIRE_THAT(error_text([&] { DataLoader(images, {.batch_size = 2, .sampler = sampler}); }),
               Catch::Contains("DataLoader: the sampler was made for 9 examples, but the dataset has 8"));
  auto fits = std::make_shared<DistributedSampler>(images, DistributedSamplerOptions{.num_replicas = 2});
  REQUIRE_THAT(error_text([&] { DataLoader(images, {.batch_size = 2, .shuffle = true, .sampler = fits}); }),
               Catch::Contains("DataLoader: shuffle and sampler are mutually exclusive"));
}
