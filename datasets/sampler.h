// Which examples an epoch visits, and in what order: the shuffle the DataLoader uses, and
// DistributedSampler, which gives each data-parallel rank its own share of every epoch.
//
//   data::DistributedSampler sampler(train, {.num_replicas = dist::world_size(),
//                                            .rank = dist::rank(), .seed = 0});
//   data::DataLoader loader(train, {.batch_size = 32, .sampler = sampler_ptr, .seed = 0});
//
// DistributedSampler has PyTorch's semantics: epoch e's order (shuffled with (seed, e), or index
// order) is padded by repeating its first indices until it divides evenly among the replicas (or,
// with drop_last, cut to a multiple of them), and rank r takes positions r, r + P, r + 2P, ...
// So the ranks' shards are disjoint, and together cover every example once per epoch (plus the
// few repeats of the padding).
//
// The shuffle is the DataLoader's own: with the same seed, the examples that P ranks of batch B
// see at step k are exactly those one process of batch P x B sees at step k (positions
// [k P B, (k + 1) P B) of the same order), and their augmentations too.
#pragma once

#include <cstdint>
#include <vector>

#include <kiln/datasets/dataset.h>

namespace kiln::data {

/// The order in which a shuffling DataLoader visits `size` examples in epoch `epoch`: a
/// Fisher-Yates shuffle drawn from a Philox generator keyed on (seed, epoch).
std::vector<int64_t> shuffled_order(int64_t size, uint64_t seed, int64_t epoch);

/// torch.utils.data.DistributedSampler's arguments, in its order.
struct DistributedSamplerOptions {
  /// The number of ranks the epoch is split among (dist::world_size()).
  int64_t num_replicas = 1;
  /// This rank, in [0, num_replicas) (dist::rank()).
  int64_t rank = 0;
  /// A new random order every epoch (the same on every rank), else index order.
  bool shuffle = true;
  /// Must be the same on every rank.
  uint64_t seed = 0;
  /// Drop the tail of the order so it divides evenly, instead of padding it with repeats.
  bool drop_last = false;
};

/// Each rank's disjoint, seeded share of every epoch, as torch.utils.data.DistributedSampler:
///   DistributedSampler sampler(train, {.num_replicas = dist::world_size(), .rank = dist::rank()});
class DistributedSampler {
 public:
  /// A sampler over the examples of `dataset`. Throws kiln::Error when rank is not in
  /// [0, num_replicas).
  DistributedSampler(const Dataset& dataset, DistributedSamplerOptions options);
  /// The same for a dataset of `dataset_size` examples.
  DistributedSampler(int64_t dataset_size, DistributedSamplerOptions options);

  /// Examples this rank visits per epoch (len(sampler)): ceil(n / P), or floor(n / P) with
  /// drop_last.
  int64_t size() const { return num_samples_; }
  /// size() x num_replicas: the length of the padded (or cut) order all ranks share.
  int64_t total_size() const { return num_samples_ * options_.num_replicas; }
  /// The number of examples in the dataset (n).
  int64_t dataset_size() const { return dataset_size_; }
  /// The options it was made with.
  const DistributedSamplerOptions& options() const { return options_; }

  /// This rank's dataset indices for epoch `epoch`, in visiting order (size() of them).
  std::vector<int64_t> indices(int64_t epoch) const;
  /// Where this rank's position-th index of an epoch sits in the order all ranks share:
  /// position x num_replicas + rank.
  int64_t global_position(int64_t position) const {
    return position * options_.num_replicas + options_.rank;
  }

  /// PyTorch's set_epoch, for a loop of your own: indices() then gives epoch `epoch`'s shard.
  /// The DataLoader does not need it: it asks for indices(e) of the epoch it is in.
  void set_epoch(int64_t epoch);
  /// The epoch set by set_epoch (0 at first).
  int64_t epoch() const { return epoch_; }
  /// indices(epoch()): this rank's shard of the current epoch.
  std::vector<int64_t> indices() const { return indices(epoch_); }

 private:
  int64_t dataset_size_;
  DistributedSamplerOptions options_;
  int64_t num_samples_ = 0;
  int64_t epoch_ = 0;
};

}  // namespace kiln::data
