// core/safetensors: round trips, interop with Python and PyTorch, a battery of malformed files,
// and atomic saves under SIGKILL.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include "../reliability/bad_input.h"
#include "../temp_dir.h"
#include "../test_helpers.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

std::string le64(uint64_t n) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out;
}

// A file: the length prefix (by default the header's size), the header, the data.
std::string file_of(const std::string& header, const std::string& data,
                    std::optional<uint64_t> length = std::nullopt) {
  return le64(length.value_or(header.size())) + header + data;
}

// The tensors of tests/tools/optim_fixtures.py's reference_layout(), rebuilt in kiln.
NamedTensors reference_tensors() {
  return {{"weights", Tensor::from_vector(std::vector<float>{0, 0.5f, 1, 1.5f, 2, 2.5f}, {2, 3})},
          {"special", Tensor::from_vector(std::vector<double>{1e-300, -0.0, INFINITY, -INFINITY, NAN, 2.5})},
          {"labels", Tensor::from_vector(std::vector<int64_t>{-(int64_t{1} << 62), 0, 7, INT64_MAX})},
          {"scalar", Tensor::scalar(3.25, DType::f64)},
          {"empty", Tensor::zeros({0, 3})}};
}

// Bitwise equality of two tensor lists, by name.
void require_same(const NamedTensors& got, const NamedTensors& want) {
  std::map<std::string, Tensor> by_name(got.begin(), got.end());
  REQUIRE(by_name.size() == want.size());
  for (const auto& [name, t] : want) {
    INFO(name);
    REQUIRE(by_name.count(name));
    const Tensor& g = by_name.at(name);
    REQUIRE(g.shape() == t.shape());
    REQUIRE(g.dtype() == t.dtype());
    const Tensor c = t.contiguous();
    if (t.numel() > 0)
      REQUIRE(std::memcmp(g.raw_data_ptr(), c.raw_data_ptr(), t.numel() * itemsize(t.dtype())) == 0);
  }
}

}  // namespace

// ---- round trips and interop ---------------------------------------------------------------------

TEST_CASE("safetensors round-trips every dtype, 0-d, empty and strided tensors", "[safetensors]") {
  TempDir dir("kiln-st");
  NamedTensors tensors = reference_tensors();
  tensors.emplace_back("strided", Tensor::arange(12).to(DType::f32).reshape({3, 4}).transpose(0, 1));
  const Metadata metadata{{"epoch", "3"}, {"name", "caf\xc3\xa9"}};
  save_safetensors(dir.file("a.safetensors"), tensors, metadata);
  const SafetensorsContents back = read_safetensors(dir.file("a.safetensors"));
  require_same(back.tensors, tensors);
  REQUIRE(back.metadata == metadata);
  // The in-memory reader agrees with the file reader.
  const SafetensorsContents parsed = parse_safetensors(read_bytes(dir.file("a.safetensors")), "a");
  require_same(parsed.tensors, tensors);
}

TEST_CASE("kiln writes the same bytes as the reference numpy writer", "[safetensors][interop]") {
  // tests/data/reference_layout.safetensors comes from tests/tools/fixtures.py's save().
  const std::string want = read_bytes(std::string(KILN_TEST_DATA) + "/reference_layout.safetensors");
  const Metadata metadata{{"format", "pt"}, {"note", "layout check"}};
  REQUIRE(serialize_safetensors(reference_tensors(), metadata) == want);
  const SafetensorsContents back = parse_safetensors(want, "reference_layout.safetensors");
  require_same(back.tensors, reference_tensors());
  REQUIRE(back.metadata == metadata);
}

TEST_CASE("an independent numpy reader reads kiln files exactly", "[safetensors][interop]") {
  const std::string tool = std::string(KILN_TEST_DATA) + "/../tools/safetensors_roundtrip.py";
  if (std::system("/usr/bin/python3 -c 'import numpy' > /dev/null 2>&1") != 0) {
    WARN("skipped: /usr/bin/python3 with numpy is not available");
    return;
  }
  TempDir dir("kiln-st");
  Generator gen(11);
  NamedTensors tensors = reference_tensors();
  tensors.emplace_back("big.f32", Tensor::randn({17, 33}, DType::f32, &gen));
  tensors.emplace_back("big.f64", Tensor::randn({5, 3, 7}, DType::f64, &gen));
  const Metadata metadata{{"run", "interop"}, {"lr", "0.001"}};
  save_safetensors(dir.file("kiln.safetensors"), tensors, metadata);
  const std::string command = "cd '" + std::string(KILN_TEST_DATA) + "/../tools' && /usr/bin/python3 '" +
                              tool + "' '" + dir.file("kiln.safetensors") + "' '" +
                              dir.file("numpy.safetensors") + "'";
  REQUIRE(std::system(command.c_str()) == 0);
  const SafetensorsContents back = read_safetensors(dir.file("numpy.safetensors"));
  require_same(back.tensors, tensors);
  REQUIRE(back.metadata == metadata);
}

namespace {

struct TinyLinear : nn::Module {
  Tensor weight, bias;
  TinyLinear(int64_t in, int64_t out) {
    weight = register_parameter("weight", Tensor::zeros({out, in}));
    bias = register_parameter("bias", Tensor::zeros({out}));
  }
  Tensor forward(const Tensor& x) override { return matmul(x, weight.transpose(0, 1)) + bias; }
};

struct Tanh : nn::Module {
  Tensor forward(const Tensor& x) override { return x.tanh(); }
};

}  // namespace

TEST_CASE("a PyTorch state_dict file loads into the same kiln architecture", "[safetensors][interop]") {
  // torch.nn.Sequential(Linear(5, 7), Tanh(), Linear(7, 3)): keys 0.weight, 0.bias, 2.weight, 2.bias.
  auto net = std::make_shared<nn::Sequential>(std::make_shared<TinyLinear>(5, 7), std::make_shared<Tanh>(),
                                              std::make_shared<TinyLinear>(7, 3));
  net->load_state_dict(load_safetensors(std::string(KILN_TEST_DATA) + "/torch_mlp_state.safetensors"));
  const auto io = load_fixture("torch_mlp_io.safetensors");
  KILN_REQUIRE_CLOSE(net->forward(io.at("input")), io.at("output"), 1e-6, 1e-5);
}

// ---- malformed files -----------------------------------------------------------------------------

namespace {

// How docs/reliability.md shows a file: its length prefix, its header (non-ASCII bytes as \xNN,
// long headers cut), and the size of the rest.
std::string describe(const std::string& bytes) {
  if (bytes.size() < 8) return std::to_string(bytes.size()) + " bytes";
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = length << 8 | static_cast<unsigned char>(bytes[i]);
  const size_t header = static_cast<size_t>(std::min<uint64_t>(length, bytes.size() - 8));
  std::string shown;
  for (size_t i = 8; i < 8 + header && shown.size() < 90; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f) {
      shown += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      shown += hex;
    }
  }
  if (shown.size() >= 90 && header > 90) shown += "... (" + std::to_string(header) + " bytes)";
  std::string out = "prefix " + std::to_string(length) + ", header " + (shown.empty() ? "(empty)" : shown);
  return out + ", " + std::to_string(bytes.size() - 8 - header) + " bytes after it";
}

// Requires that `bytes` is rejected by both readers with a message naming the file and `field`.
void require_rejected(const std::string& bytes, const std::string& field) {
  INFO("expected an error naming '" << field << "'");
  const std::string from_memory = error_text([&] { parse_safetensors(bytes, "bad.safetensors"); });
  INFO("parse_safetensors: " << from_memory);
  REQUIRE_THAT(from_memory, Catch::StartsWith("bad.safetensors: ") && Catch::Contains(field));
  record_bad_input("safetensors", describe(bytes), from_memory);
  TempDir dir("kiln-st");
  const std::string path = dir.file("bad.safetensors");
  write_bytes(path, bytes);
  const std::string from_file = error_text([&] { read_safetensors(path); });
  INFO("read_safetensors: " << from_file);
  REQUIRE_THAT(from_file, Catch::StartsWith(path + ": ") && Catch::Contains(field));
}

const std::string kF32x3 = R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})";
const std::string k12 = std::string(12, '\x01');

}  // namespace

TEST_CASE("malformed safetensors: the length prefix", "[safetensors][malformed][bad-input]") {
  REQUIRE_NOTHROW(parse_safetensors(file_of(kF32x3, k12), "good"));
  require_rejected("", "header length: expected 8 bytes, the file has 0");
  require_rejected(std::string(7, '\0'), "header length: expected 8 bytes");
  require_rejected(file_of(kF32x3, k12, 100'000'001), "header length: 100000001 bytes exceeds the limit");
  require_rejected(file_of(kF32x3, k12, ~uint64_t{1}), "header length: 18446744073709551614 bytes exceeds");
  require_rejected(file_of(kF32x3, k12, kF32x3.size() + 13), "header length");
}

TEST_CASE("malformed safetensors: truncations and trailing bytes", "[safetensors][malformed][bad-input]") {
  const std::string good = file_of(kF32x3, k12);
  require_rejected(good.substr(0, good.size() - 1), "tensor 't': data_offsets: end 12 is past the 11 bytes");
  require_rejected(good.substr(0, 8 + kF32x3.size() - 5), "header length");
  require_rejected(good + "x", "data: the tensors cover 12 bytes, but the file holds 13 bytes of data");
  require_rejected(file_of("{}", "abc"), "3 trailing bytes");
  // Every truncation of a valid file is an error, never a crash or a partial load.
  NamedTensors tensors = reference_tensors();
  const std::string full = serialize_safetensors(tensors, {{"k", "v"}});
  for (size_t n = 0; n < full.size(); ++n)
    REQUIRE_THROWS_AS(parse_safetensors(full.substr(0, n), "cut"), Error);
}

TEST_CASE("malformed safetensors: bad JSON", "[safetensors][malformed][bad-input]") {
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,12]})", k12),
                   "header: not valid UTF-8 JSON");
  require_rejected(file_of("{\"t\xff\":1}", ""), "header: not valid UTF-8 JSON");
  require_rejected(file_of("{\"__metadata__\":{\"a\":\"\xc3\x28\"}}", ""), "header: not valid UTF-8 JSON");
  require_rejected(file_of("", ""), "header: not valid UTF-8 JSON");
  require_rejected(file_of(kF32x3 + " {}", k12), "header: not valid UTF-8 JSON");
  require_rejected(file_of("[1, 2]", ""), "header: expected a JSON object, got an array");
  require_rejected(file_of("\"text\"", ""), "header: expected a JSON object");
  // Deep nesting is refused at the third level, without recursion or a large allocation.
  require_rejected(file_of("{\"t\":" + std::string(1'000'000, '[') + std::string(1'000'000, ']') + "}", ""),
                   "tensor 't': expected an object {dtype, shape, data_offsets}, got an array");
  require_rejected(file_of("{\"t\":{\"shape\":[[[[[1]]]]]}}", ""), "tensor 't': shape: expected non-negative integers, got an array");
}

TEST_CASE("malformed safetensors: dtypes and shapes", "[safetensors][malformed][bad-input]") {
  require_rejected(file_of(R"({"t":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}})", std::string(6, 0)),
                   "tensor 't': dtype: 'BF16' is not supported");
  require_rejected(file_of(R"({"t":{"dtype":7,"shape":[3],"data_offsets":[0,12]}})", k12),
                   "tensor 't': dtype: expected a string, got 7");
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":[-3],"data_offsets":[0,12]}})", k12),
                   "tensor 't': shape: expected non-negative integers, got -3");
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,12]}})", k12),
                   "tensor 't': shape: expected non-negative integers, got 1.5");
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":3,"data_offsets":[0,12]}})", k12),
                   "tensor 't': shape: expected an array");
  // Absurd shapes: the element count, or the extent of an empty tensor, overflows int64.
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,12]}})", k12),
                   "tensor 't': shape: [4294967296, 4294967296] has more elements than int64 can count");
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})", ""),
                   "tensor 't': shape");
  require_rejected(file_of(R"({"t":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})", ""),
                   "tensor 't': shape: [2305843009213693952] of F64 overflows the byte count");
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,0]}})", ""),
                   "tensor 't': shape: the size 18446744073709551615 is too large");
  std::string dims = "[";
  for (int i = 0; i < 65; ++i) dims += i ? ",1" : "1";
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":)" + dims + R"(],"data_offsets":[0,4]}})", "abcd"),
                   "tensor 't': shape: more than 64 dims");
  // The byte count must match the offsets exactly.
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", k12),
                   "tensor 't': data_offsets: [0, 12] holds 12 bytes, but F32 [2] needs 8");
}

TEST_CASE("malformed safetensors: offsets", "[safetensors][malformed][bad-input]") {
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[12,0]}})", k12),
                   "tensor 't': data_offsets: begin 12 is after end 0");
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0]}})", k12),
                   "tensor 't': data_offsets: expected [begin, end], got 1 values");
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,12,12]}})", k12),
                   "tensor 't': data_offsets: expected [begin, end], got more values");
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,-12]}})", k12),
                   "tensor 't': data_offsets: expected non-negative integers, got -12");
  // Overlap: b starts inside a.
  require_rejected(file_of(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                           R"("b":{"dtype":"F32","shape":[3],"data_offsets":[8,20]}})", std::string(20, 0)),
                   "tensor 'b': data_offsets: begins at 8, expected 12 (it overlaps the previous tensor)");
  // Two names on the same bytes.
  require_rejected(file_of(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                           R"("b":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})", k12),
                   "data_offsets: begins at 0, expected 12 (it overlaps the previous tensor)");
  // A gap between tensors.
  require_rejected(file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", k12),
                   "tensor 'b': data_offsets: begins at 8, expected 4 (a gap before it)");
  // Offsets far past the file.
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[18446744073709551600,18446744073709551612]}})", k12),
                   "tensor 't': data_offsets: end 18446744073709551612 is past the 12 bytes of data");
  // Out of order in the header but contiguous in the data is fine.
  REQUIRE_NOTHROW(parse_safetensors(file_of(R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                                            R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(8, 0)), "ok"));
}

TEST_CASE("malformed safetensors: names, fields and metadata", "[safetensors][malformed][bad-input]") {
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, 0)),
                   "header: the name 't' appears more than once");
  require_rejected(file_of(R"({"t":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}})", std::string(4, 0)),
                   "tensor 't': the field 'dtype' appears more than once");
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":[1]}})", ""),
                   "tensor 't': the field 'data_offsets' is missing");
  require_rejected(file_of(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}})", std::string(4, 0)),
                   "tensor 't': unexpected field 'extra'");
  require_rejected(file_of(R"({"t":[1,2]})", ""), "tensor 't': expected an object");
  require_rejected(file_of(R"({"t":null})", ""), "tensor 't': expected an object");
  require_rejected(file_of(R"({"__metadata__":{"epoch":3}})", ""), "__metadata__.epoch: expected a string, got 3");
  require_rejected(file_of(R"({"__metadata__":{"a":{"b":"c"}}})", ""), "__metadata__.a: expected a string, got an object");
  require_rejected(file_of(R"({"__metadata__":["a"]})", ""), "__metadata__: expected an object of strings, got an array");
  require_rejected(file_of(R"({"__metadata__":{"a":"1","a":"2"}})", ""), "__metadata__: the key 'a' appears more than once");
  require_rejected(file_of(R"({"__metadata__":{},"__metadata__":{}})", ""), "the name '__metadata__' appears more than once");
  // The reference format allows a null __metadata__.
  REQUIRE(parse_safetensors(file_of(R"({"__metadata__":null})", ""), "ok").tensors.empty());
}

TEST_CASE("malformed safetensors: random corruption never crashes", "[safetensors][malformed][bad-input]") {
  NamedTensors tensors = reference_tensors();
  const std::string good = serialize_safetensors(tensors, {{"key", "value"}});
  const uint64_t header_end = 8 + (static_cast<unsigned char>(good[0]) | static_cast<unsigned char>(good[1]) << 8);
  std::mt19937_64 rng(2024);
  int rejected = 0, accepted = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bad = good;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f) {
      // Mostly in the header, where the structure is.
      const size_t at = rng() % 4 ? rng() % header_end : rng() % bad.size();
      bad[at] = static_cast<char>(rng() % 4 ? rng() % 256 : "{}[]\",:0-9eE"[rng() % 12]);
    }
    try {
      parse_safetensors(bad, "fuzz");
      ++accepted;  // e.g. a flip inside the data, or inside a name
    } catch (const Error& e) {
      REQUIRE_THAT(std::string(e.what()), Catch::StartsWith("fuzz: "));
      ++rejected;
    }
  }
  INFO(rejected << " rejected, " << accepted << " accepted");
  REQUIRE(rejected > 1000);
}

TEST_CASE("safetensors file errors name the path", "[safetensors][malformed][bad-input]") {
  TempDir dir("kiln-st");
  require_bad_input("safetensors", "load_safetensors of a missing file",
                    [&] { load_safetensors(dir.file("missing.safetensors")); },
                    Catch::Contains(dir.file("missing.safetensors") + ": cannot open for reading"));
  require_bad_input("safetensors", "load_safetensors of a directory", [&] { load_safetensors(dir.path()); },
                    Catch::Contains("not a regular file"));
  require_bad_input("safetensors", "save_safetensors into a directory that does not exist",
                    [&] { save_safetensors(dir.file("no/such/dir/x.safetensors"), {}); },
                    Catch::Contains("cannot create a temporary file beside it"));
  require_bad_input("safetensors", "save_safetensors of an undefined tensor",
                    [&] { save_safetensors(dir.file("x"), {{"a", Tensor()}}); },
                    Catch::Contains("tensor 'a' is undefined"));
  require_bad_input("safetensors", "save_safetensors of two tensors named 'a'",
                    [&] { save_safetensors(dir.file("x"), {{"a", Tensor::zeros({1})}, {"a", Tensor::zeros({1})}}); },
                    Catch::Contains("the name 'a' appears twice"));
  require_bad_input("safetensors", "save_safetensors of a tensor named \\xff",
                    [&] { save_safetensors(dir.file("x"), {{"\xff", Tensor::zeros({1})}}); },
                    Catch::Contains("not valid UTF-8"));
}

// ---- atomic saves ------------------------------------------------------------------------------------

namespace {

size_t count_temporaries(const std::string& dir) {
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.path().filename().string().find(".tmp.") != std::string::npos) ++n;
  return n;
}

}  // namespace

TEST_CASE("a save killed at random points leaves the previous file loadable and unchanged",
          "[safetensors][atomic]") {
  TempDir dir("kiln-kill");
  const std::string path = dir.file("checkpoint.safetensors");
  // Three distinct checkpoints of about 1 MB: the one on disk before, and two the child alternates.
  auto checkpoint = [](uint64_t seed) {
    Generator gen(seed);
    return NamedTensors{{"weight", Tensor::randn({256, 1024}, DType::f32, &gen)},
                        {"step", Tensor::from_vector(std::vector<int64_t>{static_cast<int64_t>(seed)})}};
  };
  const NamedTensors before = checkpoint(1), a = checkpoint(2), b = checkpoint(3);
  const std::string bytes_before = serialize_safetensors(before), bytes_a = serialize_safetensors(a),
                    bytes_b = serialize_safetensors(b);
  save_safetensors(path, before);

  // How long a save takes here (the slowest of three), to spread the kills over several saves.
  int64_t save_us = 0;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    save_safetensors(dir.file("timing.safetensors"), a);
    save_us = std::max<int64_t>(save_us, std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::steady_clock::now() - t0).count());
  }
  std::remove(dir.file("timing.safetensors").c_str());

  std::mt19937_64 rng(7);
  constexpr int kTrials = 120;
  int unchanged = 0, saw_a = 0, saw_b = 0, left_temporaries = 0;
  std::string previous = bytes_before;
  for (int trial = 0; trial < kTrials; ++trial) {
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // The child saves a, b, a, b, ... until killed. It only writes prebuilt contiguous tensors,
      // so it needs no thread pool, which does not survive fork.
      ::close(ready[0]);
      const char go = 1;
      if (::write(ready[1], &go, 1) != 1) ::_exit(2);
      try {
        for (int i = 0; i < 100000; ++i) save_safetensors(path, i % 2 ? b : a);
      } catch (...) {
        ::_exit(3);
      }
      ::_exit(0);
    }
    ::close(ready[1]);
    char go = 0;
    REQUIRE(::read(ready[0], &go, 1) == 1);
    ::close(ready[0]);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % static_cast<uint64_t>(4 * save_us + 1)));
    ::kill(child, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));  // killed mid-loop, not exited early

    // The file is one whole checkpoint: the previous trial's, or one of those the child wrote.
    const std::string now = read_bytes(path);
    REQUIRE((now == previous || now == bytes_a || now == bytes_b));
    const NamedTensors loaded = load_safetensors(path);
    require_same(loaded, now == bytes_before ? before : now == bytes_a ? a : b);
    unchanged += now == previous;
    saw_a += now == bytes_a;
    saw_b += now == bytes_b;
    left_temporaries += static_cast<int>(count_temporaries(dir.path()) > 0);
    previous = now;
  }
  std::printf("kill test: %d trials, one save takes %lld us; a kill left the file as it was %d times "
              "and after a new save %d times (a %d, b %d), always whole; %d kills left a temporary file\n",
              kTrials, static_cast<long long>(save_us), unchanged, kTrials - unchanged, saw_a, saw_b,
              left_temporaries);
  // The kills landed both before a first rename (file unchanged) and after renames completed.
  REQUIRE(unchanged > 0);
  REQUIRE(kTrials - unchanged > 0);
  // Temporaries of killed writers are removed by the next save; the directory then holds the file only.
  save_safetensors(path, before);
  REQUIRE(count_temporaries(dir.path()) == 0);
  REQUIRE(read_bytes(path) == bytes_before);
}

TEST_CASE("a save removes the temporaries of dead writers only", "[safetensors][atomic]") {
  TempDir dir("kiln-tmp");
  const std::string path = dir.file("model.safetensors");
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const std::string stale = path + ".tmp." + std::to_string(dead) + ".abc123";
  const std::string live = path + ".tmp." + std::to_string(::getppid()) + ".def456";
  const std::string other = dir.file("other.safetensors.tmp." + std::to_string(dead) + ".ghi789");
  for (const auto& f : {stale, live, other}) write_bytes(f, "partial");
  save_safetensors(path, {{"x", Tensor::ones({2})}});
  REQUIRE_FALSE(std::filesystem::exists(stale));
  REQUIRE(std::filesystem::exists(live));   // its writer may still be running
  REQUIRE(std::filesystem::exists(other));  // another file's temporary
  REQUIRE(load_safetensors(path).size() == 1);
}
