#include <catch2/catch.hpp>
#include <kiln/kiln.h>

using namespace kiln;

TEST_CASE("large blocks are reused instead of allocated again", "[core][storage]") {
  // 1 MiB tensors: above the cache threshold.
  { Tensor warm = Tensor::empty({256, 1024}); }
  const size_t before = allocator_stats().fresh_allocations;
  for (int i = 0; i < 10; ++i) {
    Tensor t = Tensor::zeros({256, 1024});
    REQUIRE(reinterpret_cast<uintptr_t>(t.raw_data_ptr()) % 64 == 0);
  }
  REQUIRE(allocator_stats().fresh_allocations == before);
  empty_cache();
  REQUIRE(allocator_stats().cached_bytes == 0);
}

TEST_CASE("small tensors are aligned too", "[core][storage]") {
  for (int64_t n : {1, 3, 17, 1000}) {
    Tensor t = Tensor::empty({n});
    REQUIRE(reinterpret_cast<uintptr_t>(t.raw_data_ptr()) % 64 == 0);
  }
}
