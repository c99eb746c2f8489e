// ByteStream: reads a data file front to back, exactly. Gzipped files (those that start with the
// gzip magic 1f 8b) are inflated through zlib as they are read.
//
// Every short read is an error that names the file and the field being read; a file is never
// padded with zeros. expect_end() then insists that the data ends where its header said: for gzip,
// that the stream ends there with a valid CRC and length, and that nothing follows it. Output is
// only ever produced into the caller's buffers, so a gzip stream that inflates past the size its
// header declared is caught after at most one small scratch buffer.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>

namespace kiln::data {

/// Reads a data file front to back, exactly, inflating gzip on the way when the file is gzipped.
class ByteStream {
 public:
  /// Detect: inflate files that start with the gzip magic; None: read every file as it is.
  enum class Compression { Detect, None };

  /// Opens `path`. `who` (e.g. "FashionMNIST") starts every error message. With
  /// Compression::None, a file that happens to start with 1f 8b is read as it is.
  ByteStream(std::string path, std::string who, Compression compression = Compression::Detect);
  /// Reads `bytes` already in memory, exactly as it would read a file holding them. The bytes are
  /// not copied and must outlive the stream; `name` stands for the path in messages.
  ByteStream(std::span<const uint8_t> bytes, std::string name, std::string who,
             Compression compression = Compression::Detect);
  ~ByteStream();
  ByteStream(const ByteStream&) = delete;
  ByteStream& operator=(const ByteStream&) = delete;

  /// The file's path (or the name given to bytes in memory).
  const std::string& path() const { return path_; }
  /// True when the file is being inflated.
  bool gzipped() const { return gzipped_; }
  /// Bytes delivered so far (after inflation).
  uint64_t position() const { return position_; }
  /// The size of the file on disk, or of the bytes in memory (compressed, for gzip).
  uint64_t file_size() const { return file_size_; }
  /// gzip only: the inflated size modulo 2^32 that the last 4 bytes of the file (the ISIZE field
  /// of the trailer) declare. Lets a reader compare it with its header before allocating.
  uint32_t gzip_declared_size() const;

  /// Reads exactly n bytes into dst, or throws "<who>: <path>: <field>: truncated ...".
  void read_exact(void* dst, size_t n, const std::string& field);
  /// Checks that the data ends here. `declared` is the size the header declared, for messages.
  void expect_end(uint64_t declared);

  /// Throws kiln::Error "<who>: <path>: <message>".
  [[noreturn]] void fail(const std::string& message) const;

 private:
  void detect_compression(Compression compression);
  size_t read_source(uint8_t* dst, size_t n);
  size_t refill();
  void read_raw(uint8_t* dst, size_t n, const std::string& field);
  void read_gzip(uint8_t* dst, size_t n, const std::string& field);
  int inflate_step();

  std::string path_, who_;
  struct FileCloser {
    void operator()(std::FILE* file) const { std::fclose(file); }
  };
  std::unique_ptr<std::FILE, FileCloser> file_;  // null when reading from memory
  std::span<const uint8_t> memory_;                // the bytes in memory, when file_ is null
  size_t memory_read_ = 0;                         // of memory_, bytes already taken
  bool gzipped_ = false;
  bool stream_ended_ = false;  // gzip: inflate reported Z_STREAM_END
  uint64_t position_ = 0;
  uint64_t file_size_ = 0;
  std::unique_ptr<uint8_t[]> in_;  // compressed input (gzip), or read-ahead (raw)
  size_t in_begin_ = 0, in_end_ = 0;
  struct Zlib;
  std::unique_ptr<Zlib> zlib_;
};

}  // namespace kiln::data
