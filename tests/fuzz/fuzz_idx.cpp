// fuzz_idx, a libFuzzer target: IdxFile on arbitrary bytes, raw or gzipped, as an images file (3
// dims) and as a labels file (1 dim). A kiln::Error is the expected answer to bad input; anything
// else (a crash, another exception, a sanitizer report, an allocation past -malloc_limit_mb) is a
// finding.
#include <cstddef>
#include <cstdint>
#include <span>

#include <kiln/core/error.h>
#include <kiln/datasets/idx.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  for (const int64_t ndim : {3, 1}) {
    try {
      kiln::data::IdxFile file(bytes, "input", ndim, "Fuzz");
      const std::vector<uint8_t> body = file.read_data();
      if (static_cast<int64_t>(body.size()) != file.data_bytes()) __builtin_trap();
    } catch (const kiln::Error&) {
    }
  }
  return 0;
}
