// CIFAR-10, binary version: 32x32 colour images in 10 classes.
//
//   data::CIFAR10 train("data", data::Split::Train);   // 50000 examples, image f32 [3, 32, 32]
//
// Train reads data_batch_1.bin .. data_batch_5.bin, test reads test_batch.bin, from `root` or from
// `root/cifar-10-batches-bin/` (the layout the official archive unpacks to; scripts/get-cifar10.sh
// fetches it). Each file is a sequence of 3073-byte records: 1 label byte, then 3072 pixel bytes,
// the R, G and B planes of 32x32 in row-major order, which is already [C, H, W]. Class names come
// from batches.meta.txt when it is present.
//
// read_cifar10_batch() and parse_cifar10_classes() read the same formats from bytes in memory.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <kiln/datasets/in_memory_images.h>

namespace kiln::data {

/// How read_cifar10() reads the files.
struct CIFAR10Options {
  /// Records each file must hold. The official files hold 10000; a smaller value reads a subset
  /// in the same format (tests use a few records).
  int64_t records_per_file = 10000;
};

/// The CIFAR-10 dataset: `data::CIFAR10 train("data/cifar10", data::Split::Train)`.
class CIFAR10 : public InMemoryImages {
 public:
  static constexpr int64_t kImageBytes = 3 * 32 * 32;       ///< pixel bytes of one image
  static constexpr int64_t kRecordBytes = 1 + kImageBytes;  ///< a label byte, then the pixels

  /// Loads the split from `root` (see the file comment for the layout).
  CIFAR10(const std::string& root, Split split, const CIFAR10Options& options = {});

  /// "airplane", "automobile", ..., "truck": the names used when batches.meta.txt is absent.
  static const std::vector<std::string>& default_classes();
};

/// Reads a split of CIFAR-10: checks every file's size against the record size and count before
/// allocating, then every label while reading.
ImageBytes read_cifar10(const std::string& root, Split split, const CIFAR10Options& options = {});

/// Reads one batch file (the format of data_batch_1.bin) from `bytes` in memory: a whole number
/// of records, from 1 to 100000, each label checked. `name` stands for the path in error
/// messages; the classes are CIFAR10::default_classes().
ImageBytes read_cifar10_batch(std::span<const uint8_t> bytes, const std::string& name);

/// The class names in the text of a batches.meta.txt: exactly ten non-empty lines, in label
/// order, trimmed of blanks. `name` stands for the path in error messages.
std::vector<std::string> parse_cifar10_classes(std::string_view text, const std::string& name);

}  // namespace kiln::data
