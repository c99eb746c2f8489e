#include <kiln/core/storage.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <kiln/core/error.h>

namespace kiln {

namespace {

constexpr size_t kAlignment = 64;

#ifndef KILN_EXACT_ALLOCATIONS
// Smaller blocks go straight to malloc. Not 64 KiB: glibc's free of a block of 64 KiB or more
// (counting a free neighbour it merges with) first consolidates all its small free chunks, and
// releasing one 36 KiB gradient in zero_grad took 16 us of a step of step:vgg8:gn:2 (timed in a
// logging build).
constexpr size_t kCachedMin = size_t{4} << 10;
constexpr size_t kPage = size_t{4} << 10;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

bool cache_enabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("KILN_CACHING_ALLOCATOR");
    return env == nullptr || std::string(env) != "0";
  }();
  return enabled;
}
#endif

// Free lists of large blocks by rounded size.
class BlockCache {
 public:
  void* take(size_t rounded) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(rounded);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    stats_.cached_bytes -= rounded;
    stats_.allocated_bytes += rounded;
    return p;
  }
  void note_fresh(size_t rounded) {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.allocated_bytes += rounded;
    ++stats_.fresh_allocations;
  }
  void give(void* p, size_t rounded) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_[rounded].push_back(p);
    stats_.cached_bytes += rounded;
    stats_.allocated_bytes -= rounded;
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    stats_.cached_bytes = 0;
  }
  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

BlockCache& cache() {
  // Never destroyed: tensors held in static objects may be released after main returns.
  static BlockCache* instance = new BlockCache();
  return *instance;
}

}  // namespace

#ifdef KILN_EXACT_ALLOCATIONS
// Fuzzing and sanitizer builds: every block is exactly the size asked for, fresh from malloc and
// never cached, so AddressSanitizer sees any access past its end or after its release.
// (posix_memalign, because aligned_alloc wants a size that is a multiple of the alignment.)
void* allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  void* ptr = nullptr;
  KILN_CHECK(::posix_memalign(&ptr, kAlignment, nbytes) == 0,
             "allocate: out of memory, failed to allocate ", nbytes, " bytes");
  return ptr;
}

void deallocate(void* ptr, size_t) noexcept { std::free(ptr); }
#else
void* allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  const bool cached = nbytes >= kCachedMin && cache_enabled();
  const size_t rounded = round_up(nbytes, cached ? kPage : kAlignment);
  if (cached) {
    if (void* p = cache().take(rounded)) return p;
  }
  void* ptr = std::aligned_alloc(kAlignment, rounded);
  if (ptr == nullptr && cached) {
    cache().clear();  // give the cache back and try once more
    ptr = std::aligned_alloc(kAlignment, rounded);
  }
  KILN_CHECK(ptr != nullptr, "allocate: out of memory, failed to allocate ", nbytes, " bytes");
  if (cached) cache().note_fresh(rounded);
  return ptr;
}

void deallocate(void* ptr, size_t nbytes) noexcept {
  if (ptr == nullptr) return;
  if (nbytes >= kCachedMin && cache_enabled()) {
    try {
      cache().give(ptr, round_up(nbytes, kPage));
      return;
    } catch (...) {
      // No memory for the free list itself: release the block instead.
    }
  }
  std::free(ptr);
}
#endif

AllocatorStats allocator_stats() { return cache().stats(); }
void empty_cache() { cache().clear(); }

Storage::Storage(size_t nbytes) : data_(allocate(nbytes)), nbytes_(nbytes) {}
Storage::~Storage() { deallocate(data_, nbytes_); }

}  // namespace kiln
