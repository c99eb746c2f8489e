#include <kiln/datasets/idx.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include <kiln/core/error.h>

namespace kiln::data {

namespace {

constexpr uint8_t kUnsignedByte = 0x08;

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08X", value);
  return text;
}

std::string hex8(uint8_t value) {
  char text[8];
  std::snprintf(text, sizeof(text), "0x%02X", value);
  return text;
}

uint32_t big_endian32(const uint8_t bytes[4]) {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) |
         uint32_t{bytes[3]};
}

std::string type_name(uint8_t type) {
  switch (type) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return "no IDX type";
  }
}

std::string dim_field(size_t d, int64_t ndim) {
  std::string name = "dims[" + std::to_string(d) + "]";
  if (d == 0) return name + " (item count)";
  if (ndim == 3) return name + (d == 1 ? " (rows)" : " (columns)");
  return name;
}

}  // namespace

IdxFile::IdxFile(const std::string& path, int64_t ndim, const std::string& who,
                 const IdxLimits& limits)
    : stream_(std::make_unique<ByteStream>(path, who)) {
  read_header(ndim, limits);
}

IdxFile::IdxFile(std::span<const uint8_t> bytes, const std::string& name, int64_t ndim,
                 const std::string& who, const IdxLimits& limits)
    : stream_(std::make_unique<ByteStream>(bytes, name, who)) {
  read_header(ndim, limits);
}

void IdxFile::read_header(int64_t ndim, const IdxLimits& limits) {
  KILN_CHECK(ndim >= 1 && ndim <= 255, "IdxFile: ndim must be in [1, 255], got ", ndim);
  uint8_t magic_bytes[4];
  stream_->read_exact(magic_bytes, 4, "magic");
  const uint32_t magic = big_endian32(magic_bytes);
  const uint32_t expected = (uint32_t{kUnsignedByte} << 8) | static_cast<uint32_t>(ndim);
  if (magic != expected) {
    std::string why;
    if (magic_bytes[0] != 0 || magic_bytes[1] != 0) {
      why = "not an IDX file";
    } else if (magic_bytes[2] != kUnsignedByte) {
      why = "type byte " + hex8(magic_bytes[2]) + " is " + type_name(magic_bytes[2]) +
            "; only unsigned byte (0x08) data is supported";
    } else {
      why = std::to_string(magic_bytes[3]) + " dims";
      if (ndim == 3 && magic_bytes[3] == 1) why += ": a labels file where images were expected?";
      if (ndim == 1 && magic_bytes[3] == 3) why += ": an images file where labels were expected?";
    }
    stream_->fail("magic: expected " + hex32(expected) + " (unsigned byte, " +
                  std::to_string(ndim) + (ndim == 1 ? " dim" : " dims") + "), got " + hex32(magic) +
                  " (" + why + ")");
  }

  dims_.resize(static_cast<size_t>(ndim));
  data_bytes_ = 1;
  for (size_t d = 0; d < dims_.size(); ++d) {
    const std::string field = dim_field(d, ndim);
    uint8_t size_bytes[4];
    stream_->read_exact(size_bytes, 4, field);
    const int64_t size = big_endian32(size_bytes);
    const int64_t cap = d == 0 ? limits.max_count : limits.max_side;
    if (size < 1 || size > cap) {
      stream_->fail(field + ": expected 1 to " + std::to_string(cap) + ", got " +
                    std::to_string(size));
    }
    dims_[d] = size;
    if (__builtin_mul_overflow(data_bytes_, size, &data_bytes_) || data_bytes_ > limits.max_bytes) {
      stream_->fail(field + ": the dims " +
                    shape_str(std::vector<int64_t>(dims_.begin(), dims_.begin() + d + 1)) +
                    " declare more than the cap of " + std::to_string(limits.max_bytes) +
                    " data bytes");
    }
  }

  // The declared size against what the file holds, before anyone allocates data_bytes().
  const uint64_t declared = stream_->position() + static_cast<uint64_t>(data_bytes_);
  if (!stream_->gzipped()) {
    if (stream_->file_size() != declared) {
      stream_->fail(
          "file size " + std::to_string(stream_->file_size()) + " bytes, but the header " +
          "declares " + std::to_string(declared) + " (" + std::to_string(stream_->position()) +
          " header + " + std::to_string(data_bytes_) +
          " data): " + (stream_->file_size() < declared ? "truncated" : "trailing bytes"));
    }
  } else if (stream_->gzip_declared_size() != static_cast<uint32_t>(declared)) {
    stream_->fail("the gzip trailer declares " + std::to_string(stream_->gzip_declared_size()) +
                  " inflated bytes (mod 2^32), but the IDX header declares " +
                  std::to_string(declared) + ": the file is truncated or corrupt");
  }
}

void IdxFile::read_data(uint8_t* dst) {
  stream_->read_exact(dst, static_cast<size_t>(data_bytes_), "data");
  stream_->expect_end(stream_->position());
}

std::vector<uint8_t> IdxFile::read_data() {
  const size_t total = static_cast<size_t>(data_bytes_);
  std::vector<uint8_t> data;
  if (!stream_->gzipped()) {
    // The raw size was checked against the file's, so the claim is backed by real bytes.
    data.resize(total);
    read_data(data.data());
    return data;
  }
  // Only the gzip trailer vouches for the inflated size, and it is easily forged: grow by at most
  // doubling, so the buffer stays within twice what the stream has really delivered.
  constexpr size_t kFirstChunk = size_t{1} << 16;
  while (data.size() < total) {
    const size_t have = data.size();
    const size_t chunk = std::min(total - have, std::max(kFirstChunk, have));
    data.resize(have + chunk);
    stream_->read_exact(data.data() + have, chunk,
                        chunk == total ? std::string("data")
                                       : "data bytes [" + std::to_string(have) + ", " +
                                             std::to_string(have + chunk) + ") of " +
                                             std::to_string(total));
  }
  stream_->expect_end(stream_->position());
  return data;
}

}  // namespace kiln::data
