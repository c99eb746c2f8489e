// fuzz_safetensors, a libFuzzer target: parse_safetensors on arbitrary bytes. A kiln::Error is the
// expected answer to bad input; anything else (a crash, another exception, a sanitizer report) is a
// finding. What it accepts must also survive a round trip: serialize_safetensors() of the result
// parses back to the same names, dtypes, shapes, bytes and metadata.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include <kiln/core/error.h>
#include <kiln/core/safetensors.h>

namespace {

bool same_tensor(const kiln::Tensor& a, const kiln::Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape() || a.numel() != b.numel()) return false;
  const size_t bytes = static_cast<size_t>(a.numel()) * kiln::itemsize(a.dtype());
  return bytes == 0 || std::memcmp(a.raw_data_ptr(), b.raw_data_ptr(), bytes) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln::SafetensorsContents contents;
  try {
    contents = kiln::parse_safetensors(std::string(reinterpret_cast<const char*>(data), size),
                                       "input");
  } catch (const kiln::Error&) {
    return 0;
  }
  // Accepted input: writing it back and reading that must give the same contents.
  const kiln::SafetensorsContents again = kiln::parse_safetensors(
      kiln::serialize_safetensors(contents.tensors, contents.metadata), "round trip");
  if (again.metadata != contents.metadata) __builtin_trap();
  if (again.tensors.size() != contents.tensors.size()) __builtin_trap();
  for (size_t i = 0; i < contents.tensors.size(); ++i) {
    if (again.tensors[i].first != contents.tensors[i].first) __builtin_trap();
    if (!same_tensor(again.tensors[i].second, contents.tensors[i].second)) __builtin_trap();
  }
  return 0;
}
