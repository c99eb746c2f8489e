#include <kiln/core/storage.h>

#include <cstdlib>

#include <kiln/core/error.h>

namespace kiln {

namespace {
constexpr size_t kAlignment = 64;
size_t round_up(size_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }
}  // namespace

void* allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  void* ptr = std::aligned_alloc(kAlignment, round_up(nbytes));
  KILN_CHECK(ptr != nullptr, "allocate: out of memory, failed to allocate ", nbytes, " bytes");
  return ptr;
}

void deallocate(void* ptr, size_t) noexcept { std::free(ptr); }

Storage::Storage(size_t nbytes) : data_(allocate(nbytes)), nbytes_(nbytes) {}
Storage::~Storage() { deallocate(data_, nbytes_); }

}  // namespace kiln
