#include <kiln/datasets/data_loader.h>

#include <algorithm>
#include <numeric>

#include <tbb/task_group.h>

#include <kiln/core/generator.h>
#include <kiln/core/parallel.h>

namespace kiln::data {

namespace {

constexpr int64_t kMaxPrefetch = 64;

// Independent streams of one seed: the shuffle of every epoch (stream 1, in sampler.cpp), and the
// augmentation of every example, each get their own Philox key.
constexpr uint64_t kAugmentStream = 2;

uint64_t derive_key(uint64_t key, uint64_t counter) {
  const PhiloxBlock block = philox(key, counter);
  return (static_cast<uint64_t>(block.v[0]) << 32) | block.v[1];
}

uint64_t epoch_key(uint64_t seed, uint64_t stream, int64_t epoch) {
  return derive_key(derive_key(seed, stream), static_cast<uint64_t>(epoch));
}

}  // namespace

struct DataLoader::Pending {
  int64_t epoch = 0;
  int64_t batch = 0;
  tbb::task_group group;
  Batch result;
};

DataLoader::DataLoader(const Dataset& dataset, LoaderOptions options)
    : dataset_(dataset), options_(std::move(options)) {
  const int64_t B = options_.batch_size;
  KILN_CHECK(B >= 1, "DataLoader: batch_size must be at least 1, got ", B);
  KILN_CHECK(options_.prefetch >= 0 && options_.prefetch <= kMaxPrefetch,
             "DataLoader: prefetch must be in [0, ", kMaxPrefetch, "], got ", options_.prefetch);
  size_ = dataset_.size();
  KILN_CHECK(size_ > 0, "DataLoader: the dataset is empty");
  if (const DistributedSampler* sampler = options_.sampler.get()) {
    KILN_CHECK(!options_.shuffle, "DataLoader: shuffle and sampler are mutually exclusive (the "
               "sampler shuffles: DistributedSamplerOptions::shuffle)");
    KILN_CHECK(sampler->dataset_size() == size_, "DataLoader: the sampler was made for ",
               sampler->dataset_size(), " examples, but the dataset has ", size_);
    size_ = sampler->size();
    KILN_CHECK(size_ > 0, "DataLoader: the sampler gives this rank no examples (",
               sampler->dataset_size(), " examples, drop_last, ", sampler->options().num_replicas,
               " replicas)");
  }
  num_batches_ = options_.drop_last ? size_ / B : (size_ + B - 1) / B;
  KILN_CHECK(num_batches_ > 0, "DataLoader: drop_last with batch_size ", B,
             " leaves no batch of a dataset of ", size_, " examples");
  input_shape_ = dataset_.image_shape();
  KILN_CHECK(input_shape_.size() == 3, "DataLoader: expected dataset images [C, H, W], got shape ",
             input_shape_);
  output_shape_ =
      options_.transform ? options_.transform->output_shape(input_shape_) : input_shape_;
  state_.seed = options_.seed;
}

DataLoader::~DataLoader() { drain(); }

void DataLoader::drain() noexcept {
  for (auto& pending : pending_) {
    try {
      pending->group.wait();
    } catch (...) {
      // A batch nobody will see failed; its error is dropped with it.
    }
  }
  pending_.clear();
}

void DataLoader::load_state(const LoaderState& state) {
  KILN_CHECK(state.epoch >= 0 && state.batch >= 0 && state.batch <= num_batches_,
             "DataLoader: load_state: expected epoch >= 0 and batch in [0, ", num_batches_,
             "], got epoch ", state.epoch, ", batch ", state.batch);
  drain();
  orders_.clear();
  state_ = state;
}

DataLoader::Order DataLoader::make_order(uint64_t seed, int64_t epoch) const {
  if (options_.sampler) return std::make_shared<const std::vector<int64_t>>(options_.sampler->indices(epoch));
  if (!options_.shuffle) return nullptr;
  return std::make_shared<const std::vector<int64_t>>(shuffled_order(size_, seed, epoch));
}

DataLoader::Order DataLoader::cached_order(int64_t epoch) {
  if (!options_.shuffle && !options_.sampler) return nullptr;
  orders_.erase(orders_.begin(), orders_.lower_bound(state_.epoch));
  auto it = orders_.find(epoch);
  if (it == orders_.end()) it = orders_.emplace(epoch, make_order(state_.seed, epoch)).first;
  return it->second;
}

Batch DataLoader::assemble(uint64_t seed, int64_t epoch, int64_t batch, const Order& order) const {
  const int64_t first = batch * options_.batch_size;
  const int64_t count = std::min(options_.batch_size, size_ - first);
  const int64_t in_numel = shape_numel(input_shape_), out_numel = shape_numel(output_shape_);
  const Transform* transform = options_.transform.get();
  const DistributedSampler* sampler = options_.sampler.get();
  const uint64_t augment_key = epoch_key(seed, kAugmentStream, epoch);

  Batch out;
  out.images = Tensor::empty({count, output_shape_[0], output_shape_[1], output_shape_[2]});
  out.labels = Tensor::empty({count}, DType::i64);
  out.indices.resize(static_cast<size_t>(count));
  float* images = out.images.data_ptr<float>();
  int64_t* labels = out.labels.data_ptr<int64_t>();

  // Each example depends on its position only, so the chunking cannot change the result.
  parallel_for(0, count, grain_for(out_numel, 16384), [&](int64_t j0, int64_t j1) {
    std::vector<float> raw(transform ? static_cast<size_t>(in_numel) : 0);
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t position = first + j;
      const int64_t index = order ? (*order)[position] : position;
      float* image = images + j * out_numel;
      int64_t label;
      if (transform) {
        label = dataset_.get_into(index, raw.data());
        // Keyed on the position in the order all ranks share.
        const int64_t shared = sampler ? sampler->global_position(position) : position;
        Generator gen(derive_key(augment_key, static_cast<uint64_t>(shared)));
        transform->apply(raw.data(), input_shape_, image, gen);
      } else {
        label = dataset_.get_into(index, image);
      }
      KILN_CHECK(label >= 0, "DataLoader: example ", index, " has a negative label ", label);
      labels[j] = label;
      out.indices[j] = index;
    }
  });
  return out;
}

Batch DataLoader::batch_at(int64_t epoch, int64_t batch) const {
  KILN_CHECK(epoch >= 0 && batch >= 0 && batch < num_batches_, "DataLoader: batch_at: expected ",
             "epoch >= 0 and batch in [0, ", num_batches_, "), got epoch ", epoch, ", batch ",
             batch);
  return assemble(state_.seed, epoch, batch, make_order(state_.seed, epoch));
}

void DataLoader::schedule() {
  // The position after the last pending batch (or the current one), past epoch ends.
  int64_t epoch = state_.epoch, batch = state_.batch;
  if (!pending_.empty()) {
    epoch = pending_.back()->epoch;
    batch = pending_.back()->batch + 1;
  }
  while (static_cast<int64_t>(pending_.size()) < options_.prefetch) {
    if (batch >= num_batches_) {
      ++epoch;
      batch = 0;
    }
    auto pending = std::make_unique<Pending>();
    pending->epoch = epoch;
    pending->batch = batch;
    Pending* p = pending.get();
    Order order = cached_order(epoch);
    const uint64_t seed = state_.seed;
    p->group.run([this, p, seed, order] { p->result = assemble(seed, p->epoch, p->batch, order); });
    pending_.push_back(std::move(pending));
    ++batch;
  }
}

std::optional<Batch> DataLoader::next() {
  if (state_.batch >= num_batches_) {
    ++state_.epoch;
    state_.batch = 0;
    return std::nullopt;
  }
  Batch batch;
  if (options_.prefetch == 0) {
    batch = assemble(state_.seed, state_.epoch, state_.batch, cached_order(state_.epoch));
  } else {
    if (!pending_.empty() &&
        (pending_.front()->epoch != state_.epoch || pending_.front()->batch != state_.batch)) {
      drain();
    }
    schedule();
    Pending& front = *pending_.front();
    try {
      front.group.wait();
    } catch (...) {
      pending_.pop_front();
      drain();
      throw;
    }
    batch = std::move(front.result);
    pending_.pop_front();
  }
  ++state_.batch;
  // The following batches assemble while the caller works on this one.
  if (options_.prefetch > 0) schedule();
  return batch;
}

DataLoader::Iterator::Iterator(DataLoader* loader) : loader_(loader), current_(loader->next()) {}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  current_ = loader_->next();
  return *this;
}

DataLoader::Iterator DataLoader::begin() {
  if (state_.batch >= num_batches_) {
    ++state_.epoch;
    state_.batch = 0;
  }
  return Iterator(this);
}

}  // namespace kiln::data
