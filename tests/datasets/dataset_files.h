// Helpers for the dataset tests: TempDir (from temp_dir.h), and writers for small IDX, gzip and
// CIFAR-10 files, so the tests generate their own fixtures instead of committing them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <zlib.h>

#include <kiln/core/error.h>

#include "../temp_dir.h"

namespace kiln::test {

using Bytes = std::vector<uint8_t>;

// One TempDir for all the tests (path(), file(name)).
using kiln::testing::TempDir;

/// The message of the kiln::Error that fn throws, or "(no error)".
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const kiln::Error& e) {
    return e.what();
  }
  return "(no error)";
}

inline void write_file(const std::string& path, const Bytes& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  // A new file rather than a truncated one: ext4 flushes a file rewritten in place on close
  // (auto_da_alloc), which makes the tests that rewrite a file thousands of times crawl.
  std::filesystem::remove(path);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  KILN_CHECK(out.good(), "test: cannot write ", path);
}

inline void write_text(const std::string& path, const std::string& text) {
  write_file(path, Bytes(text.begin(), text.end()));
}

/// The bytes in gzip format (a single member), as gzip(1) would write them.
inline Bytes gzip(const Bytes& data) {
  z_stream strm{};
  KILN_CHECK(deflateInit2(&strm, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK,
             "test: deflateInit2 failed");
  Bytes out(deflateBound(&strm, data.size()) + 64);
  strm.next_in = const_cast<uint8_t*>(data.data());
  strm.avail_in = static_cast<uInt>(data.size());
  strm.next_out = out.data();
  strm.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&strm, Z_FINISH);
  deflateEnd(&strm);
  KILN_CHECK(rc == Z_STREAM_END, "test: deflate failed");
  out.resize(strm.total_out);
  return out;
}

/// An IDX file of unsigned bytes: magic 0x0000 08 <ndim>, big-endian dims, then data.
inline Bytes idx_bytes(const std::vector<uint32_t>& dims, const Bytes& data, uint8_t type = 0x08) {
  Bytes out = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(d >> shift));
  }
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

/// Deterministic "pixels": byte i is (i * 37 + salt) mod 256.
inline Bytes pattern(size_t n, uint32_t salt = 0) {
  Bytes out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(i * 37 + salt);
  return out;
}

/// n CIFAR-10 records: label (first_label + r) mod 10, then 3072 pattern pixels salted by r.
inline Bytes cifar_records(int n, int first_label = 0) {
  Bytes out;
  for (int r = 0; r < n; ++r) {
    out.push_back(static_cast<uint8_t>((first_label + r) % 10));
    Bytes pixels = pattern(3072, static_cast<uint32_t>(first_label * 100 + r));
    out.insert(out.end(), pixels.begin(), pixels.end());
  }
  return out;
}

}  // namespace kiln::test
