#include <kiln/datasets/cifar10.h>

#include <filesystem>

#include <kiln/core/error.h>
#include <kiln/datasets/byte_stream.h>

namespace kiln::data {

namespace {

namespace fs = std::filesystem;

constexpr int64_t kNumClasses = 10;
constexpr int64_t kMaxRecordsPerFile = 100000;
constexpr int64_t kMaxMetaBytes = 4096;

std::vector<std::string> split_files(Split split) {
  if (split == Split::Test) return {"test_batch.bin"};
  return {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
          "data_batch_5.bin"};
}

bool path_exists(const fs::path& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

// root itself when it holds the split's first file, else root/cifar-10-batches-bin.
fs::path find_batches_dir(const std::string& root, Split split) {
  const std::string first = split_files(split).front();
  const fs::path nested = fs::path(root) / "cifar-10-batches-bin";
  if (path_exists(fs::path(root) / first)) return fs::path(root);
  if (path_exists(nested / first)) return nested;
  throw FileNotFoundError(detail::concat("CIFAR10: found no ", first, " in ", root, " or ",
                                         nested.string(), " (scripts/get-cifar10.sh ", root,
                                         " downloads the binary version)"));
}

// batches.meta.txt: the class names, one per line, in label order.
std::vector<std::string> read_class_names(const fs::path& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) KILN_FAIL("CIFAR10: ", path.string(), ": cannot read its size: ", ec.message());
  KILN_CHECK(size <= static_cast<uintmax_t>(kMaxMetaBytes), "CIFAR10: ", path.string(),
             ": file size ", size, " exceeds the cap of ", kMaxMetaBytes, " bytes for class names");
  std::string text(static_cast<size_t>(size), '\0');
  ByteStream stream(path.string(), "CIFAR10", ByteStream::Compression::None);
  stream.read_exact(text.data(), text.size(), "class names");
  stream.expect_end(size);
  return parse_cifar10_classes(text, path.string());
}

// The file size against the record size and, when `expected` > 0, against that record count;
// returns the record count.
int64_t check_batch_size(uintmax_t size, int64_t expected, const std::string& name) {
  KILN_CHECK(size % CIFAR10::kRecordBytes == 0, "CIFAR10: ", name, ": file size ", size,
             " is not a multiple of the ", CIFAR10::kRecordBytes,
             "-byte record (1 label + 3072 pixels): truncated or not CIFAR-10 binary");
  const uintmax_t records = size / CIFAR10::kRecordBytes;
  if (expected > 0) {
    KILN_CHECK(records == static_cast<uintmax_t>(expected), "CIFAR10: ", name,
               ": record count: expected ", expected, " records (",
               expected * CIFAR10::kRecordBytes, " bytes), got ", records, " (", size, " bytes)");
  } else {
    KILN_CHECK(records >= 1 && records <= static_cast<uintmax_t>(kMaxRecordsPerFile), "CIFAR10: ",
               name, ": record count: expected 1 to ", kMaxRecordsPerFile, " records, got ",
               records, " (", size, " bytes)");
  }
  return static_cast<int64_t>(records);
}

// Reads `records` records from `stream` into labels[0, records) and pixels[0, records * 3072),
// checking every label, then checks that the stream ends there.
void read_records(ByteStream& stream, int64_t records, uint8_t* labels, uint8_t* pixels) {
  for (int64_t r = 0; r < records; ++r) {
    uint8_t& label = labels[r];
    stream.read_exact(&label, 1, "record " + std::to_string(r) + " label");
    if (label >= kNumClasses) {
      stream.fail("record " + std::to_string(r) + " label: " + std::to_string(label) +
                  " is out of range [0, " + std::to_string(kNumClasses) + ")");
    }
    stream.read_exact(pixels + r * CIFAR10::kImageBytes, CIFAR10::kImageBytes,
                      "record " + std::to_string(r) + " pixels");
  }
  stream.expect_end(static_cast<uint64_t>(records * CIFAR10::kRecordBytes));
}

ImageBytes empty_contents(int64_t records) {
  ImageBytes contents;
  contents.name = "CIFAR10";
  contents.image_shape = {3, 32, 32};
  contents.pixels.resize(static_cast<size_t>(records * CIFAR10::kImageBytes));
  contents.labels.resize(static_cast<size_t>(records));
  return contents;
}

}  // namespace

const std::vector<std::string>& CIFAR10::default_classes() {
  static const std::vector<std::string> names = {
      "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  return names;
}

ImageBytes read_cifar10(const std::string& root, Split split, const CIFAR10Options& options) {
  const int64_t records = options.records_per_file;
  KILN_CHECK(records >= 1 && records <= kMaxRecordsPerFile,
             "CIFAR10: records_per_file must be in [1, ", kMaxRecordsPerFile, "], got ", records);
  const fs::path dir = find_batches_dir(root, split);
  const std::vector<std::string> names = split_files(split);

  // Every file's size is checked before anything is allocated.
  std::vector<fs::path> paths;
  for (const std::string& name : names) {
    const fs::path path = dir / name;
    std::error_code ec;
    const uintmax_t size = fs::file_size(path, ec);
    if (ec) KILN_FAIL("CIFAR10: ", path.string(), ": cannot open: ", ec.message());
    check_batch_size(size, records, path.string());
    paths.push_back(path);
  }

  ImageBytes contents = empty_contents(records * static_cast<int64_t>(paths.size()));
  for (size_t f = 0; f < paths.size(); ++f) {
    ByteStream stream(paths[f].string(), "CIFAR10", ByteStream::Compression::None);
    const int64_t first = records * static_cast<int64_t>(f);
    read_records(stream, records, contents.labels.data() + first,
                 contents.pixels.data() + first * CIFAR10::kImageBytes);
  }

  const fs::path meta = dir / "batches.meta.txt";
  contents.classes = path_exists(meta) ? read_class_names(meta) : CIFAR10::default_classes();
  return contents;
}

ImageBytes read_cifar10_batch(std::span<const uint8_t> bytes, const std::string& name) {
  const int64_t records = check_batch_size(bytes.size(), 0, name);
  ImageBytes contents = empty_contents(records);
  ByteStream stream(bytes, name, "CIFAR10", ByteStream::Compression::None);
  read_records(stream, records, contents.labels.data(), contents.pixels.data());
  contents.classes = CIFAR10::default_classes();
  return contents;
}

std::vector<std::string> parse_cifar10_classes(std::string_view text, const std::string& name) {
  KILN_CHECK(text.size() <= static_cast<size_t>(kMaxMetaBytes), "CIFAR10: ", name, ": size ",
             text.size(), " exceeds the cap of ", kMaxMetaBytes, " bytes for class names");
  std::vector<std::string> names;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(begin, end - begin);
    const size_t first = line.find_first_not_of(" \t\r");
    const size_t last = line.find_last_not_of(" \t\r");
    if (first != std::string_view::npos) names.emplace_back(line.substr(first, last - first + 1));
    begin = end + 1;
  }
  KILN_CHECK(static_cast<int64_t>(names.size()) == kNumClasses, "CIFAR10: ", name,
             ": class names: expected ", kNumClasses, " non-empty lines, got ", names.size());
  return names;
}

CIFAR10::CIFAR10(const std::string& root, Split split, const CIFAR10Options& options)
    : InMemoryImages(read_cifar10(root, split, options)) {}

}  // namespace kiln::data
