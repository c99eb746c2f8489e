#include <unistd.h>

#include <string>

#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include "../child_process.h"

using namespace kiln;

TEST_CASE("large blocks are reused instead of allocated again", "[core][storage]") {
#ifdef KILN_EXACT_ALLOCATIONS
  // Sanitizer builds have no cache: every block is fresh, and nothing is kept.
  for (int i = 0; i < 3; ++i) Tensor t = Tensor::zeros({256, 1024});
  REQUIRE(allocator_stats().cached_bytes == 0);
#else
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
#endif
}

TEST_CASE("small tensors are aligned too", "[core][storage]") {
  for (int64_t n : {1, 3, 17, 1000}) {
    Tensor t = Tensor::empty({n});
    REQUIRE(reinterpret_cast<uintptr_t>(t.raw_data_ptr()) % 64 == 0);
  }
}

#ifdef KILN_EXACT_ALLOCATIONS
// Sanitizer builds (-DKILN_SANITIZE=address): the allocator must not hide an overflow behind
// rounding or a cached block. A child process writes one byte past a tensor's end; AddressSanitizer
// must stop it with a heap-buffer-overflow report.
TEST_CASE("AddressSanitizer catches a write one past a tensor's end", "[core][storage][sanitizer]") {
  REQUIRE(allocator_stats().cached_bytes == 0);
  for (int64_t n : {3, 17, 1000, 70000}) {  // odd sizes, and one above the cache threshold
    INFO("n = " << n);
    const testing::ChildResult child = testing::run_in_child([n] {
      Tensor t = Tensor::empty({n}, DType::f32);
      // The byte just past the last element.
      volatile char* end = static_cast<char*>(t.raw_data_ptr()) + n * 4;
      *end = 1;
      ::_exit(0);  // not reached when ASan works
    });
    REQUIRE_FALSE(child.exited_cleanly());
    REQUIRE_THAT(child.stderr_text, Catch::Contains("heap-buffer-overflow"));
  }
}
#endif
