#include <kiln/datasets/byte_stream.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <kiln/core/error.h>

namespace kiln::data {

namespace {
constexpr size_t kInputBuffer = size_t{1} << 16;
}

struct ByteStream::Zlib {
  z_stream strm{};
  bool initialized = false;
  ~Zlib() {
    if (initialized) inflateEnd(&strm);
  }
};

ByteStream::ByteStream(std::string path, std::string who, Compression compression)
    : path_(std::move(path)), who_(std::move(who)), in_(new uint8_t[kInputBuffer]) {
  std::error_code ec;
  const auto status = std::filesystem::status(path_, ec);
  if (ec || !std::filesystem::exists(status)) fail("cannot open: no such file");
  if (!std::filesystem::is_regular_file(status)) fail("cannot open: not a regular file");
  file_.reset(std::fopen(path_.c_str(), "rb"));
  if (file_ == nullptr) fail(std::string("cannot open: ") + std::strerror(errno));
  struct stat st;
  if (::fstat(::fileno(file_.get()), &st) != 0)
    fail(std::string("cannot stat: ") + std::strerror(errno));
  file_size_ = static_cast<uint64_t>(st.st_size);
  detect_compression(compression);
}

ByteStream::ByteStream(std::span<const uint8_t> bytes, std::string name, std::string who,
                       Compression compression)
    : path_(std::move(name)),
      who_(std::move(who)),
      memory_(bytes),
      file_size_(bytes.size()),
      in_(new uint8_t[kInputBuffer]) {
  detect_compression(compression);
}

void ByteStream::detect_compression(Compression compression) {
  // The first bytes decide the format. They stay in the buffer for whichever reader follows.
  refill();
  if (compression == Compression::Detect && in_end_ - in_begin_ >= 2 && in_[0] == 0x1f &&
      in_[1] == 0x8b) {
    gzipped_ = true;
    zlib_ = std::make_unique<Zlib>();
    // 16 + MAX_WBITS: a gzip wrapper (header, CRC-32 and length trailer) around deflate data.
    if (inflateInit2(&zlib_->strm, 16 + MAX_WBITS) != Z_OK) fail("zlib: inflateInit2 failed");
    zlib_->initialized = true;
  }
}

ByteStream::~ByteStream() = default;

void ByteStream::fail(const std::string& message) const {
  throw Error(who_ + ": " + path_ + ": " + message);
}

uint32_t ByteStream::gzip_declared_size() const {
  KILN_CHECK(gzipped_, "ByteStream: gzip_declared_size() of a file that is not gzipped");
  // 18 bytes: the smallest gzip member (10-byte header, empty deflate data, 8-byte trailer).
  if (file_size_ < 18) fail("truncated gzip file: " + std::to_string(file_size_) + " bytes");
  uint8_t bytes[4];
  if (file_ == nullptr) {
    std::memcpy(bytes, memory_.data() + memory_.size() - 4, 4);
  } else if (::pread(::fileno(file_.get()), bytes, 4, static_cast<off_t>(file_size_ - 4)) != 4) {
    fail(std::string("cannot read the gzip trailer: ") + std::strerror(errno));
  }
  // ISIZE is little-endian.
  return uint32_t{bytes[0]} | (uint32_t{bytes[1]} << 8) | (uint32_t{bytes[2]} << 16) |
         (uint32_t{bytes[3]} << 24);
}

// Takes up to n bytes from the file (or the memory) into dst; returns how many it took.
size_t ByteStream::read_source(uint8_t* dst, size_t n) {
  if (file_ == nullptr) {
    const size_t got = std::min(n, memory_.size() - memory_read_);
    if (got > 0) std::memcpy(dst, memory_.data() + memory_read_, got);
    memory_read_ += got;
    return got;
  }
  const size_t got = std::fread(dst, 1, n, file_.get());
  if (got < n && std::ferror(file_.get())) fail(std::string("read error: ") + std::strerror(errno));
  return got;
}

// Appends source bytes to the input buffer (compacting it first); returns how many were added.
size_t ByteStream::refill() {
  if (in_begin_ == in_end_) in_begin_ = in_end_ = 0;
  if (in_end_ == kInputBuffer) return 0;
  const size_t got = read_source(in_.get() + in_end_, kInputBuffer - in_end_);
  in_end_ += got;
  return got;
}

void ByteStream::read_exact(void* dst, size_t n, const std::string& field) {
  if (n == 0) return;
  if (gzipped_) {
    read_gzip(static_cast<uint8_t*>(dst), n, field);
  } else {
    read_raw(static_cast<uint8_t*>(dst), n, field);
  }
  position_ += n;
}

void ByteStream::read_raw(uint8_t* dst, size_t n, const std::string& field) {
  size_t got = std::min(n, in_end_ - in_begin_);
  std::memcpy(dst, in_.get() + in_begin_, got);
  in_begin_ += got;
  if (got < n) got += read_source(dst + got, n - got);
  if (got < n) {
    fail(field + ": truncated: expected " + std::to_string(n) + " bytes, the file ends after " +
         std::to_string(got) + " (at byte " + std::to_string(position_ + got) + ")");
  }
}

// One inflate() call on the buffered input; refills first when the buffer is empty. Returns the
// zlib code, with corrupt data and memory errors already thrown.
int ByteStream::inflate_step() {
  z_stream& strm = zlib_->strm;
  if (in_begin_ == in_end_) refill();
  strm.next_in = in_.get() + in_begin_;
  strm.avail_in = static_cast<uInt>(in_end_ - in_begin_);
  const int rc = inflate(&strm, Z_NO_FLUSH);
  in_begin_ = in_end_ - strm.avail_in;
  if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT || rc == Z_STREAM_ERROR) {
    fail(std::string("corrupt gzip data (") + (strm.msg ? strm.msg : "invalid stream") +
         ") after " + std::to_string(strm.total_out) + " inflated bytes");
  }
  if (rc == Z_MEM_ERROR) fail("zlib: out of memory while inflating");
  return rc;
}

void ByteStream::read_gzip(uint8_t* dst, size_t n, const std::string& field) {
  z_stream& strm = zlib_->strm;
  size_t done = 0;
  while (done < n) {
    if (stream_ended_) {
      fail(field + ": truncated: expected " + std::to_string(n) +
           " bytes, the gzip stream ends after " + std::to_string(done) + " (at inflated byte " +
           std::to_string(position_ + done) + ")");
    }
    // avail_out is 32-bit: feed large reads in slices.
    const size_t slice = std::min<size_t>(n - done, size_t{1} << 30);
    strm.next_out = dst + done;
    strm.avail_out = static_cast<uInt>(slice);
    const bool had_input = in_begin_ != in_end_ || refill() > 0;
    const int rc = inflate_step();
    done += slice - strm.avail_out;
    if (rc == Z_STREAM_END) {
      stream_ended_ = true;
    } else if (!had_input && strm.avail_out == slice) {
      fail(field + ": truncated gzip file: expected " + std::to_string(n) +
           " bytes, the compressed data ends after " + std::to_string(done) +
           " (at inflated byte " + std::to_string(position_ + done) + ")");
    }
  }
}

void ByteStream::expect_end(uint64_t declared) {
  if (!gzipped_) {
    if (in_begin_ != in_end_ || refill() > 0) {
      fail("the file is longer than the " + std::to_string(declared) +
           " bytes its header declares");
    }
    return;
  }
  z_stream& strm = zlib_->strm;
  uint8_t scratch[4096];
  while (!stream_ended_) {
    strm.next_out = scratch;
    strm.avail_out = sizeof(scratch);
    const bool had_input = in_begin_ != in_end_ || refill() > 0;
    const int rc = inflate_step();
    if (strm.avail_out != sizeof(scratch)) {
      fail("gzip stream inflates past its cap of " + std::to_string(declared) +
           " bytes, the size its header declares");
    }
    if (rc == Z_STREAM_END) {
      stream_ended_ = true;
    } else if (!had_input) {
      fail("truncated gzip file: the compressed data ends before the end-of-stream trailer");
    }
  }
  if (in_begin_ != in_end_ || refill() > 0)
    fail("unexpected bytes after the end of the gzip stream");
}

}  // namespace kiln::data
