// The bad-input battery: malformed files, wrong shapes and dtypes, optimizer misuse and checkpoints
// of another architecture. Every case must throw a kiln::Error whose text says what was expected
// and what was got; none may crash. `kiln_tests "[bad-input]"` runs the battery, with the cases of
// tests/core/safetensors_test.cpp and tests/optim/checkpoint_test.cpp; the app's flags are checked
// by tests/reliability/app_flags_test.sh. docs/reliability.md tables every case.
#include <filesystem>

#include "../datasets/dataset_files.h"
#include "../optim/tiny_mlp.h"
#include "bad_input.h"

using namespace kiln;
using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::Equals;
using Catch::Matchers::StartsWith;
using kiln::test::Bytes;
using kiln::test::TempDir;
using kiln::testing::require_bad_input;

namespace {

// A valid IDX images file of n images 4 x 3 and its labels, 0, 1, 2, ...
Bytes idx_images(uint32_t n) { return test::idx_bytes({n, 4, 3}, test::pattern(n * 12)); }
Bytes idx_labels(uint32_t n, uint8_t last = 0) {
  Bytes labels(n);
  for (uint32_t i = 0; i < n; ++i) labels[i] = static_cast<uint8_t>(i % 10);
  if (last) labels.back() = last;
  return test::idx_bytes({n}, labels);
}

// Opens `name` in dir as an IDX images file (3 dims), as MNIST does.
void open_images(const TempDir& dir, const std::string& name) { data::IdxFile(dir.file(name), 3, "MNIST"); }

// Writes the five CIFAR-10 training files of `records` records each into dir.
void write_cifar_train(const TempDir& dir, int records) {
  for (int i = 1; i <= 5; ++i)
    test::write_file(dir.file("data_batch_" + std::to_string(i) + ".bin"), test::cifar_records(records));
}

data::CIFAR10 read_cifar_train(const TempDir& dir, int records) {
  return data::CIFAR10(dir.path(), data::Split::Train, {.records_per_file = records});
}

Tensor f32(const Shape& shape) { return Tensor::zeros(shape); }
Tensor labels(std::vector<int64_t> values) {
  const auto n = static_cast<int64_t>(values.size());
  return Tensor::from_vector(std::move(values), {n});
}

}  // namespace

// ---- IDX files (MNIST, Fashion-MNIST), raw and gzipped -------------------------------------------

TEST_CASE("bad input: IDX with the magic of another format", "[bad-input][idx]") {
  TempDir dir;
  test::write_file(dir.file("images"), {'P', 'K', 3, 4, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 3});
  require_bad_input("IDX", "raw file starting 50 4B 03 04 (a zip archive)", [&] { open_images(dir, "images"); },
                    Contains("magic: expected 0x00000803 (unsigned byte, 3 dims), got 0x504B0304 (not an IDX file)"));
}

TEST_CASE("bad input: gzipped IDX with a bad magic", "[bad-input][idx]") {
  TempDir dir;
  test::write_file(dir.file("images.gz"), test::gzip(Bytes{1, 2, 8, 3, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 3}));
  require_bad_input("IDX", "gzipped file starting 01 02 08 03", [&] { open_images(dir, "images.gz"); },
                    Contains("got 0x01020803 (not an IDX file)"));
}

TEST_CASE("bad input: IDX of float32 data", "[bad-input][idx]") {
  TempDir dir;
  test::write_file(dir.file("images"), test::idx_bytes({1, 4, 3}, Bytes(48), 0x0D));
  require_bad_input("IDX", "type byte 0x0D (float32) in the magic", [&] { open_images(dir, "images"); },
                    Contains("type byte 0x0D is float32; only unsigned byte (0x08) data is supported"));
}

TEST_CASE("bad input: gzipped IDX with an unknown type code", "[bad-input][idx]") {
  TempDir dir;
  test::write_file(dir.file("images.gz"), test::gzip(test::idx_bytes({1, 4, 3}, Bytes(12), 0x42)));
  require_bad_input("IDX", "gzipped, type byte 0x42 (no IDX type)", [&] { open_images(dir, "images.gz"); },
                    Contains("type byte 0x42 is no IDX type"));
}

TEST_CASE("bad input: IDX labels file where images are expected", "[bad-input][idx]") {
  TempDir dir;
  test::write_file(dir.file("images"), idx_labels(5));
  require_bad_input("IDX", "a 1-dim labels file opened as 3-dim images", [&] { open_images(dir, "images"); },
                    Contains("got 0x00000801 (1 dims: a labels file where images were expected?)"));
}

TEST_CASE("bad input: IDX images file where labels are expected", "[bad-input][idx]") {
  TempDir dir;
  test::write_file(dir.file("labels"), idx_images(5));
  require_bad_input("IDX", "a 3-dim images file opened as 1-dim labels",
                    [&] { data::IdxFile(dir.file("labels"), 1, "MNIST"); },
                    Contains("(3 dims: an images file where labels were expected?)"));
}

TEST_CASE("bad input: IDX whose dims declare more data than the file holds", "[bad-input][idx]") {
  TempDir dir;
  Bytes bytes = idx_images(5);
  bytes.resize(bytes.size() - 7);
  test::write_file(dir.file("images"), bytes);
  require_bad_input("IDX", "raw, dims [5, 4, 3], data cut 7 bytes short", [&] { open_images(dir, "images"); },
                    Contains("file size 69 bytes, but the header declares 76 (16 header + 60 data): truncated"));
}

TEST_CASE("bad input: IDX with bytes after the data", "[bad-input][idx]") {
  TempDir dir;
  Bytes bytes = idx_images(5);
  bytes.push_back(0);
  test::write_file(dir.file("images"), bytes);
  require_bad_input("IDX", "raw, dims [5, 4, 3], one byte after the data", [&] { open_images(dir, "images"); },
                    Contains("file size 77 bytes, but the header declares 76 (16 header + 60 data): trailing bytes"));
}

TEST_CASE("bad input: gzipped IDX cut short", "[bad-input][idx]") {
  TempDir dir;
  Bytes bytes = test::gzip(idx_images(50));
  bytes.resize(bytes.size() / 2);
  test::write_file(dir.file("images.gz"), bytes);
  require_bad_input("IDX", "gzipped, the compressed file cut in half", [&] { open_images(dir, "images.gz"); },
                    Contains("the gzip trailer declares") && Contains("the file is truncated or corrupt"));
}

TEST_CASE("bad input: gzipped IDX whose data inflates short of its header", "[bad-input][idx]") {
  TempDir dir;
  Bytes bytes = idx_images(5);
  bytes.resize(bytes.size() - 10);
  test::write_file(dir.file("images.gz"), test::gzip(bytes));
  require_bad_input("IDX", "gzipped, dims [5, 4, 3], 10 data bytes missing inside a valid gzip stream",
                    [&] { open_images(dir, "images.gz"); },
                    Contains("the gzip trailer declares 66 inflated bytes (mod 2^32), but the IDX header declares 76"));
}

TEST_CASE("bad input: IDX header shorter than its dims", "[bad-input][idx]") {
  TempDir dir;
  test::write_file(dir.file("images"), {0, 0, 8, 3, 0, 0, 0, 5, 0, 0});
  require_bad_input("IDX", "raw, 10 bytes: magic, dims[0] and half of dims[1]", [&] { open_images(dir, "images"); },
                    Contains("dims[1] (rows): truncated: expected 4 bytes, the file ends after 2 (at byte 10)"));
}

TEST_CASE("bad input: IDX file shorter than its magic", "[bad-input][idx]") {
  TempDir dir;
  test::write_file(dir.file("images"), {0, 0});
  require_bad_input("IDX", "raw, 2 bytes", [&] { open_images(dir, "images"); },
                    Contains("magic: truncated: expected 4 bytes, the file ends after 2 (at byte 2)"));
}

TEST_CASE("bad input: empty IDX file", "[bad-input][idx]") {
  TempDir dir;
  test::write_file(dir.file("images"), {});
  require_bad_input("IDX", "raw, 0 bytes", [&] { open_images(dir, "images"); },
                    Contains("magic: truncated: expected 4 bytes, the file ends after 0"));
}

TEST_CASE("bad input: gzipped IDX header cut short", "[bad-input][idx]") {
  TempDir dir;
  test::write_file(dir.file("images.gz"), test::gzip({0, 0, 8, 3, 0, 0, 0, 5}));
  require_bad_input("IDX", "gzipped, 8 bytes: magic and dims[0] only", [&] { open_images(dir, "images.gz"); },
                    Contains("dims[1] (rows): truncated: expected 4 bytes, the gzip stream ends after 0"));
}

TEST_CASE("bad input: IDX with a zero item count", "[bad-input][idx]") {
  TempDir dir;
  test::write_file(dir.file("images"), test::idx_bytes({0, 4, 3}, {}));
  require_bad_input("IDX", "raw, dims [0, 4, 3]", [&] { open_images(dir, "images"); },
                    Contains("dims[0] (item count): expected 1 to 10000000, got 0"));
}

TEST_CASE("bad input: IDX dims past the cap", "[bad-input][idx]") {
  TempDir dir;
  test::write_file(dir.file("images"), test::idx_bytes({1, 100000, 3}, {}));
  require_bad_input("IDX", "raw, dims [1, 100000, 3] and no data", [&] { open_images(dir, "images"); },
                    Contains("dims[1] (rows): expected 1 to 4096, got 100000"));
}

TEST_CASE("bad input: IDX dims whose product passes the byte cap", "[bad-input][idx]") {
  TempDir dir;
  test::write_file(dir.file("images"), test::idx_bytes({10000000, 4096, 4096}, {}));
  require_bad_input("IDX", "raw, dims [10000000, 4096, 4096] and no data", [&] { open_images(dir, "images"); },
                    Contains("dims[1] (rows): the dims [10000000, 4096] declare more than the cap of 1073741824 data bytes"));
}

TEST_CASE("bad input: corrupt gzip data in an IDX file", "[bad-input][idx]") {
  TempDir dir;
  Bytes bytes = test::gzip(idx_images(50));
  for (size_t i = 12; i < 20; ++i) bytes[i] ^= 0xFF;
  test::write_file(dir.file("images.gz"), bytes);
  require_bad_input("IDX", "gzipped, bytes 12-19 of the deflate data inverted", [&] { open_images(dir, "images.gz"); },
                    Contains("corrupt gzip data (invalid literal/length code)"));
}

TEST_CASE("bad input: missing IDX file", "[bad-input][idx]") {
  TempDir dir;
  require_bad_input("IDX", "a path that does not exist", [&] { open_images(dir, "nothing"); },
                    EndsWith("/nothing: cannot open: no such file"));
}

TEST_CASE("bad input: IDX path that is a directory", "[bad-input][idx]") {
  TempDir dir;
  std::filesystem::create_directories(dir.file("images"));
  require_bad_input("IDX", "a directory", [&] { open_images(dir, "images"); },
                    EndsWith("/images: cannot open: not a regular file"));
}

// ---- MNIST and Fashion-MNIST: image and label files as a pair ----------------------------------

TEST_CASE("bad input: MNIST images and labels of different counts", "[bad-input][mnist]") {
  TempDir dir;
  test::write_file(dir.file("train-images-idx3-ubyte"), idx_images(6));
  test::write_file(dir.file("train-labels-idx1-ubyte"), idx_labels(5));
  require_bad_input("MNIST", "6 images, 5 labels", [&] { data::MNIST(dir.path(), data::Split::Train); },
                    Contains("holds 6 images but") && Contains("holds 5 labels; dims[0] (item count) must agree"));
}

TEST_CASE("bad input: gzipped Fashion-MNIST images and labels of different counts", "[bad-input][mnist]") {
  TempDir dir;
  test::write_file(dir.file("t10k-images-idx3-ubyte.gz"), test::gzip(idx_images(3)));
  test::write_file(dir.file("t10k-labels-idx1-ubyte.gz"), test::gzip(idx_labels(4)));
  require_bad_input("MNIST", "Fashion-MNIST test split, gzipped: 3 images, 4 labels",
                    [&] { data::FashionMNIST(dir.path(), data::Split::Test); },
                    StartsWith("FashionMNIST: ") && Contains("holds 3 images but"));
}

TEST_CASE("bad input: MNIST label 10", "[bad-input][mnist]") {
  TempDir dir;
  test::write_file(dir.file("train-images-idx3-ubyte"), idx_images(5));
  test::write_file(dir.file("train-labels-idx1-ubyte"), idx_labels(5, 10));
  require_bad_input("MNIST", "label byte 10 in the last item", [&] { data::MNIST(dir.path(), data::Split::Train); },
                    Contains("train-labels-idx1-ubyte: label 4 is 10, out of range [0, 10)"));
}

TEST_CASE("bad input: MNIST labels file missing", "[bad-input][mnist]") {
  TempDir dir;
  test::write_file(dir.file("train-images-idx3-ubyte"), idx_images(5));
  require_bad_input("MNIST", "an images file without its labels file",
                    [&] { data::MNIST(dir.path(), data::Split::Train); },
                    Contains("MNIST: found neither train-labels-idx1-ubyte nor train-labels-idx1-ubyte.gz in"));
}

TEST_CASE("bad input: MNIST directory without data", "[bad-input][mnist]") {
  TempDir dir;
  require_bad_input("MNIST", "Fashion-MNIST from an empty directory",
                    [&] { data::FashionMNIST(dir.path(), data::Split::Train); },
                    Contains("FashionMNIST: found neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz in"));
}

// ---- CIFAR-10 binary files -----------------------------------------------------------------------

TEST_CASE("bad input: CIFAR-10 file that is not whole records", "[bad-input][cifar10]") {
  TempDir dir;
  write_cifar_train(dir, 2);
  Bytes bytes = test::cifar_records(2);
  bytes.resize(bytes.size() - 100);
  test::write_file(dir.file("data_batch_2.bin"), bytes);
  require_bad_input("CIFAR-10", "data_batch_2.bin 100 bytes short of 2 records", [&] { read_cifar_train(dir, 2); },
                    Contains("data_batch_2.bin: file size 6046 is not a multiple of the 3073-byte record "
                             "(1 label + 3072 pixels): truncated or not CIFAR-10 binary"));
}

TEST_CASE("bad input: CIFAR-10 file with the wrong number of records", "[bad-input][cifar10]") {
  TempDir dir;
  write_cifar_train(dir, 2);
  test::write_file(dir.file("data_batch_4.bin"), test::cifar_records(3));
  require_bad_input("CIFAR-10", "data_batch_4.bin holds 3 records, the others 2", [&] { read_cifar_train(dir, 2); },
                    Contains("data_batch_4.bin: record count: expected 2 records (6146 bytes), got 3 (9219 bytes)"));
}

TEST_CASE("bad input: CIFAR-10 label byte 10", "[bad-input][cifar10]") {
  TempDir dir;
  write_cifar_train(dir, 2);
  Bytes bytes = test::cifar_records(2);
  bytes[3073] = 10;
  test::write_file(dir.file("data_batch_3.bin"), bytes);
  require_bad_input("CIFAR-10", "label byte 10 in record 1 of data_batch_3.bin", [&] { read_cifar_train(dir, 2); },
                    Contains("data_batch_3.bin: record 1 label: 10 is out of range [0, 10)"));
}

TEST_CASE("bad input: CIFAR-10 label byte 255", "[bad-input][cifar10]") {
  TempDir dir;
  write_cifar_train(dir, 2);
  Bytes bytes = test::cifar_records(2);
  bytes[0] = 255;
  test::write_file(dir.file("data_batch_1.bin"), bytes);
  require_bad_input("CIFAR-10", "label byte 255 in record 0 of data_batch_1.bin", [&] { read_cifar_train(dir, 2); },
                    Contains("data_batch_1.bin: record 0 label: 255 is out of range [0, 10)"));
}

TEST_CASE("bad input: CIFAR-10 file missing", "[bad-input][cifar10]") {
  TempDir dir;
  write_cifar_train(dir, 2);
  std::filesystem::remove(dir.file("data_batch_3.bin"));
  require_bad_input("CIFAR-10", "data_batch_3.bin missing", [&] { read_cifar_train(dir, 2); },
                    Contains("data_batch_3.bin: cannot open: No such file or directory"));
}

TEST_CASE("bad input: CIFAR-10 empty file", "[bad-input][cifar10]") {
  TempDir dir;
  write_cifar_train(dir, 2);
  test::write_file(dir.file("data_batch_5.bin"), {});
  require_bad_input("CIFAR-10", "data_batch_5.bin empty", [&] { read_cifar_train(dir, 2); },
                    Contains("data_batch_5.bin: record count: expected 2 records (6146 bytes), got 0 (0 bytes)"));
}

TEST_CASE("bad input: CIFAR-10 directory without data", "[bad-input][cifar10]") {
  TempDir dir;
  require_bad_input("CIFAR-10", "an empty directory", [&] { read_cifar_train(dir, 2); },
                    Contains("CIFAR10: found no data_batch_1.bin in") &&
                        Contains("(scripts/get-cifar10.sh") && Contains("downloads the binary version)"));
}

TEST_CASE("bad input: CIFAR-10 class names file with 9 names", "[bad-input][cifar10]") {
  TempDir dir;
  write_cifar_train(dir, 2);
  test::write_text(dir.file("batches.meta.txt"), "a\nb\nc\nd\ne\nf\ng\nh\ni\n");
  require_bad_input("CIFAR-10", "batches.meta.txt with 9 names", [&] { read_cifar_train(dir, 2); },
                    Contains("batches.meta.txt: class names: expected 10 non-empty lines, got 9"));
}

TEST_CASE("bad input: CIFAR-10 records_per_file 0", "[bad-input][cifar10]") {
  TempDir dir;
  write_cifar_train(dir, 2);
  require_bad_input("CIFAR-10", "CIFAR10Options{.records_per_file = 0}", [&] { read_cifar_train(dir, 0); },
                    Contains("CIFAR10: records_per_file must be in [1, 100000], got 0"));
}

TEST_CASE("bad input: DataLoader with batch size 0", "[bad-input][cifar10]") {
  TempDir dir;
  write_cifar_train(dir, 2);
  const data::CIFAR10 train = read_cifar_train(dir, 2);
  require_bad_input("DataLoader", "DataLoader(cifar, {.batch_size = 0})",
                    [&] { data::DataLoader(train, data::LoaderOptions{.batch_size = 0}); },
                    StartsWith("DataLoader: batch_size must be at least 1, got 0"));
}

// ---- tensor ops ----------------------------------------------------------------------------------

TEST_CASE("bad input: matmul of mismatched inner sizes", "[bad-input][tensor]") {
  require_bad_input("tensor", "matmul([2, 3], [4, 5])", [] { matmul(f32({2, 3}), f32({4, 5})); },
                    StartsWith("matmul: inner sizes differ: [2, 3] @ [4, 5]"));
}

TEST_CASE("bad input: matmul of a 0-dim tensor", "[bad-input][tensor]") {
  require_bad_input("tensor", "matmul([], [3])", [] { matmul(Tensor::scalar(1.0), f32({3})); },
                    StartsWith("matmul: both operands need at least 1 dim, got [] and [3]"));
}

TEST_CASE("bad input: shapes that do not broadcast", "[bad-input][tensor]") {
  require_bad_input("tensor", "[2, 3] + [4]", [] { (void)(f32({2, 3}) + f32({4})); },
                    Contains("shapes [2, 3] and [4]"));
}

TEST_CASE("bad input: view to another element count", "[bad-input][tensor]") {
  require_bad_input("tensor", "[2, 3].view([4, 2])", [] { f32({2, 3}).view({4, 2}); },
                    StartsWith("view: shape [4, 2] is invalid for an input of 6 elements"));
}

TEST_CASE("bad input: view of a non-contiguous tensor", "[bad-input][tensor]") {
  require_bad_input("tensor", "[2, 3].transpose(0, 1).view([6])", [] { f32({2, 3}).transpose(0, 1).view({6}); },
                    StartsWith("view: a tensor of shape [3, 2]") && Contains("reshape"));
}

TEST_CASE("bad input: reshape with two -1 dims", "[bad-input][tensor]") {
  require_bad_input("tensor", "[2, 3].reshape([-1, -1])", [] { f32({2, 3}).reshape({-1, -1}); },
                    StartsWith("reshape: only one dimension can be -1, got shape [-1, -1]"));
}

TEST_CASE("bad input: permute with too few dims", "[bad-input][tensor]") {
  require_bad_input("tensor", "[2, 3, 4].permute({1, 0})", [] { f32({2, 3, 4}).permute({1, 0}); },
                    StartsWith("permute: expected 3"));
}

TEST_CASE("bad input: expand of a non-singleton dim", "[bad-input][tensor]") {
  require_bad_input("tensor", "[2, 3].expand([4, 3])", [] { f32({2, 3}).expand({4, 3}); },
                    StartsWith("expand: the size 2 of dim 0"));
}

TEST_CASE("bad input: reduction over a dim out of range", "[bad-input][tensor]") {
  require_bad_input("tensor", "[2, 3].sum({2})", [] { f32({2, 3}).sum({2}); },
                    Contains("dim 2 is out of range for a tensor with 2 dims"));
}

TEST_CASE("bad input: item of a tensor with several elements", "[bad-input][tensor]") {
  require_bad_input("tensor", "[2, 3].item()", [] { (void)f32({2, 3}).item<float>(); },
                    StartsWith("item: expected a tensor with one element, got shape [2, 3]"));
}

TEST_CASE("bad input: from_vector with the wrong element count", "[bad-input][tensor]") {
  require_bad_input("tensor", "from_vector(5 floats, [2, 3])",
                    [] { Tensor::from_vector(std::vector<float>(5), {2, 3}); },
                    StartsWith("from_vector: shape [2, 3] holds 6"));
}

TEST_CASE("bad input: randn of an integer dtype", "[bad-input][tensor]") {
  require_bad_input("tensor", "randn([2], i64)", [] { Tensor::randn({2}, DType::i64); },
                    StartsWith("randn: expected a floating dtype, got i64"));
}

TEST_CASE("bad input: copy_ from another shape", "[bad-input][tensor]") {
  require_bad_input("tensor", "[2, 3].copy_([3, 2])", [] { f32({2, 3}).copy_(f32({3, 2})); },
                    StartsWith("copy_: shapes [2, 3] and [3, 2] do not broadcast (dim 0 has sizes 2 and 3)"));
}

TEST_CASE("bad input: negative size in a shape", "[bad-input][tensor]") {
  require_bad_input("tensor", "zeros([2, -1])", [] { Tensor::zeros({2, -1}); },
                    StartsWith("shape: sizes must be non-negative, got [2, -1]"));
}

TEST_CASE("bad input: backward of a non-scalar without a gradient", "[bad-input][tensor]") {
  require_bad_input("tensor", "(x * 2).backward() with x [2, 3] requiring grad",
                    [] { (Tensor::ones({2, 3}).requires_grad_() * 2.0).backward(); },
                    StartsWith("backward: a gradient can be created implicitly only for a one-element output, got shape [2, 3]"));
}

TEST_CASE("bad input: an undefined tensor in an op", "[bad-input][tensor]") {
  require_bad_input("tensor", "Tensor() + [2]", [] { (void)(Tensor() + f32({2})); },
                    StartsWith("Tensor: this tensor is undefined"));
}

TEST_CASE("bad input: cat of no tensors", "[bad-input][tensor]") {
  require_bad_input("tensor", "cat({})", [] { cat(std::vector<Tensor>{}); },
                    StartsWith("cat: expected at least one tensor"));
}

TEST_CASE("bad input: cat of tensors that differ off the cat dim", "[bad-input][tensor]") {
  require_bad_input("tensor", "cat({[2, 3], [2, 4]}, 0)", [] { cat({f32({2, 3}), f32({2, 4})}, 0); },
                    StartsWith("cat: tensor 1 has shape [2, 4], which differs from tensor 0's [2, 3] outside dim 0"));
}

TEST_CASE("bad input: squeeze of a dim out of range", "[bad-input][tensor]") {
  require_bad_input("tensor", "[2, 1].squeeze(2)", [] { squeeze(f32({2, 1}), 2); },
                    StartsWith("squeeze: dim 2 is out of range for a tensor with 2 dims (expected -2 to 1)"));
}

TEST_CASE("bad input: log_softmax over a dim out of range", "[bad-input][tensor]") {
  require_bad_input("tensor", "log_softmax([2, 3], 2)", [] { log_softmax(f32({2, 3}), 2); },
                    StartsWith("log_softmax: dim 2 is out of range for a tensor with 2 dims (expected -2 to 1)"));
}

TEST_CASE("bad input: matmul of 1-D tensors of different lengths", "[bad-input][tensor]") {
  require_bad_input("tensor", "matmul([3], [4])", [] { matmul(f32({3}), f32({4})); },
                    StartsWith("matmul: inner sizes differ: [3] @ [4]"));
}

TEST_CASE("bad input: requires_grad_ on an integer tensor", "[bad-input][tensor]") {
  require_bad_input("tensor", "i64 [3].requires_grad_()", [] { Tensor::zeros({3}, DType::i64).requires_grad_(); },
                    StartsWith("requires_grad_: only floating tensors can require gradients, got i64"));
}

TEST_CASE("bad input: backward twice through a freed graph", "[bad-input][tensor]") {
  const Tensor x = Tensor::ones({3}).requires_grad_();
  const Tensor y = (x * x).sum();
  y.backward();
  require_bad_input("tensor", "y.backward() a second time without retain_graph", [&] { y.backward(); },
                    StartsWith("backward: SumBackward was reached a second time after its graph was freed; pass retain_graph=true"));
}

// ---- layers --------------------------------------------------------------------------------------

TEST_CASE("bad input: Conv2d given the wrong number of channels", "[bad-input][layers]") {
  nn::Conv2d conv(3, 8, 3);
  require_bad_input("layer", "Conv2d(3, 8, 3) on [2, 4, 8, 8]", [&] { conv.forward(f32({2, 4, 8, 8})); },
                    StartsWith("conv2d: expected input with 3 channels"));
}

TEST_CASE("bad input: Conv2d given a 3-D input", "[bad-input][layers]") {
  nn::Conv2d conv(3, 8, 3);
  require_bad_input("layer", "Conv2d(3, 8, 3) on [3, 8, 8]", [&] { conv.forward(f32({3, 8, 8})); },
                    StartsWith("conv2d: expected a 4-D input [N, C, H, W], got input [3, 8, 8]"));
}

TEST_CASE("bad input: Conv2d groups that do not divide the channels", "[bad-input][layers]") {
  require_bad_input("layer", "Conv2d(6, 8, 3, {.groups = 4})",
                    [] { nn::Conv2d(6, 8, 3, nn::Conv2dOptions{.groups = 4}); },
                    StartsWith("Conv2d: in_channels 6 is not divisible by groups 4"));
}

TEST_CASE("bad input: Conv2d kernel larger than the input", "[bad-input][layers]") {
  nn::Conv2d conv(3, 8, 5);
  require_bad_input("layer", "Conv2d(3, 8, 5) on [1, 3, 4, 4]", [&] { conv.forward(f32({1, 3, 4, 4})); },
                    StartsWith("conv2d: kernel 5x5 is larger than the padded input"));
}

TEST_CASE("bad input: Conv2d given an f64 input", "[bad-input][layers]") {
  nn::Conv2d conv(3, 8, 3);
  require_bad_input("layer", "Conv2d(3, 8, 3) (f32) on f64 [1, 3, 8, 8]",
                    [&] { conv.forward(Tensor::zeros({1, 3, 8, 8}, DType::f64)); },
                    StartsWith("conv2d: expected input and weight of one floating dtype, got input f64 and weight f32"));
}

TEST_CASE("bad input: GroupNorm groups that do not divide the channels", "[bad-input][layers]") {
  require_bad_input("layer", "GroupNorm(32, 30)", [] { nn::GroupNorm(32, 30); },
                    StartsWith("GroupNorm: channels 30 is not divisible by groups 32"));
}

TEST_CASE("bad input: GroupNorm given the wrong number of channels", "[bad-input][layers]") {
  nn::GroupNorm gn(4, 8);
  require_bad_input("layer", "GroupNorm(4, 8) on [2, 6, 5, 5]", [&] { gn.forward(f32({2, 6, 5, 5})); },
                    StartsWith("GroupNorm: expected an input [N, 8") && Contains("[2, 6, 5, 5]"));
}

TEST_CASE("bad input: group_norm groups that do not divide the input's channels", "[bad-input][layers]") {
  require_bad_input("layer", "functional::group_norm([2, 6, 4, 4], groups 4)",
                    [] { nn::functional::group_norm(f32({2, 6, 4, 4}), 4); },
                    StartsWith("group_norm: channels 6 is not divisible by groups 4"));
}

TEST_CASE("bad input: BatchNorm2d given the wrong number of channels", "[bad-input][layers]") {
  nn::BatchNorm2d bn(8);
  require_bad_input("layer", "BatchNorm2d(8) on [2, 4, 5, 5]", [&] { bn.forward(f32({2, 4, 5, 5})); },
                    StartsWith("BatchNorm2d: expected 8") && Contains("[2, 4, 5, 5]"));
}

TEST_CASE("bad input: BatchNorm2d given a 2-D input", "[bad-input][layers]") {
  nn::BatchNorm2d bn(8);
  require_bad_input("layer", "BatchNorm2d(8) on [2, 8]", [&] { bn.forward(f32({2, 8})); },
                    StartsWith("BatchNorm2d: expected a 4-D input [N, C, H, W], got [2, 8]"));
}

TEST_CASE("bad input: BatchNorm1d training on one value per channel", "[bad-input][layers]") {
  nn::BatchNorm1d bn(5);
  require_bad_input("layer", "BatchNorm1d(5) in training mode on [1, 5]", [&] { bn.forward(f32({1, 5})); },
                    Contains("expected more than 1 value per channel when training"));
}

TEST_CASE("bad input: Linear given the wrong number of features", "[bad-input][layers]") {
  nn::Linear fc(8, 10);
  require_bad_input("layer", "Linear(8, 10) on [4, 7]", [&] { fc.forward(f32({4, 7})); },
                    StartsWith("Linear: expected an input [*, in_features=8]") && Contains("[4, 7]"));
}

TEST_CASE("bad input: Linear given an f64 input", "[bad-input][layers]") {
  nn::Linear fc(8, 10);
  require_bad_input("layer", "Linear(8, 10) (f32) on f64 [4, 8]",
                    [&] { fc.forward(Tensor::zeros({4, 8}, DType::f64)); },
                    StartsWith("linear: the input is f64"));
}

TEST_CASE("bad input: cross_entropy labels of the wrong shape", "[bad-input][layers]") {
  require_bad_input("layer", "cross_entropy(logits [4, 10], labels [3])",
                    [] { nn::functional::cross_entropy(f32({4, 10}), labels({0, 1, 2})); },
                    StartsWith("cross_entropy: logits of shape [4, 10]") && Contains("[3]"));
}

TEST_CASE("bad input: cross_entropy class out of range", "[bad-input][layers]") {
  require_bad_input("layer", "cross_entropy(logits [3, 10], labels {1, 10, 2})",
                    [] { nn::functional::cross_entropy(f32({3, 10}), labels({1, 10, 2})); },
                    StartsWith("cross_entropy: label 10 at index [1] is out of range for C = 10 classes"));
}

TEST_CASE("bad input: cross_entropy negative class", "[bad-input][layers]") {
  require_bad_input("layer", "cross_entropy(logits [3, 10], labels {1, -2, 2})",
                    [] { nn::functional::cross_entropy(f32({3, 10}), labels({1, -2, 2})); },
                    StartsWith("cross_entropy: label -2 at index [1] is out of range for C = 10 classes"));
}

TEST_CASE("bad input: cross_entropy labels as floats", "[bad-input][layers]") {
  require_bad_input("layer", "cross_entropy(logits [2, 10], f32 labels [2])",
                    [] { nn::functional::cross_entropy(f32({2, 10}), f32({2})); },
                    StartsWith("cross_entropy: expected labels as i64 class indices, got f32"));
}

TEST_CASE("bad input: cross_entropy label smoothing above 1", "[bad-input][layers]") {
  require_bad_input("layer", "cross_entropy(..., {.label_smoothing = 1.5})",
                    [] { nn::functional::cross_entropy(f32({2, 10}), labels({0, 1}), {.label_smoothing = 1.5}); },
                    StartsWith("cross_entropy: label_smoothing must be in [0, 1], got 1.5"));
}

TEST_CASE("bad input: mse_loss of different shapes", "[bad-input][layers]") {
  require_bad_input("layer", "mse_loss([4, 3], [4])", [] { nn::functional::mse_loss(f32({4, 3}), f32({4})); },
                    StartsWith("mse_loss: the input [4, 3]"));
}

TEST_CASE("bad input: MaxPool2d kernel larger than the input", "[bad-input][layers]") {
  nn::MaxPool2d pool(5);
  require_bad_input("layer", "MaxPool2d(5) on [1, 3, 4, 4]", [&] { pool.forward(f32({1, 3, 4, 4})); },
                    StartsWith("max_pool2d: the input of shape [1, 3, 4, 4] is smaller than kernel_size 5 even with padding 0"));
}

TEST_CASE("bad input: AvgPool2d padding above half the kernel", "[bad-input][layers]") {
  require_bad_input("layer", "AvgPool2d(2, {.padding = 2})", [] { nn::AvgPool2d(2, nn::Pool2dOptions{.padding = 2}); },
                    StartsWith("AvgPool2d: expected kernel_size > 0") && Contains("padding=2"));
}

TEST_CASE("bad input: LayerNorm given other trailing dims", "[bad-input][layers]") {
  nn::LayerNorm ln(std::vector<int64_t>{8, 5, 5});
  require_bad_input("layer", "LayerNorm({8, 5, 5}) on [2, 8, 4, 4]", [&] { ln.forward(f32({2, 8, 4, 4})); },
                    StartsWith("layer_norm: expected an input whose trailing dims are normalized_shape [8, 5, 5]"));
}

TEST_CASE("bad input: Dropout probability above 1", "[bad-input][layers]") {
  require_bad_input("layer", "Dropout(1.5)", [] { nn::Dropout(1.5); },
                    StartsWith("Dropout: p is the probability of dropping an element and must be in [0, 1], got 1.5"));
}

TEST_CASE("bad input: Conv2d with a zero kernel", "[bad-input][layers]") {
  require_bad_input("layer", "Conv2d(3, 8, 0)", [] { nn::Conv2d(3, 8, 0); },
                    StartsWith("Conv2d: expected positive in_channels, out_channels and kernel_size, got 3, 8, 0"));
}

TEST_CASE("bad input: GroupNorm with zero groups", "[bad-input][layers]") {
  require_bad_input("layer", "GroupNorm(0, 8)", [] { nn::GroupNorm(0, 8); },
                    StartsWith("GroupNorm: expected positive num_groups and num_channels, got 0 and 8"));
}

TEST_CASE("bad input: MaxPool2d with a zero kernel", "[bad-input][layers]") {
  require_bad_input("layer", "MaxPool2d(0)", [] { nn::MaxPool2d(0); },
                    StartsWith("MaxPool2d: expected kernel_size > 0") && Contains("got kernel_size=0"));
}

// ---- optimizers ----------------------------------------------------------------------------------

namespace {
std::vector<Tensor> params() { return {Tensor::zeros({3}).requires_grad_()}; }
}  // namespace

TEST_CASE("bad input: SGD over no parameters", "[bad-input][optim]") {
  require_bad_input("optimizer", "SGD({})", [] { optim::SGD(std::vector<Tensor>{}); },
                    Equals("SGD: got an empty parameter list (check failed: total > 0)"));
}

TEST_CASE("bad input: Adam over no parameters", "[bad-input][optim]") {
  require_bad_input("optimizer", "Adam({})", [] { optim::Adam(std::vector<Tensor>{}); },
                    StartsWith("Adam: got an empty parameter list"));
}

TEST_CASE("bad input: SGD with a negative lr", "[bad-input][optim]") {
  require_bad_input("optimizer", "SGD(params, {.lr = -0.1})", [] { optim::SGD(params(), {.lr = -0.1}); },
                    StartsWith("SGD: lr must be >= 0, got -0.1"));
}

TEST_CASE("bad input: AdamW with a negative lr", "[bad-input][optim]") {
  require_bad_input("optimizer", "AdamW(params, {.lr = -1e-3})", [] { optim::AdamW(params(), {.lr = -1e-3}); },
                    StartsWith("AdamW: lr must be >= 0, got -0.001"));
}

TEST_CASE("bad input: SGD with a NaN lr", "[bad-input][optim]") {
  require_bad_input("optimizer", "SGD(params, {.lr = NaN})", [] { optim::SGD(params(), {.lr = NAN}); },
                    StartsWith("SGD: lr must be >= 0, got nan"));
}

TEST_CASE("bad input: SGD with a negative weight decay", "[bad-input][optim]") {
  require_bad_input("optimizer", "SGD(params, {.lr = 0.1, .weight_decay = -1e-4})",
                    [] { optim::SGD(params(), {.lr = 0.1, .weight_decay = -1e-4}); },
                    StartsWith("SGD: weight_decay must be >= 0, got -0.0001"));
}

TEST_CASE("bad input: Adam with a negative weight decay", "[bad-input][optim]") {
  require_bad_input("optimizer", "Adam(params, {.weight_decay = -0.01})",
                    [] { optim::Adam(params(), {.weight_decay = -0.01}); },
                    StartsWith("Adam: weight_decay must be >= 0, got -0.01"));
}

TEST_CASE("bad input: Adam with beta1 = 1", "[bad-input][optim]") {
  require_bad_input("optimizer", "Adam(params, {.betas = {1.0, 0.999}})",
                    [] { optim::Adam(params(), {.betas = {1.0, 0.999}}); },
                    StartsWith("Adam: betas[0] must be in [0, 1), got 1"));
}

TEST_CASE("bad input: Adam with a negative beta2", "[bad-input][optim]") {
  require_bad_input("optimizer", "Adam(params, {.betas = {0.9, -0.1}})",
                    [] { optim::Adam(params(), {.betas = {0.9, -0.1}}); },
                    StartsWith("Adam: betas[1] must be in [0, 1), got -0.1"));
}

TEST_CASE("bad input: Adam with a negative eps", "[bad-input][optim]") {
  require_bad_input("optimizer", "Adam(params, {.eps = -1e-8})", [] { optim::Adam(params(), {.eps = -1e-8}); },
                    StartsWith("Adam: eps must be >= 0, got -1e-08"));
}

TEST_CASE("bad input: SGD with a negative momentum", "[bad-input][optim]") {
  require_bad_input("optimizer", "SGD(params, {.lr = 0.1, .momentum = -0.9})",
                    [] { optim::SGD(params(), {.lr = 0.1, .momentum = -0.9}); },
                    StartsWith("SGD: momentum must be >= 0, got -0.9"));
}

TEST_CASE("bad input: SGD with nesterov but no momentum", "[bad-input][optim]") {
  require_bad_input("optimizer", "SGD(params, {.lr = 0.1, .nesterov = true})",
                    [] { optim::SGD(params(), {.lr = 0.1, .nesterov = true}); },
                    StartsWith("SGD: nesterov needs momentum > 0 and dampening 0, got momentum 0 and dampening 0"));
}

TEST_CASE("bad input: an optimizer given a computed tensor", "[bad-input][optim]") {
  const Tensor w = Tensor::zeros({3}).requires_grad_();
  require_bad_input("optimizer", "SGD({w * 2}): a non-leaf", [&] { optim::SGD(std::vector<Tensor>{w * 2.0}, {.lr = 0.1}); },
                    StartsWith("SGD: parameter 0 of group 0 (shape [3]) is not a leaf"));
}

TEST_CASE("bad input: an optimizer given an integer tensor", "[bad-input][optim]") {
  require_bad_input("optimizer", "Adam({i64 [3]})", [] { optim::Adam(std::vector<Tensor>{Tensor::zeros({3}, DType::i64)}); },
                    StartsWith("Adam: parameter 0 of group 0 has dtype i64; only f32 and f64 tensors can be optimized"));
}

TEST_CASE("bad input: an optimizer given the same parameter twice", "[bad-input][optim]") {
  const Tensor w = Tensor::zeros({3}).requires_grad_();
  require_bad_input("optimizer", "SGD({w, w})", [&] { optim::SGD(std::vector<Tensor>{w, w}, {.lr = 0.1}); },
                    StartsWith("SGD: parameter 1 of group 0 (shape [3]) appears twice"));
}

TEST_CASE("bad input: StepLR with step_size 0", "[bad-input][optim]") {
  optim::SGD sgd(params(), {.lr = 0.1});
  require_bad_input("optimizer", "StepLR(sgd, 0)", [&] { optim::StepLR(sgd, 0); },
                    StartsWith("StepLR: step_size must be >= 1, got 0"));
}

TEST_CASE("bad input: clip_grad_norm_ with a negative max_norm", "[bad-input][optim]") {
  const std::vector<Tensor> p = params();
  (p[0] * 2.0).sum().backward();
  require_bad_input("optimizer", "clip_grad_norm_(params with gradients, -1)",
                    [&] { optim::clip_grad_norm_(p, -1.0); },
                    StartsWith("clip_grad_norm_: max_norm must be >= 0, got -1"));
  REQUIRE(p[0].grad().to_vector<float>() == std::vector<float>{2, 2, 2});
}

// PyTorch optimizes a tensor that does not require grad without complaint: its grad stays
// undefined and step() skips it. kiln does the same; this is not an error.
TEST_CASE("a parameter that does not require grad is accepted and skipped, as in PyTorch", "[bad-input][optim]") {
  const Tensor frozen = Tensor::ones({3});
  const Tensor w = Tensor::ones({3}).requires_grad_();
  optim::SGD sgd(std::vector<Tensor>{frozen, w}, {.lr = 0.5});
  (w * 2.0).sum().backward();
  sgd.step();
  REQUIRE(frozen.to_vector<float>() == std::vector<float>{1, 1, 1});
  REQUIRE(w.to_vector<float>() == std::vector<float>{0, 0, 0});
}

// ---- checkpoints into the wrong architecture ---------------------------------------------------

TEST_CASE("bad input: a state dict missing a key", "[bad-input][checkpoint]") {
  testing::TinyMLP net(6, 8, 3);
  NamedTensors state = net.state_dict();
  state.pop_back();
  require_bad_input("checkpoint", "TinyMLP's state dict without fc2.bias", [&] { net.load_state_dict(state); },
                    StartsWith("load_state_dict: missing key 'fc2.bias'"));
}

TEST_CASE("bad input: a state dict with an unexpected key", "[bad-input][checkpoint]") {
  testing::TinyMLP net(6, 8, 3);
  NamedTensors state = net.state_dict();
  state.emplace_back("fc3.weight", Tensor::zeros({3, 3}));
  require_bad_input("checkpoint", "TinyMLP's state dict plus fc3.weight", [&] { net.load_state_dict(state); },
                    StartsWith("load_state_dict: unexpected key 'fc3.weight'"));
}

TEST_CASE("bad input: a state dict with a tensor of another shape", "[bad-input][checkpoint]") {
  testing::TinyMLP net(6, 8, 3);
  require_bad_input("checkpoint", "TinyMLP(6, 16, 3)'s state dict into TinyMLP(6, 8, 3)",
                    [&] { net.load_state_dict(testing::TinyMLP(6, 16, 3).state_dict()); },
                    StartsWith("load_state_dict: 'fc1.weight' has shape [16, 6]") && Contains("[8, 6]"));
}

TEST_CASE("bad input: a safetensors file of another model", "[bad-input][checkpoint]") {
  TempDir dir;
  testing::TinyMLP net(6, 8, 3);
  save_safetensors(dir.file("other.safetensors"), nn::Linear(4, 2).state_dict());
  require_bad_input("checkpoint", "Linear(4, 2)'s weights into TinyMLP",
                    [&] { net.load_state_dict(load_safetensors(dir.file("other.safetensors"))); },
                    StartsWith("load_state_dict: missing key 'fc1.weight'"));
}

TEST_CASE("bad input: an SGD state dict loaded into Adam", "[bad-input][checkpoint]") {
  const std::vector<Tensor> p = params();
  optim::SGD sgd(p, {.lr = 0.1, .momentum = 0.9});
  optim::Adam adam(p);
  require_bad_input("checkpoint", "SGD's state_dict() into Adam::load_state_dict",
                    [&] { adam.load_state_dict(sgd.state_dict()); },
                    Contains("type: the state was saved by SGD, but this is Adam"));
}

TEST_CASE("bad input: an optimizer state dict of more parameters", "[bad-input][checkpoint]") {
  optim::Adam two(std::vector<Tensor>{Tensor::zeros({3}).requires_grad_(), Tensor::zeros({2}).requires_grad_()});
  optim::Adam one(params());
  require_bad_input("checkpoint", "Adam over 2 parameters into Adam over 1",
                    [&] { one.load_state_dict(two.state_dict()); },
                    Contains("params: the state's group 0 has 2"));
}

TEST_CASE("bad input: a training checkpoint that does not exist", "[bad-input][checkpoint]") {
  TempDir dir;
  testing::TinyMLP net(6, 8, 3);
  optim::TrainingState state;
  state.model = &net;
  require_bad_input("checkpoint", "load_checkpoint of a missing file",
                    [&] { optim::load_checkpoint(dir.file("missing.safetensors"), state); },
                    Contains("missing.safetensors: cannot open for reading: No such file or directory"));
}

TEST_CASE("bad input: a training checkpoint that is not safetensors", "[bad-input][checkpoint]") {
  TempDir dir;
  test::write_text(dir.file("ckpt.safetensors"), "epoch=3\n");
  testing::TinyMLP net(6, 8, 3);
  optim::TrainingState state;
  state.model = &net;
  require_bad_input("checkpoint", "load_checkpoint of an 8-byte text file",
                    [&] { optim::load_checkpoint(dir.file("ckpt.safetensors"), state); },
                    Contains("ckpt.safetensors: header length: 734998682745663589 bytes exceeds the limit of 100000000 (not a safetensors file?)"));
}
