#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include "dataset_files.h"

using namespace kiln;
using namespace kiln::data;
using Catch::Matchers::Contains;
using kiln::test::Bytes;
using kiln::test::error_of;

namespace {

constexpr int kRecords = 3;
const CIFAR10Options kSmall{.records_per_file = kRecords};

// Writes the five training files (file f starts at label 2f) and the test file into `dir`.
void write_cifar(const std::string& dir) {
  for (int f = 1; f <= 5; ++f) {
    kiln::test::write_file(dir + "/data_batch_" + std::to_string(f) + ".bin",
                           kiln::test::cifar_records(kRecords, 2 * f));
  }
  kiln::test::write_file(dir + "/test_batch.bin", kiln::test::cifar_records(kRecords, 7));
}

}  // namespace

TEST_CASE("CIFAR10 reads a generated split in the official layout") {
  kiln::test::TempDir dir;
  write_cifar(dir.file("cifar-10-batches-bin"));

  CIFAR10 test(dir.path(), Split::Test, kSmall);
  REQUIRE(test.size() == kRecords);
  CHECK(test.image_shape() == Shape{3, 32, 32});
  CHECK(test.classes() == CIFAR10::default_classes());
  const Bytes records = kiln::test::cifar_records(kRecords, 7);
  for (int r = 0; r < kRecords; ++r) {
    Example e = test.get(r);
    CHECK(e.label == (7 + r) % 10);
    REQUIRE(e.image.shape() == Shape{3, 32, 32});
    std::vector<float> values = e.image.to_vector<float>();
    // The record's pixels are the R, G, B planes of 32 x 32: already [C, H, W].
    for (int k = 0; k < 3072; k += 101) {
      CHECK(values[k] == static_cast<float>(records[r * 3073 + 1 + k]) / 255.0f);
    }
  }

  CIFAR10 train(dir.path(), Split::Train, kSmall);
  REQUIRE(train.size() == 5 * kRecords);
  for (int f = 0; f < 5; ++f) {
    for (int r = 0; r < kRecords; ++r) {
      CHECK(train.label(f * kRecords + r) == (2 * (f + 1) + r) % 10);
    }
  }
  // The last image of data_batch_5.bin.
  const Bytes last = kiln::test::cifar_records(kRecords, 10);
  CHECK(train.pixels(5 * kRecords - 1)[3071] == last[(kRecords - 1) * 3073 + 3072]);
}

TEST_CASE("CIFAR10 reads from root itself and takes class names from batches.meta.txt") {
  kiln::test::TempDir dir;
  write_cifar(dir.path());
  kiln::test::write_text(
      dir.file("batches.meta.txt"),
      "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
  CHECK(CIFAR10(dir.path(), Split::Test, kSmall).classes() == CIFAR10::default_classes());

  kiln::test::write_text(dir.file("batches.meta.txt"),
                         "a\r\nb\r\nc\r\nd\r\ne\r\nf\r\ng\r\nh\r\ni\r\nj");
  CHECK(CIFAR10(dir.path(), Split::Test, kSmall).classes().back() == "j");

  kiln::test::write_text(dir.file("batches.meta.txt"), "a\nb\nc\n");
  CHECK_THAT(error_of([&] { CIFAR10(dir.path(), Split::Test, kSmall); }),
             Contains("batches.meta.txt: class names: expected 10 non-empty lines, got 3"));
}

TEST_CASE("CIFAR10 refuses a file whose size is not a whole number of records") {
  kiln::test::TempDir dir;
  write_cifar(dir.path());
  Bytes records = kiln::test::cifar_records(kRecords);
  records.push_back(0);
  kiln::test::write_file(dir.file("data_batch_3.bin"), records);
  CHECK_THAT(
      error_of([&] { CIFAR10(dir.path(), Split::Train, kSmall); }),
      Contains("data_batch_3.bin: file size 9220 is not a multiple of the 3073-byte record"));
}

TEST_CASE("CIFAR10 refuses a file with the wrong number of records") {
  kiln::test::TempDir dir;
  write_cifar(dir.path());
  CHECK_THAT(
      error_of([&] { CIFAR10(dir.path(), Split::Test); }),
      Contains("test_batch.bin: record count: expected 10000 records (30730000 bytes), got 3 "
               "(9219 bytes)"));
}

TEST_CASE("CIFAR10 refuses a file truncated at any byte") {
  kiln::test::TempDir dir;
  const Bytes records = kiln::test::cifar_records(2);
  for (size_t length = 0; length < records.size(); ++length) {
    kiln::test::write_file(dir.file("test_batch.bin"),
                           Bytes(records.begin(), records.begin() + length));
    INFO(length << " bytes");
    CHECK_THROWS_AS(CIFAR10(dir.path(), Split::Test, CIFAR10Options{.records_per_file = 2}),
                    kiln::Error);
  }
}

TEST_CASE("CIFAR10 refuses a label out of range, naming the record") {
  kiln::test::TempDir dir;
  write_cifar(dir.path());
  Bytes records = kiln::test::cifar_records(kRecords);
  records[2 * 3073] = 10;
  kiln::test::write_file(dir.file("test_batch.bin"), records);
  CHECK_THAT(error_of([&] { CIFAR10(dir.path(), Split::Test, kSmall); }),
             Contains("CIFAR10: " + dir.path() +
                      "/test_batch.bin: record 2 label: 10 is out of "
                      "range [0, 10)"));
}

TEST_CASE("CIFAR10 reports missing files and a bad option") {
  kiln::test::TempDir dir;
  CHECK_THAT(error_of([&] { CIFAR10(dir.path(), Split::Test); }),
             Contains("CIFAR10: found no test_batch.bin in " + dir.path()));
  // No data at all is a FileNotFoundError; a partial set is bad data, a plain kiln::Error.
  CHECK_THROWS_AS(CIFAR10(dir.path(), Split::Test), kiln::FileNotFoundError);
  kiln::test::write_file(dir.file("data_batch_1.bin"), kiln::test::cifar_records(kRecords));
  CHECK_THAT(error_of([&] { CIFAR10(dir.path(), Split::Train, kSmall); }),
             Contains("data_batch_2.bin: cannot open"));
  try {
    CIFAR10(dir.path(), Split::Train, kSmall);
  } catch (const kiln::FileNotFoundError&) {
    FAIL("a missing data_batch_2.bin beside data_batch_1.bin is bad data, not missing data");
  } catch (const kiln::Error&) {
  }
  CHECK_THAT(
      error_of([&] { CIFAR10(dir.path(), Split::Train, CIFAR10Options{.records_per_file = 0}); }),
      Contains("records_per_file must be in [1, 100000], got 0"));
}

TEST_CASE("CIFAR10 reads one batch and the class names from memory") {
  const Bytes records = kiln::test::cifar_records(2, 4);
  ImageBytes batch = read_cifar10_batch(records, "batch");
  CHECK(batch.labels == Bytes{4, 5});
  CHECK(batch.image_shape == Shape{3, 32, 32});
  REQUIRE(batch.pixels.size() == 2 * 3072);
  CHECK(batch.pixels[3072 + 17] == records[3073 + 1 + 17]);
  CHECK(batch.classes == CIFAR10::default_classes());

  const Bytes cut(records.begin(), records.end() - 5);
  CHECK_THAT(error_of([&] { read_cifar10_batch(cut, "cut"); }),
             Contains("CIFAR10: cut: file size 6141 is not a multiple of the 3073-byte record"));
  CHECK_THAT(error_of([&] { read_cifar10_batch(Bytes{}, "empty"); }),
             Contains("CIFAR10: empty: record count: expected 1 to 100000 records, got 0"));
  Bytes bad_label = records;
  bad_label[3073] = 10;
  CHECK_THAT(error_of([&] { read_cifar10_batch(bad_label, "bad"); }),
             Contains("CIFAR10: bad: record 1 label: 10 is out of range [0, 10)"));

  CHECK(parse_cifar10_classes(" a \r\nb\n\nc\nd\ne\nf\ng\nh\ni\nj", "meta") ==
        std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"});
  CHECK_THAT(error_of([] { parse_cifar10_classes("a\nb\n", "meta"); }),
             Contains("CIFAR10: meta: class names: expected 10 non-empty lines, got 2"));
}
