#include <kiln/datasets/sampler.h>

#include <numeric>

#include <kiln/core/generator.h>

namespace kiln::data {

namespace {

// The shuffle's stream of the seed (the DataLoader's augmentation uses another).
constexpr uint64_t kShuffleStream = 1;

uint64_t derive_key(uint64_t key, uint64_t counter) {
  const PhiloxBlock block = philox(key, counter);
  return (static_cast<uint64_t>(block.v[0]) << 32) | block.v[1];
}

}  // namespace

std::vector<int64_t> shuffled_order(int64_t size, uint64_t seed, int64_t epoch) {
  KILN_CHECK(size >= 0 && epoch >= 0, "shuffled_order: expected size >= 0 and epoch >= 0, got size ",
             size, ", epoch ", epoch);
  std::vector<int64_t> order(static_cast<size_t>(size));
  std::iota(order.begin(), order.end(), int64_t{0});
  // Fisher-Yates: swap position i with a uniform position in [0, i].
  Generator gen(derive_key(derive_key(seed, kShuffleStream), static_cast<uint64_t>(epoch)));
  for (int64_t i = size - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(gen.next_below(static_cast<uint64_t>(i + 1)));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

DistributedSampler::DistributedSampler(const Dataset& dataset, DistributedSamplerOptions options)
    : DistributedSampler(dataset.size(), options) {}

DistributedSampler::DistributedSampler(int64_t dataset_size, DistributedSamplerOptions options)
    : dataset_size_(dataset_size), options_(options) {
  const int64_t P = options_.num_replicas;
  KILN_CHECK(P >= 1, "DistributedSampler: expected num_replicas >= 1, got ", P);
  KILN_CHECK(options_.rank >= 0 && options_.rank < P, "DistributedSampler: expected rank in [0, ",
             P, "), got ", options_.rank);
  KILN_CHECK(dataset_size_ >= 0, "DistributedSampler: expected a dataset size >= 0, got ",
             dataset_size_);
  num_samples_ = options_.drop_last ? dataset_size_ / P : (dataset_size_ + P - 1) / P;
}

void DistributedSampler::set_epoch(int64_t epoch) {
  KILN_CHECK(epoch >= 0, "DistributedSampler: set_epoch: expected epoch >= 0, got ", epoch);
  epoch_ = epoch;
}

std::vector<int64_t> DistributedSampler::indices(int64_t epoch) const {
  KILN_CHECK(epoch >= 0, "DistributedSampler: indices: expected epoch >= 0, got ", epoch);
  std::vector<int64_t> order;
  if (options_.shuffle) {
    order = shuffled_order(dataset_size_, options_.seed, epoch);
  } else {
    order.resize(static_cast<size_t>(dataset_size_));
    std::iota(order.begin(), order.end(), int64_t{0});
  }
  // Rank r takes positions r, r + P, ... of the order padded cyclically to total_size() (or cut).
  std::vector<int64_t> mine(static_cast<size_t>(num_samples_));
  for (int64_t i = 0; i < num_samples_; ++i)
    mine[static_cast<size_t>(i)] = order[static_cast<size_t>(global_position(i) % dataset_size_)];
  return mine;
}

}  // namespace kiln::data
