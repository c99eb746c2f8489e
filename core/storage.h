// Storage: a reference-counted block of bytes that tensors view. Memory comes from
// kiln::allocate, 64-byte aligned, so kernels can use aligned vector loads on fresh tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace kiln {

/// Returns nbytes of 64-byte aligned memory; throws kiln::Error when the system has none.
void* allocate(size_t nbytes);
/// Returns memory obtained from allocate(nbytes).
void deallocate(void* ptr, size_t nbytes) noexcept;

/// Blocks of 4 KiB and up are kept after release and handed out again for the same rounded
/// size, so a training step, which asks for the same sizes every time, makes no fresh large
/// allocations (and no page faults) after the first. KILN_CACHING_ALLOCATOR=0 turns the cache off,
/// which leak checkers prefer. A build with KILN_EXACT_ALLOCATIONS defined (the fuzz build, and
/// -DKILN_SANITIZE=address) has no cache at all: each block is exactly the size asked for, so
/// AddressSanitizer sees overflows, and the counters stay 0.
struct AllocatorStats {
  size_t cached_bytes = 0;      ///< held in the cache, free for reuse
  size_t allocated_bytes = 0;   ///< handed out and not yet returned (cached sizes only)
  size_t fresh_allocations = 0; ///< blocks of cached sizes obtained from the system so far
};
/// The caching allocator's counters now.
AllocatorStats allocator_stats();
/// Returns every cached block to the system.
void empty_cache();

/// A reference-counted, 64-byte aligned block of bytes that tensors view.
class Storage {
 public:
  /// nbytes of uninitialized memory from allocate().
  explicit Storage(size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  /// The first byte.
  void* data() const { return data_; }
  /// The size in bytes.
  size_t nbytes() const { return nbytes_; }

  /// Bumped by every in-place write through any view of this storage; autograd compares it with
  /// the value recorded when a tensor was saved for backward.
  uint64_t version() const { return version_; }
  /// Records an in-place write (kernels that write through a raw pointer call it).
  void bump_version() { ++version_; }

 private:
  void* data_;
  size_t nbytes_;
  uint64_t version_ = 0;
};

}  // namespace kiln
