// IDX files (the MNIST family's format), gzipped or raw.
//
//   magic  4 bytes: 0x00 0x00, a type byte (0x08 = unsigned byte), the number of dims
//   dims   ndim big-endian uint32 sizes
//   data   the product of the dims, in items of the type, row-major
//
// IdxFile validates the whole header (magic, type, ndim, every size against a cap, the product
// with checked multiplication) and checks the declared size against the file (its size on disk,
// or the gzip trailer's inflated size) before anything is allocated, so a caller can compare two
// files' headers before it reads either body. Reading the body then checks every byte again.
// The gzip trailer's size can be forged, so read_data() grows its buffer as gzip data inflates
// rather than trusting it.
//
// IdxFile reads a file by path, or the same bytes already in memory:
//   IdxFile images(std::span<const uint8_t>(bytes), "images", 3, "Test");
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <kiln/datasets/byte_stream.h>

namespace kiln::data {

/// Caps on what an IDX header may declare. The defaults fit every MNIST-family dataset.
struct IdxLimits {
  int64_t max_count = 10'000'000;        ///< dims[0], the number of items
  int64_t max_side = 4096;               ///< every other dim
  int64_t max_bytes = int64_t{1} << 30;  ///< the data size
};

/// An IDX file whose header has been read and validated; the body is read on request.
class IdxFile {
 public:
  /// Opens `path` and validates its header for unsigned-byte data with `ndim` dims. `who`
  /// starts every error message (e.g. "FashionMNIST").
  IdxFile(const std::string& path, int64_t ndim, const std::string& who,
          const IdxLimits& limits = {});
  /// Validates the header of the IDX file held in `bytes` (raw or gzipped), as the path
  /// constructor does. The bytes are not copied and must outlive the IdxFile; `name` stands for
  /// the path in error messages.
  IdxFile(std::span<const uint8_t> bytes, const std::string& name, int64_t ndim,
          const std::string& who, const IdxLimits& limits = {});

  /// The file's path (or the name given to bytes in memory).
  const std::string& path() const { return stream_->path(); }
  /// The sizes the header declares: [count] for labels, [count, rows, cols] for images.
  const std::vector<int64_t>& dims() const { return dims_; }
  /// The product of the dims.
  int64_t data_bytes() const { return data_bytes_; }

  /// Reads the data_bytes() bytes of data into dst, then checks that the file ends there.
  void read_data(uint8_t* dst);
  /// The same, into a new vector. For a gzipped file the vector grows as data inflates, so a
  /// forged size costs at most about twice the data actually present.
  std::vector<uint8_t> read_data();

 private:
  void read_header(int64_t ndim, const IdxLimits& limits);

  std::unique_ptr<ByteStream> stream_;
  std::vector<int64_t> dims_;
  int64_t data_bytes_ = 0;
};

}  // namespace kiln::data
