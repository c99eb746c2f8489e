// fuzz_cifar10, a libFuzzer target: the CIFAR-10 readers on arbitrary bytes, as a batch file
// (records of a label and 3072 pixels) and as the text of batches.meta.txt. A kiln::Error is the
// expected answer to bad input; anything else (a crash, another exception, a sanitizer report) is a
// finding.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include <kiln/core/error.h>
#include <kiln/datasets/cifar10.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const kiln::data::ImageBytes batch =
        kiln::data::read_cifar10_batch(std::span<const uint8_t>(data, size), "input");
    // Every accepted record has a label in range and a full image.
    if (batch.pixels.size() != batch.labels.size() * 3072) __builtin_trap();
    for (const uint8_t label : batch.labels)
      if (label >= batch.classes.size()) __builtin_trap();
  } catch (const kiln::Error&) {
  }
  try {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const std::vector<std::string> classes = kiln::data::parse_cifar10_classes(text, "input");
    if (classes.size() != 10) __builtin_trap();
    for (const std::string& name : classes)
      if (name.empty()) __builtin_trap();
  } catch (const kiln::Error&) {
  }
  return 0;
}
