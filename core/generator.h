// Generator: a counter-based random stream (Philox4x32-10), so the numbers depend only on the seed
// and the position in the stream: the same on every machine, and at any thread count.
//
// A generator's whole state is (seed, offset), which makes it trivial to checkpoint and resume.
#pragma once

#include <cstdint>

namespace kiln {

/// A counter-based random stream (Philox4x32-10) whose whole state is (seed, offset):
/// `Generator gen(42); Tensor x = Tensor::randn({3}, DType::f32, &gen);`
class Generator {
 public:
  /// A stream at offset 0 of `seed`.
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}

  /// Restarts the stream: the given seed, offset 0.
  void manual_seed(uint64_t seed) { seed_ = seed; offset_ = 0; }
  /// The seed of the stream.
  uint64_t seed() const { return seed_; }
  /// How many 128-bit Philox blocks have been consumed.
  uint64_t offset() const { return offset_; }
  /// Restores a state saved from seed() and offset().
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }

  /// Reserves `blocks` consecutive 128-bit blocks and returns the first block's counter. The
  /// caller turns counters into numbers with philox() and may do so from any thread.
  uint64_t reserve(uint64_t blocks) { uint64_t first = offset_; offset_ += blocks; return first; }

  /// One 64-bit random value; convenient for scalar draws (shuffles, augmentations).
  uint64_t next_u64();
  /// A uniform double in [0, 1).
  double next_double() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  /// A uniform integer in [0, n).
  uint64_t next_below(uint64_t n);

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

/// Four 32-bit random words: one output block of Philox4x32-10.
struct PhiloxBlock { uint32_t v[4]; /**< the four words */ };
/// The output block number `counter` of the stream keyed by `seed`.
PhiloxBlock philox(uint64_t seed, uint64_t counter);

/// The process-wide generator that factories and layers use when given none.
Generator& default_generator();
/// Seeds the default generator (like torch.manual_seed).
void manual_seed(uint64_t seed);

}  // namespace kiln
