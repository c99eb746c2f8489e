// Saves that fail part way: a file size limit (RLIMIT_FSIZE, as a full disk) stops the write of a
// safetensors file and of a training checkpoint. The save must throw a kiln::Error naming the path
// and the failure, and leave the previous file byte for byte and no temporary beside it.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <sys/resource.h>
#include <unistd.h>

#include "../child_process.h"
#include "../temp_dir.h"
#include "../test_helpers.h"
#include "tiny_mlp.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// Every entry of `dir` other than `keep`.
std::vector<std::string> other_files(const std::string& dir, const std::string& keep) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename() != keep) out.push_back(e.path().filename().string());
  return out;
}

// A training checkpoint of a TinyMLP after one Adam step from `seed`.
void save_trained_checkpoint(const std::string& path, uint64_t seed) {
  manual_seed(seed);
  auto model = std::make_shared<TinyMLP>(6, 32, 3);
  optim::Adam opt(model->parameters(), optim::AdamOptions{.lr = 0.01});
  opt.zero_grad();
  mse(model->forward(Tensor::randn({4, 6})), Tensor::randn({4, 3})).backward();
  opt.step();
  optim::TrainingState state;
  state.model = model.get();
  state.optimizer = &opt;
  state.step = 1;
  optim::save_checkpoint(path, state);
}

// The save `kind` ("safetensors" or "checkpoint") of new contents to `path`, run in a fresh
// process of this binary whose files may not grow past `limit` bytes. SIGXFSZ is ignored, so a
// write past the limit fails with EFBIG instead of killing the process. Returns what the child
// printed to stderr: "error: <the kiln::Error's message>" or "saved".
std::string save_with_size_limit(const std::string& kind, const std::string& path, rlim_t limit) {
  const ChildResult child = run_in_child([&] {
    if (std::FILE* null = std::fopen("/dev/null", "w")) ::dup2(::fileno(null), STDOUT_FILENO);
    const rlimit fsize{limit, limit};
    if (::setrlimit(RLIMIT_FSIZE, &fsize) != 0) ::_exit(126);
    std::signal(SIGXFSZ, SIG_IGN);  // kept across exec
    ::setenv("KILN_FULL_DISK_KIND", kind.c_str(), 1);
    ::setenv("KILN_FULL_DISK_PATH", path.c_str(), 1);
    ::setenv("KILN_NUM_THREADS", "1", 1);
    ::execl("/proc/self/exe", "kiln_tests", "save with a file size limit (child process)",
            static_cast<char*>(nullptr));
    ::_exit(127);
  });
  INFO(child.stderr_text);
  REQUIRE(child.exited_cleanly());
  return child.stderr_text;
}

}  // namespace

// Run by save_with_size_limit in a fresh process. Hidden: it does nothing unless
// KILN_FULL_DISK_PATH names a file.
TEST_CASE("save with a file size limit (child process)", "[.][full-disk-child]") {
  const char* kind = std::getenv("KILN_FULL_DISK_KIND");
  const char* path = std::getenv("KILN_FULL_DISK_PATH");
  if (!kind || !path) return;
  try {
    if (std::string(kind) == "checkpoint") {
      save_trained_checkpoint(path, 2);
    } else {
      Generator gen(2);
      save_safetensors(path, {{"weight", Tensor::randn({64, 1024}, DType::f32, &gen)}});
    }
    std::fprintf(stderr, "saved\n");
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  }
}

TEST_CASE("a safetensors save that runs out of space throws and keeps the previous file",
          "[safetensors][atomic][full-disk]") {
  TempDir dir("kiln-full");
  const std::string path = dir.file("model.safetensors");
  Generator gen(1);
  save_safetensors(path, {{"weight", Tensor::randn({64, 1024}, DType::f32, &gen)}});
  const std::string before = read_bytes(path);
  REQUIRE(before.size() > 256 * 1024);

  // Room for half the new file: the write of the temporary fails part way.
  const std::string text = save_with_size_limit("safetensors", path, before.size() / 2);
  std::printf("full disk (safetensors, %zu bytes, limit %zu): %s", before.size(), before.size() / 2,
              text.c_str());
  REQUIRE_THAT(text, Catch::StartsWith("error: " + path + ": write failed: ") &&
                         Catch::Contains("File too large") &&
                         Catch::Contains("the previous file, if any, is unchanged"));
  REQUIRE(read_bytes(path) == before);
  REQUIRE(other_files(dir.path(), "model.safetensors").empty());
}

TEST_CASE("a checkpoint save that runs out of space throws and keeps the previous checkpoint",
          "[optim][checkpoint][atomic][full-disk]") {
  TempDir dir("kiln-full");
  const std::string path = dir.file("checkpoint.safetensors");
  save_trained_checkpoint(path, 1);
  const std::string before = read_bytes(path);

  const std::string text = save_with_size_limit("checkpoint", path, before.size() / 2);
  std::printf("full disk (checkpoint, %zu bytes, limit %zu): %s", before.size(), before.size() / 2,
              text.c_str());
  REQUIRE_THAT(text, Catch::StartsWith("error: " + path + ": write failed: ") &&
                         Catch::Contains("File too large"));
  REQUIRE(read_bytes(path) == before);
  REQUIRE(other_files(dir.path(), "checkpoint.safetensors").empty());

  // With room, the same save goes through, and the file loads.
  REQUIRE(save_with_size_limit("checkpoint", path, RLIM_INFINITY) == "saved\n");
  REQUIRE(read_bytes(path) != before);
  REQUIRE(other_files(dir.path(), "checkpoint.safetensors").empty());
  REQUIRE(read_safetensors(path).metadata.at("step") == "1");
}
