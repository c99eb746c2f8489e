#include <kiln/core/safetensors.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <set>
#include <string_view>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <kiln/core/views.h>

namespace kiln {

// Tensor bytes are copied as they sit in memory, and the format is little-endian.
static_assert(std::endian::native == std::endian::little,
              "core/safetensors assumes a little-endian host");

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // 100 MB, as the reference implementation
constexpr size_t kMaxDims = 64;
// The first 8 bytes of most files that are not safetensors read as an absurd header length.
constexpr const char* kNotSafetensors = " (not a safetensors file?)";

const char* st_dtype(DType d) {
  switch (d) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::i64: return "I64";
  }
  return "?";
}

bool parse_st_dtype(const std::string& s, DType& out) {
  if (s == "F32") { out = DType::f32; return true; }
  if (s == "F64") { out = DType::f64; return true; }
  if (s == "I64") { out = DType::i64; return true; }
  return false;
}

std::string errno_text() { return std::strerror(errno); }

uint64_t read_u64_le(const char* p) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return n;
}

// ---- the header ----------------------------------------------------------------------------------

struct HeaderEntry {
  std::string name;
  std::string dtype_text;
  DType dtype = DType::f32;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

struct Header {
  std::vector<HeaderEntry> entries;  // sorted by data offset once validated
  Metadata metadata;
};

// A SAX handler that accepts exactly the safetensors header grammar,
//   { "__metadata__": {string: string, ...} | null,
//     name: {"dtype": string, "shape": [uint, ...], "data_offsets": [uint, uint]}, ... }
// and throws at the first deviation, naming the field. Streaming keeps memory proportional to the
// entries (no DOM), bounds the nesting depth at three, and sees every key, so repeated names and
// repeated fields are caught rather than silently overwritten.
class HeaderParser {
 public:
  explicit HeaderParser(const std::string& file) : file_(file) {}

  Header take() { return std::move(header_); }

  bool null() { return value("null"); }
  bool boolean(bool b) { return value(b ? "true" : "false"); }
  bool number_integer(int64_t v) { return value(std::to_string(v)); }
  bool number_float(double, const std::string& text) { return value(text); }
  bool binary(nlohmann::json::binary_t&) { return value("binary data"); }
  bool number_unsigned(uint64_t v) {
    if (where_ == Where::shape) {
      if (entry_.shape.size() >= kMaxDims)
        fail_field("shape", "more than ", kMaxDims, " dims");
      if (v > static_cast<uint64_t>(INT64_MAX)) fail_field("shape", "the size ", v, " is too large");
      entry_.shape.push_back(static_cast<int64_t>(v));
      return true;
    }
    if (where_ == Where::offsets) {
      if (offsets_seen_ >= 2) fail_field("data_offsets", "expected [begin, end], got more values");
      (offsets_seen_++ == 0 ? entry_.begin : entry_.end) = v;
      return true;
    }
    return value(std::to_string(v));
  }
  bool string(std::string& s) {
    if (where_ == Where::metadata) {
      header_.metadata[key_] = s;
      return true;
    }
    if (where_ == Where::tensor && key_ == "dtype") {
      entry_.dtype_text = s;
      return true;
    }
    return value("the string \"" + s + "\"");
  }
  bool start_object(size_t) {
    switch (where_) {
      case Where::start: where_ = Where::top; return true;
      case Where::top:
        if (key_ == "__metadata__") {
          where_ = Where::metadata;
        } else {
          where_ = Where::tensor;
          entry_ = HeaderEntry{};
          entry_.name = key_;
          fields_.clear();
        }
        object_keys_.clear();
        return true;
      default: return value("an object");
    }
  }
  bool key(std::string& k) {
    if (where_ == Where::top) {
      if (!names_.insert(k).second) fail_header("the name '", k, "' appears more than once");
    } else if (where_ == Where::metadata) {
      if (!object_keys_.insert(k).second)
        fail_header("__metadata__: the key '", k, "' appears more than once");
    } else if (where_ == Where::tensor) {
      if (k != "dtype" && k != "shape" && k != "data_offsets")
        fail_tensor("unexpected field '", k, "' (expected dtype, shape and data_offsets)");
      if (!fields_.insert(k).second) fail_tensor("the field '", k, "' appears more than once");
    }
    key_ = k;
    return true;
  }
  bool end_object() {
    switch (where_) {
      case Where::top: where_ = Where::done; return true;
      case Where::metadata: where_ = Where::top; return true;
      case Where::tensor:
        for (const char* field : {"dtype", "shape", "data_offsets"})
          if (!fields_.count(field)) fail_tensor("the field '", field, "' is missing");
        header_.entries.push_back(std::move(entry_));
        where_ = Where::top;
        return true;
      default: return value("an object");  // unreachable: the lexer balances brackets
    }
  }
  bool start_array(size_t) {
    if (where_ == Where::tensor && key_ == "shape") {
      where_ = Where::shape;
      return true;
    }
    if (where_ == Where::tensor && key_ == "data_offsets") {
      where_ = Where::offsets;
      offsets_seen_ = 0;
      return true;
    }
    return value("an array");
  }
  bool end_array() {
    if (where_ == Where::offsets && offsets_seen_ != 2)
      fail_field("data_offsets", "expected [begin, end], got ", offsets_seen_, " values");
    where_ = Where::tensor;
    return true;
  }
  bool parse_error(size_t position, const std::string& token, const nlohmann::detail::exception& e) {
    KILN_FAIL(file_, ": header: not valid UTF-8 JSON at byte ", position, " near '",
              token.substr(0, 40), "' (", e.what(), ")");
  }

 private:
  enum class Where { start, top, metadata, tensor, shape, offsets, done };

  template <class... Parts>
  [[noreturn]] void fail_header(const Parts&... parts) {
    KILN_FAIL(file_, ": header: ", parts...);
  }
  template <class... Parts>
  [[noreturn]] void fail_tensor(const Parts&... parts) {
    KILN_FAIL(file_, ": tensor '", entry_.name, "': ", parts...);
  }
  template <class... Parts>
  [[noreturn]] void fail_field(const char* field, const Parts&... parts) {
    KILN_FAIL(file_, ": tensor '", entry_.name, "': ", field, ": ", parts...);
  }

  // A value that the grammar does not allow here; `got` describes it.
  bool value(const std::string& got) {
    switch (where_) {
      case Where::start: fail_header("expected a JSON object, got ", got);
      case Where::top:
        if (key_ == "__metadata__") {
          if (got == "null") return true;  // the reference format allows "__metadata__": null
          fail_header("__metadata__: expected an object of strings, got ", got);
        }
        KILN_FAIL(file_, ": tensor '", key_, "': expected an object {dtype, shape, data_offsets}, got ",
                  got);
      case Where::metadata:
        KILN_FAIL(file_, ": __metadata__.", key_, ": expected a string, got ", got);
      case Where::tensor:
        if (key_ == "dtype") fail_field("dtype", "expected a string, got ", got);
        fail_field(key_.c_str(), "expected an array of non-negative integers, got ", got);
      case Where::shape: fail_field("shape", "expected non-negative integers, got ", got);
      case Where::offsets: fail_field("data_offsets", "expected non-negative integers, got ", got);
      case Where::done: break;
    }
    fail_header("unexpected ", got, " after the header object");
  }

  const std::string& file_;
  Where where_ = Where::start;
  std::string key_;                     // the last key read at the current level
  std::set<std::string> names_;         // top-level keys
  std::set<std::string> object_keys_;   // keys of __metadata__
  std::set<std::string> fields_;        // fields of the current tensor
  HeaderEntry entry_;
  int offsets_seen_ = 0;
  Header header_;
};

// Parses and validates the JSON header against `data_size`, the bytes that follow it. Nothing is
// allocated for tensor data until every entry is known to fit exactly.
Header parse_header(std::string_view json, uint64_t data_size, const std::string& file) {
  HeaderParser parser(file);
  const bool ok = nlohmann::json::sax_parse(json.begin(), json.end(), &parser);
  KILN_CHECK(ok, file, ": header: not valid JSON");
  Header header = parser.take();

  for (HeaderEntry& e : header.entries) {
    const std::string where = detail::concat(file, ": tensor '", e.name, "': ");
    KILN_CHECK(parse_st_dtype(e.dtype_text, e.dtype), where, "dtype: '", e.dtype_text,
               "' is not supported (kiln reads F32, F64 and I64)");
    // The element count, and the product of the non-zero sizes (which the strides of an empty
    // tensor still multiply out to), must fit in int64.
    uint64_t numel = 1, extent = 1;
    for (int64_t s : e.shape) {
      const uint64_t dim = static_cast<uint64_t>(s);
      KILN_CHECK(!__builtin_mul_overflow(numel, dim, &numel) &&
                     !__builtin_mul_overflow(extent, std::max<uint64_t>(dim, 1), &extent) &&
                     extent <= static_cast<uint64_t>(INT64_MAX),
                 where, "shape: ", shape_str(e.shape), " has more elements than int64 can count");
    }
    uint64_t nbytes = 0;
    KILN_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(itemsize(e.dtype)), &nbytes),
               where, "shape: ", shape_str(e.shape), " of ", e.dtype_text, " overflows the byte count");
    KILN_CHECK(e.begin <= e.end, where, "data_offsets: begin ", e.begin, " is after end ", e.end);
    KILN_CHECK(e.end - e.begin == nbytes, where, "data_offsets: [", e.begin, ", ", e.end, "] holds ",
               e.end - e.begin, " bytes, but ", e.dtype_text, " ", shape_str(e.shape), " needs ",
               nbytes);
    KILN_CHECK(e.end <= data_size, where, "data_offsets: end ", e.end, " is past the ", data_size,
               " bytes of data");
  }
  // The data must be covered exactly: sorted, contiguous, no overlap, no trailing bytes.
  std::stable_sort(header.entries.begin(), header.entries.end(),
                   [](const HeaderEntry& a, const HeaderEntry& b) {
                     return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                   });
  uint64_t expected = 0;
  for (const HeaderEntry& e : header.entries) {
    KILN_CHECK(e.begin == expected, file, ": tensor '", e.name, "': data_offsets: begins at ",
               e.begin, ", expected ", expected,
               e.begin < expected ? " (it overlaps the previous tensor)" : " (a gap before it)");
    expected = e.end;
  }
  KILN_CHECK(expected == data_size, file, ": data: the tensors cover ", expected,
             " bytes, but the file holds ", data_size, " bytes of data (",
             data_size - expected, " trailing bytes)");
  return header;
}

// ---- files ---------------------------------------------------------------------------------------

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads exactly n bytes at `offset`, or throws naming `what`.
void pread_exact(int fd, char* out, uint64_t n, uint64_t offset, const std::string& path,
                 const char* what) {
  while (n > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, uint64_t{1} << 30));
    const ssize_t got = ::pread(fd, out, chunk, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    KILN_CHECK(got >= 0, path, ": ", what, ": read failed: ", errno_text());
    KILN_CHECK(got > 0, path, ": ", what, ": the file ended early (did it shrink while being read?)");
    out += got;
    n -= static_cast<uint64_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

std::string directory_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string basename_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Temporary files are named "<file>.tmp.<pid>.<random>". A writer killed before its rename leaves
// one behind; the next save removes those whose writer process no longer exists. Files of live
// processes (a concurrent save of the same path) are left alone.
void remove_stale_temporaries(const std::string& path) {
  const std::string prefix = basename_of(path) + ".tmp.";
  std::error_code ec;
  std::filesystem::directory_iterator it(directory_of(path), ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    const size_t dot = rest.find('.');
    if (dot == 0 || dot == std::string::npos) continue;
    if (!std::all_of(rest.begin(), rest.begin() + dot, [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    if (dot > 9) continue;  // not a pid
    const pid_t pid = static_cast<pid_t>(std::stol(rest.substr(0, dot)));
    if (pid == ::getpid()) continue;
    if (::kill(pid, 0) != 0 && errno == ESRCH) ::unlink(it->path().c_str());
  }
}

}  // namespace

std::string serialize_safetensors(const NamedTensors& tensors, const Metadata& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  std::vector<Tensor> contiguous;
  contiguous.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    KILN_CHECK(t.defined(), "save_safetensors: tensor '", name, "' is undefined");
    KILN_CHECK(name != "__metadata__", "save_safetensors: '__metadata__' is reserved");
    KILN_CHECK(names.insert(name).second, "save_safetensors: the name '", name, "' appears twice");
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * itemsize(t.dtype());
    header[name] = {{"dtype", st_dtype(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(kernels::contiguous(t));
  }
  std::string json;
  try {
    json = header.dump();
  } catch (const nlohmann::json::exception& e) {
    KILN_FAIL("save_safetensors: a tensor name or metadata string is not valid UTF-8 (", e.what(), ")");
  }
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  while ((8 + json.size()) % 8 != 0) json.push_back(' ');
  std::string out;
  out.reserve(8 + json.size() + offset);
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += json;
  for (const Tensor& t : contiguous) {
    const size_t bytes = static_cast<size_t>(t.numel()) * itemsize(t.dtype());
    if (bytes) out.append(static_cast<const char*>(t.raw_data_ptr()), bytes);
  }
  return out;
}

SafetensorsContents parse_safetensors(const std::string& bytes, const std::string& name) {
  const uint64_t file_size = bytes.size();
  KILN_CHECK(file_size >= 8, name, ": header length: expected 8 bytes, the file has ", file_size);
  const uint64_t header_len = read_u64_le(bytes.data());
  KILN_CHECK(header_len <= kMaxHeaderBytes, name, ": header length: ", header_len,
             " bytes exceeds the limit of ", kMaxHeaderBytes, kNotSafetensors);
  KILN_CHECK(header_len <= file_size - 8, name, ": header length: ", header_len,
             " bytes, but only ", file_size - 8, " bytes follow", kNotSafetensors);
  Header header = parse_header(std::string_view(bytes).substr(8, header_len),
                               file_size - 8 - header_len, name);
  SafetensorsContents contents;
  contents.metadata = std::move(header.metadata);
  const char* data = bytes.data() + 8 + header_len;
  for (const HeaderEntry& e : header.entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (e.end > e.begin) std::memcpy(t.raw_data_ptr(), data + e.begin, e.end - e.begin);
    contents.tensors.emplace_back(e.name, t);
  }
  return contents;
}

SafetensorsContents read_safetensors(const std::string& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  KILN_CHECK(fd.get() >= 0, path, ": cannot open for reading: ", errno_text());
  struct stat st {};
  KILN_CHECK(::fstat(fd.get(), &st) == 0, path, ": cannot stat: ", errno_text());
  KILN_CHECK(S_ISREG(st.st_mode), path, ": not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  KILN_CHECK(file_size >= 8, path, ": header length: expected 8 bytes, the file has ", file_size);
  char prefix[8];
  pread_exact(fd.get(), prefix, 8, 0, path, "header length");
  const uint64_t header_len = read_u64_le(prefix);
  KILN_CHECK(header_len <= kMaxHeaderBytes, path, ": header length: ", header_len,
             " bytes exceeds the limit of ", kMaxHeaderBytes, kNotSafetensors);
  KILN_CHECK(header_len <= file_size - 8, path, ": header length: ", header_len,
             " bytes, but only ", file_size - 8, " bytes follow", kNotSafetensors);
  std::string json(static_cast<size_t>(header_len), '\0');
  pread_exact(fd.get(), json.data(), header_len, 8, path, "header");
  Header header = parse_header(json, file_size - 8 - header_len, path);

  // Every size is now known to match the file; read each tensor straight into its storage.
  SafetensorsContents contents;
  contents.metadata = std::move(header.metadata);
  const uint64_t data_start = 8 + header_len;
  for (const HeaderEntry& e : header.entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    pread_exact(fd.get(), static_cast<char*>(t.raw_data_ptr()), e.end - e.begin,
                data_start + e.begin, path, ("tensor '" + e.name + "'").c_str());
    contents.tensors.emplace_back(e.name, t);
  }
  return contents;
}

NamedTensors load_safetensors(const std::string& path) { return read_safetensors(path).tensors; }

void write_file_atomic(const std::string& path, const std::string& bytes) {
  KILN_CHECK(!path.empty() && path.back() != '/', "write_file_atomic: '", path,
             "' is not a file path");
  remove_stale_temporaries(path);
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + ".XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  KILN_CHECK(fd >= 0, path, ": cannot create a temporary file beside it: ", errno_text());
  auto fail = [&](const std::string& what) {
    std::string reason = errno_text();
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    KILN_FAIL(path, ": ", what, ": ", reason, " (the previous file, if any, is unchanged)");
  };
  if (::fchmod(fd, 0644) != 0) fail("chmod of the temporary file failed");
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("write failed");
    written += static_cast<size_t>(n);
  }
  // The data must be durable before the rename makes it visible under `path`.
  if (::fsync(fd) != 0) fail("fsync failed");
  const int close_result = ::close(fd);
  fd = -1;
  if (close_result != 0) fail("close failed");
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename failed");
  // And the rename itself must be durable: fsync the directory entry.
  const int dfd = ::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  KILN_CHECK(dfd >= 0, path, ": cannot open the directory to fsync it: ", errno_text());
  const int sync_result = ::fsync(dfd);
  const std::string reason = errno_text();
  ::close(dfd);
  KILN_CHECK(sync_result == 0, path, ": fsync of the directory failed: ", reason,
             " (the new file is in place but may not survive a power loss)");
}

void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata));
}

}  // namespace kiln
