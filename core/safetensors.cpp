#include <kiln/core/safetensors.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <random>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <kiln/core/views.h>

namespace kiln {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // 100 MB, as the reference implementation
constexpr int64_t kMaxDims = 64;

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

}  // namespace

std::string serialize_safetensors(const NamedTensors& tensors, const Metadata& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  std::vector<Tensor> contiguous;
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
  std::string json = header.dump();
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  while ((8 + json.size()) % 8 != 0) json.push_back(' ');
  std::string out;
  out.reserve(8 + json.size() + offset);
  uint64_t n = json.size();
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
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i)
    header_len |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  KILN_CHECK(header_len <= kMaxHeaderBytes, name, ": header length: ", header_len,
             " bytes exceeds the limit of ", kMaxHeaderBytes);
  KILN_CHECK(header_len <= file_size - 8, name, ": header length: ", header_len,
             " bytes, but only ", file_size - 8, " bytes follow");
  nlohmann::json header;
  // JSON objects keep one value per key, so a repeated tensor name would silently drop a tensor:
  // the parser callback sees every top-level key, repeats included.
  std::set<std::string> keys;
  std::string repeated;
  nlohmann::json::parser_callback_t on_event = [&](int depth, nlohmann::json::parse_event_t event,
                                                   nlohmann::json& parsed) {
    if (depth == 1 && event == nlohmann::json::parse_event_t::key && repeated.empty()) {
      std::string key = parsed.get<std::string>();
      if (!keys.insert(key).second) repeated = key;
    }
    return true;
  };
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + header_len, on_event);
  } catch (const nlohmann::json::exception& e) {
    KILN_FAIL(name, ": header: not valid UTF-8 JSON (", e.what(), ")");
  }
  KILN_CHECK(header.is_object(), name, ": header: expected a JSON object, got ", header.type_name());
  KILN_CHECK(repeated.empty(), name, ": header: the name '", repeated, "' appears more than once");
  const uint64_t data_size = file_size - 8 - header_len;

  SafetensorsContents contents;
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::json& value = it.value();
    if (key == "__metadata__") {
      KILN_CHECK(value.is_object(), name, ": __metadata__: expected an object of strings");
      for (auto m = value.begin(); m != value.end(); ++m) {
        KILN_CHECK(m.value().is_string(), name, ": __metadata__.", m.key(),
                   ": expected a string, got ", m.value().type_name());
        contents.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    KILN_CHECK(value.is_object(), name, ": tensor '", key, "': expected an object");
    for (auto f = value.begin(); f != value.end(); ++f)
      KILN_CHECK(f.key() == "dtype" || f.key() == "shape" || f.key() == "data_offsets", name,
                 ": tensor '", key, "': unexpected field '", f.key(), "'");
    KILN_CHECK(value.contains("dtype") && value["dtype"].is_string(), name, ": tensor '", key,
               "': dtype: expected a string");
    Entry e;
    e.name = key;
    const std::string dtype = value["dtype"].get<std::string>();
    KILN_CHECK(parse_st_dtype(dtype, e.dtype), name, ": tensor '", key, "': dtype: '", dtype,
               "' is not supported (expected F32, F64 or I64)");
    KILN_CHECK(value.contains("shape") && value["shape"].is_array(), name, ": tensor '", key,
               "': shape: expected an array");
    KILN_CHECK(static_cast<int64_t>(value["shape"].size()) <= kMaxDims, name, ": tensor '", key,
               "': shape: ", value["shape"].size(), " dims exceeds the limit of ", kMaxDims);
    uint64_t numel = 1;
    for (const auto& s : value["shape"]) {
      KILN_CHECK(s.is_number_unsigned(), name, ": tensor '", key,
                 "': shape: expected non-negative integers, got ", s.dump());
      const uint64_t dim = s.get<uint64_t>();
      KILN_CHECK(dim <= static_cast<uint64_t>(INT64_MAX) && !__builtin_mul_overflow(numel, dim, &numel),
                 name, ": tensor '", key, "': shape: the element count overflows");
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    uint64_t nbytes = 0;
    KILN_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(itemsize(e.dtype)), &nbytes),
               name, ": tensor '", key, "': shape: the byte count overflows");
    const auto& offsets = value.contains("data_offsets") ? value["data_offsets"] : nlohmann::json();
    KILN_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                   offsets[1].is_number_unsigned(),
               name, ": tensor '", key, "': data_offsets: expected [begin, end]");
    e.begin = offsets[0].get<uint64_t>();
    e.end = offsets[1].get<uint64_t>();
    KILN_CHECK(e.begin <= e.end, name, ": tensor '", key, "': data_offsets: begin ", e.begin,
               " is after end ", e.end);
    KILN_CHECK(e.end - e.begin == nbytes, name, ": tensor '", key, "': data_offsets: ",
               e.end - e.begin, " bytes, but ", dtype, " ", shape_str(e.shape), " needs ", nbytes);
    KILN_CHECK(e.end <= data_size, name, ": tensor '", key, "': data_offsets: end ", e.end,
               " is past the ", data_size, " bytes of data");
    entries.push_back(std::move(e));
  }
  // The data must be covered exactly: sorted, contiguous, no overlap, no trailing bytes.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  for (const Entry& e : entries) {
    KILN_CHECK(e.begin == expected, name, ": tensor '", e.name, "': data_offsets: begins at ",
               e.begin, ", expected ", expected, e.begin < expected ? " (overlaps the previous tensor)"
                                                                     : " (a gap before it)");
    expected = e.end;
  }
  KILN_CHECK(expected == data_size, name, ": data: the tensors cover ", expected, " bytes, but the"
             " file holds ", data_size, " bytes of data");

  const char* data = bytes.data() + 8 + header_len;
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (e.end > e.begin) std::memcpy(t.raw_data_ptr(), data + e.begin, e.end - e.begin);
    contents.tensors.emplace_back(e.name, t);
  }
  return contents;
}

SafetensorsContents read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  KILN_CHECK(in.good(), path, ": cannot open for reading: ", errno_text());
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  KILN_CHECK(size >= 0, path, ": cannot determine the file size");
  in.seekg(0, std::ios::beg);
  // Read the header first so an absurd header is refused before the data is read.
  std::string bytes(static_cast<size_t>(std::min<std::streamoff>(size, 8)), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (size >= 8) {
    uint64_t header_len = 0;
    for (int i = 0; i < 8; ++i)
      header_len |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
    KILN_CHECK(header_len <= kMaxHeaderBytes, path, ": header length: ", header_len,
               " bytes exceeds the limit of ", kMaxHeaderBytes);
    KILN_CHECK(header_len <= static_cast<uint64_t>(size) - 8, path, ": header length: ",
               header_len, " bytes, but only ", size - 8, " bytes follow");
  }
  bytes.resize(static_cast<size_t>(size));
  if (size > 8) in.read(bytes.data() + 8, size - 8);
  KILN_CHECK(in.good() || size <= 8, path, ": read failed: ", errno_text());
  return parse_safetensors(bytes, path);
}

NamedTensors load_safetensors(const std::string& path) { return read_safetensors(path).tensors; }

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string tmp = path + ".tmp-XXXXXX";
  int fd = ::mkstemp(tmp.data());
  KILN_CHECK(fd >= 0, path, ": cannot create a temporary file beside it: ", errno_text());
  auto fail = [&](const std::string& what) {
    std::string reason = errno_text();
    ::close(fd);
    ::unlink(tmp.c_str());
    KILN_FAIL(path, ": ", what, ": ", reason, " (the previous file, if any, is unchanged)");
  };
  ::fchmod(fd, 0644);
  size_t written = 0;
  while (written < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("write failed");
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) fail("fsync failed");
  if (::close(fd) != 0) {
    fd = -1;
    std::string reason = errno_text();
    ::unlink(tmp.c_str());
    KILN_FAIL(path, ": close failed: ", reason);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string reason = errno_text();
    ::unlink(tmp.c_str());
    KILN_FAIL(path, ": rename failed: ", reason, " (the previous file, if any, is unchanged)");
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata));
}

}  // namespace kiln
