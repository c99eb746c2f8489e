#include <catch2/catch.hpp>
#include <kiln/kiln.h>
#include <kiln/datasets/idx.h>

#include <sys/resource.h>

#include "dataset_files.h"

using namespace kiln;
using namespace kiln::data;
using Catch::Matchers::Contains;
using kiln::test::Bytes;
using kiln::test::error_of;

namespace {

// 3 images of 4 rows x 5 columns.
const Bytes kPixels = kiln::test::pattern(3 * 4 * 5);
const Bytes kImages = kiln::test::idx_bytes({3, 4, 5}, kPixels);

// The gzip bytes with the trailer's ISIZE field (the last 4 bytes, little-endian) replaced.
Bytes with_isize(Bytes gz, uint32_t size) {
  for (int k = 0; k < 4; ++k) gz[gz.size() - 4 + k] = static_cast<uint8_t>(size >> (8 * k));
  return gz;
}

std::string read_error(const std::string& path, int64_t ndim = 3, const IdxLimits& limits = {}) {
  return error_of([&] {
    IdxFile file(path, ndim, "Test", limits);
    file.read_data();
  });
}

}  // namespace

TEST_CASE("IdxFile reads a raw and a gzipped file to the same bytes") {
  kiln::test::TempDir dir;
  kiln::test::write_file(dir.file("raw"), kImages);
  kiln::test::write_file(dir.file("packed.gz"), kiln::test::gzip(kImages));
  for (const std::string name : {"raw", "packed.gz"}) {
    IdxFile file(dir.file(name), 3, "Test");
    CHECK(file.dims() == std::vector<int64_t>{3, 4, 5});
    CHECK(file.data_bytes() == 60);
    CHECK(file.read_data() == kPixels);
  }
  // Detection goes by content, not by name.
  kiln::test::write_file(dir.file("packed-no-suffix"), kiln::test::gzip(kImages));
  CHECK(IdxFile(dir.file("packed-no-suffix"), 3, "Test").read_data() == kPixels);
}

TEST_CASE("IdxFile names the file and the field for a wrong magic number") {
  kiln::test::TempDir dir;
  const std::string path = dir.file("train-images-idx3-ubyte");

  kiln::test::write_file(path, kiln::test::idx_bytes({3}, Bytes(3, 1)));  // a labels file
  std::string message = read_error(path);
  CHECK_THAT(message, Contains("Test: " + path +
                               ": magic: expected 0x00000803 (unsigned byte, 3 "
                               "dims), got 0x00000801"));
  CHECK_THAT(message, Contains("a labels file where images were expected?"));

  kiln::test::write_file(path, kiln::test::idx_bytes({3, 4, 5}, Bytes(60 * 4), 0x0D));
  CHECK_THAT(read_error(path), Contains("type byte 0x0D is float32"));

  Bytes not_idx = kImages;
  not_idx[0] = 'P';
  kiln::test::write_file(path, not_idx);
  CHECK_THAT(read_error(path), Contains("not an IDX file"));
}

TEST_CASE("IdxFile checks every size against its cap before allocating") {
  kiln::test::TempDir dir;
  const std::string path = dir.file("images");

  kiln::test::write_file(path, kiln::test::idx_bytes({0, 4, 5}, {}));
  CHECK_THAT(read_error(path), Contains("dims[0] (item count): expected 1 to 10000000, got 0"));

  kiln::test::write_file(path, kiln::test::idx_bytes({3, 5000, 5}, {}));
  CHECK_THAT(read_error(path), Contains("dims[1] (rows): expected 1 to 4096, got 5000"));

  // 10^7 images of 4096 x 4096 would be 1.6e14 bytes: refused from the header alone.
  kiln::test::write_file(path, kiln::test::idx_bytes({10'000'000, 4096, 4096}, {}));
  CHECK_THAT(read_error(path), Contains("dims[1] (rows): the dims [10000000, 4096] declare more "
                                        "than the cap of 1073741824 data bytes"));

  // With caps lifted, the product of three 32-bit sizes overflows int64: still refused.
  IdxLimits unlimited{
      .max_count = int64_t{1} << 40, .max_side = int64_t{1} << 40, .max_bytes = INT64_MAX};
  kiln::test::write_file(path, kiln::test::idx_bytes({0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {}));
  CHECK_THAT(read_error(path, 3, unlimited),
             Contains("dims[1] (rows): the dims [4294967295, 4294967295] declare more than"));

  // A caller's smaller cap.
  kiln::test::write_file(path, kImages);
  CHECK_THAT(read_error(path, 3, IdxLimits{.max_bytes = 59}), Contains("cap of 59 data bytes"));
}

TEST_CASE("IdxFile refuses a file truncated at any byte, raw or gzipped") {
  kiln::test::TempDir dir;
  const std::string path = dir.file("images");
  const Bytes packed = kiln::test::gzip(kImages);
  for (size_t length = 0; length < kImages.size(); ++length) {
    kiln::test::write_file(path, Bytes(kImages.begin(), kImages.begin() + length));
    INFO("raw, " << length << " bytes");
    CHECK_THROWS_AS(IdxFile(path, 3, "Test").read_data(), kiln::Error);
  }
  for (size_t length = 0; length < packed.size(); ++length) {
    kiln::test::write_file(path, Bytes(packed.begin(), packed.begin() + length));
    INFO("gzip, " << length << " of " << packed.size() << " bytes");
    CHECK_THROWS_AS(IdxFile(path, 3, "Test").read_data(), kiln::Error);
  }
  // A truncated file is refused from its size before the data is allocated...
  kiln::test::write_file(path, Bytes(kImages.begin(), kImages.end() - 1));
  CHECK_THAT(read_error(path), Contains("file size 75 bytes, but the header declares 76 (16 header "
                                        "+ 60 data): truncated"));
  kiln::test::write_file(path, kiln::test::gzip(Bytes(kImages.begin(), kImages.end() - 1)));
  CHECK_THAT(read_error(path),
             Contains("the gzip trailer declares 75 inflated bytes (mod 2^32), but "
                      "the IDX header declares 76: the file is truncated or "
                      "corrupt"));
  // ...and again while inflating, when the trailer lies.
  kiln::test::write_file(
      path, with_isize(kiln::test::gzip(Bytes(kImages.begin(), kImages.end() - 1)), 76));
  CHECK_THAT(read_error(path), Contains("corrupt gzip data (incorrect length check)"));
}

TEST_CASE("ByteStream names the field a short read was for") {
  kiln::test::TempDir dir;
  kiln::test::write_file(dir.file("short"), Bytes(10, 7));
  ByteStream stream(dir.file("short"), "Test");
  uint8_t buffer[16];
  stream.read_exact(buffer, 4, "magic");
  CHECK_THAT(error_of([&] { stream.read_exact(buffer, 16, "pixels"); }),
             Contains("Test: " + (dir.file("short")) +
                      ": pixels: truncated: expected 16 bytes, the "
                      "file ends after 6 (at byte 10)"));

  // A gzip stream cut inside its trailer: all the data inflates, but the stream never ends.
  const Bytes packed = kiln::test::gzip(kImages);
  kiln::test::write_file(dir.file("cut.gz"), Bytes(packed.begin(), packed.end() - 4));
  ByteStream cut(dir.file("cut.gz"), "Test");
  std::vector<uint8_t> all(kImages.size());
  cut.read_exact(all.data(), all.size(), "everything");
  CHECK(all == kImages);
  CHECK_THAT(error_of([&] { cut.expect_end(all.size()); }),
             Contains("truncated gzip file: the compressed data ends before the end-of-stream "
                      "trailer"));
}

TEST_CASE("IdxFile refuses data beyond what the header declares") {
  kiln::test::TempDir dir;
  const std::string path = dir.file("images");
  Bytes longer = kImages;
  longer.push_back(0);
  kiln::test::write_file(path, longer);
  CHECK_THAT(read_error(path), Contains("file size 77 bytes, but the header declares 76 (16 header "
                                        "+ 60 data): trailing bytes"));

  // A gzip stream that inflates far past the declared size: its trailer gives it away...
  Bytes bomb = kImages;
  bomb.resize(bomb.size() + (size_t{1} << 20), 0);
  kiln::test::write_file(path, kiln::test::gzip(bomb));
  CHECK_THAT(read_error(path), Contains("the gzip trailer declares 1048652 inflated bytes"));
  // ...and with a forged trailer, inflating stops at the cap.
  kiln::test::write_file(path, with_isize(kiln::test::gzip(bomb), 76));
  CHECK_THAT(read_error(path), Contains("gzip stream inflates past its cap of 76 bytes"));

  // Bytes after a complete gzip stream: refused from the trailer, or, when the extra bytes end
  // like a valid trailer, after inflating.
  Bytes trailing = kiln::test::gzip(kImages);
  trailing.push_back(0x42);
  kiln::test::write_file(path, trailing);
  CHECK_THAT(read_error(path), Contains("the file is truncated or corrupt"));
  trailing = kiln::test::gzip(kImages);
  trailing.insert(trailing.end(), {76, 0, 0, 0});
  kiln::test::write_file(path, trailing);
  CHECK_THAT(read_error(path), Contains("unexpected bytes after the end of the gzip stream"));
}

TEST_CASE("IdxFile refuses corrupt gzip data at any byte") {
  kiln::test::TempDir dir;
  const std::string path = dir.file("images");
  const Bytes packed = kiln::test::gzip(kImages);
  // Bytes 4..9 of the gzip header (time stamp, flags, OS) are not covered by any check; the
  // compression method, the deflate data and the CRC-32 / length trailer are.
  for (size_t at = 0; at < packed.size(); ++at) {
    if (at >= 4 && at < 10) continue;
    Bytes corrupt = packed;
    corrupt[at] ^= 0x55;
    kiln::test::write_file(path, corrupt);
    INFO("byte " << at << " of " << packed.size());
    CHECK_THROWS_AS(IdxFile(path, 3, "Test").read_data(), kiln::Error);
  }
  Bytes corrupt = packed;
  corrupt[packed.size() - 6] ^= 0x55;  // the CRC-32
  kiln::test::write_file(path, corrupt);
  CHECK_THAT(read_error(path), Contains("corrupt gzip data (incorrect data check)"));
}

TEST_CASE("IdxFile reports a missing file or a directory") {
  kiln::test::TempDir dir;
  CHECK_THAT(read_error(dir.file("absent")), Contains("absent: cannot open: no such file"));
  CHECK_THAT(read_error(dir.path()), Contains("not a regular file"));
}

TEST_CASE("IdxFile reads bytes in memory as it reads the same file") {
  for (const Bytes& bytes : {kImages, kiln::test::gzip(kImages)}) {
    IdxFile file(std::span<const uint8_t>(bytes), "in-memory", 3, "Test");
    CHECK(file.path() == "in-memory");
    CHECK(file.dims() == std::vector<int64_t>{3, 4, 5});
    CHECK(file.read_data() == kPixels);
  }
  Bytes truncated(kImages.begin(), kImages.end() - 1);
  CHECK_THAT(error_of([&] { IdxFile(std::span<const uint8_t>(truncated), "cut", 3, "Test"); }),
             Contains("Test: cut: file size 75 bytes, but the header declares 76"));
}

TEST_CASE("IdxFile grows a gzipped body as it inflates, not to the size the trailer claims") {
  // A 1 GiB claim (the default cap) backed by 100 bytes of data, with a trailer forged to match.
  const Bytes claim = kiln::test::idx_bytes({65536, 128, 128}, kiln::test::pattern(100));
  const Bytes packed = with_isize(kiln::test::gzip(claim), (uint32_t{1} << 30) + 16);
  IdxFile file(std::span<const uint8_t>(packed), "forged", 3, "Test");
  CHECK(file.data_bytes() == int64_t{1} << 30);
  struct rusage before {};
  ::getrusage(RUSAGE_SELF, &before);
  CHECK_THAT(error_of([&] { file.read_data(); }),
             Contains("Test: forged: corrupt gzip data (incorrect length check) after 116 "
                      "inflated bytes"));
  struct rusage after {};
  ::getrusage(RUSAGE_SELF, &after);
  // ru_maxrss is the peak in KiB: allocating (and zeroing) the claim would raise it by 1 GiB.
  CHECK(after.ru_maxrss - before.ru_maxrss < 256 * 1024);
}
