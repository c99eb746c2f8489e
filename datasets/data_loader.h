// DataLoader: seeded shuffling, batching and augmentation, with the next batches assembled in the
// background (oneTBB) while the model trains.
//
//   data::DataLoader loader(train, {.batch_size = 32, .shuffle = true, .seed = 0});
//   for (const data::Batch& b : loader) { b.images; b.labels; }   // [B, C, H, W] f32, [B] i64
//
// Each range-for runs one epoch; the next one reshuffles. Everything random is a function of
// (seed, epoch, position): epoch e's order is a Fisher-Yates shuffle drawn from a generator keyed
// on (seed, e), and the example at position i of epoch e is augmented with its own generator keyed
// on (seed, e, i). So for a given seed the batches are the same, to the bit, whether prefetch is on
// or off and at any thread count, and a loader restored with load_state() continues exactly where
// the saved one was.
//
// With a DistributedSampler (datasets/sampler.h), the loader visits only this rank's shard of each
// epoch, in the sampler's order; each example is then augmented with the generator of its
// position in the order all ranks share, so P ranks see exactly what one process would.
//
// The loader keeps a reference to the dataset, which must outlive it.
#pragma once

#include <cstdint>
#include <deque>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include <kiln/datasets/dataset.h>
#include <kiln/datasets/sampler.h>
#include <kiln/datasets/transforms.h>

namespace kiln::data {

/// How a DataLoader batches: `{.batch_size = 32, .shuffle = true, .seed = 0}`.
struct LoaderOptions {
  int64_t batch_size = 1;  ///< examples per batch
  /// Visit the examples in a new random order every epoch (else in index order).
  bool shuffle = false;
  /// Visit this rank's shard of each epoch instead of the whole dataset (exclusive with
  /// shuffle: the sampler shuffles). Made for the same dataset.
  std::shared_ptr<const DistributedSampler> sampler = nullptr;
  /// Skip the last batch of an epoch when it is smaller than batch_size.
  bool drop_last = false;
  uint64_t seed = 0;  ///< keys every shuffle and augmentation
  /// How many batches to assemble ahead in the background; 0 assembles each one when asked.
  int64_t prefetch = 2;
  /// Applied to every example; null leaves the images as the dataset gives them.
  std::shared_ptr<const Transform> transform = nullptr;
};

/// B examples stacked: what a DataLoader yields.
struct Batch {
  Tensor images;                 ///< f32 [B, C, H, W]
  Tensor labels;                 ///< i64 [B]
  std::vector<int64_t> indices;  ///< the dataset index of each example
};

/// The loader's position: the next batch it will yield is batch `batch` of epoch `epoch`, of the
/// order and augmentations that `seed` determines. Three integers: save them with a checkpoint.
struct LoaderState {
  uint64_t seed = 0;   ///< the loader's seed
  int64_t epoch = 0;   ///< the epoch of the next batch
  int64_t batch = 0;   ///< the index of the next batch in its epoch
};

/// Batches of a dataset, shuffled and augmented as a function of (seed, epoch, position), and
/// assembled ahead in the background: `for (const data::Batch& b : loader) { ... }`.
class DataLoader {
 public:
  /// Keeps a reference to `dataset`, which must outlive the loader.
  DataLoader(const Dataset& dataset, LoaderOptions options = {});
  /// A temporary dataset would be destroyed while the loader still reads it.
  DataLoader(const Dataset&& dataset, LoaderOptions options = {}) = delete;
  /// Waits for the batches still being assembled.
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// Batches per epoch.
  int64_t num_batches() const { return num_batches_; }
  /// The dataset read.
  const Dataset& dataset() const { return dataset_; }
  /// The options given.
  const LoaderOptions& options() const { return options_; }
  /// [C, H, W] of the images in a batch (after the transform).
  const Shape& image_shape() const { return output_shape_; }

  /// The position of the next batch. Taken inside a range-for, after batch k of epoch e was
  /// yielded, it is {seed, e, k + 1}.
  LoaderState state() const { return state_; }
  /// Moves to a position from state(); drops whatever was prefetched.
  void load_state(const LoaderState& state);
  /// The epoch of the next batch.
  int64_t epoch() const { return state_.epoch; }

  /// The next batch of the current epoch, or nullopt when the epoch is over; the call that returns
  /// nullopt moves the loader to the start of the next epoch.
  std::optional<Batch> next();

  /// Assembles one batch directly, without touching the loader's position or prefetch queue.
  Batch batch_at(int64_t epoch, int64_t batch) const;

  /// An input iterator over the batches of one epoch, for range-for.
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;  ///< single pass
    using value_type = Batch;                           ///< what it yields
    using difference_type = std::ptrdiff_t;            ///< unused, required by the concept
    using pointer = const Batch*;                       ///< see operator->()
    using reference = const Batch&;                     ///< see operator*()

    /// The end of the epoch.
    Iterator() = default;
    /// The current batch.
    const Batch& operator*() const { return *current_; }
    /// The current batch's members.
    const Batch* operator->() const { return &*current_; }
    /// Moves to the next batch (or the end).
    Iterator& operator++();
    /// The same, discarding the result.
    void operator++(int) { ++*this; }
    /// True when both are at the end, or both are not.
    bool operator==(const Iterator& other) const {
      return current_.has_value() == other.current_.has_value();
    }

   private:
    friend class DataLoader;
    explicit Iterator(DataLoader* loader);
    DataLoader* loader_ = nullptr;
    std::optional<Batch> current_;
  };

  /// Starts (or continues) the current epoch; when the loader stands at the end of an epoch, the
  /// next one starts.
  Iterator begin();
  /// The end of the epoch.
  Iterator end() { return Iterator(); }

 private:
  struct Pending;

  using Order = std::shared_ptr<const std::vector<int64_t>>;
  /// Epoch `epoch`'s visiting order: the sampler's, the shuffle's, or null for index order.
  Order make_order(uint64_t seed, int64_t epoch) const;
  Order cached_order(int64_t epoch);
  Batch assemble(uint64_t seed, int64_t epoch, int64_t batch, const Order& order) const;
  /// Queues batches after the current position until `prefetch` are pending.
  void schedule();
  /// Waits for every pending batch and drops them.
  void drain() noexcept;

  const Dataset& dataset_;
  LoaderOptions options_;
  int64_t size_ = 0;
  int64_t num_batches_ = 0;
  Shape input_shape_, output_shape_;
  LoaderState state_;
  std::deque<std::unique_ptr<Pending>> pending_;  // batches being assembled, in order
  std::map<int64_t, Order> orders_;               // the shuffles of the epochs in flight
};

}  // namespace kiln::data
