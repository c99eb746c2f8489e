// Endurance: thousands of training steps (data loader with prefetch, conv, GroupNorm, pooling,
// cross entropy, Adam, and a checkpoint now and then) must not grow the process. The resident set
// after warm-up is the baseline; it must stay within 5% of it to the end.
#include <chrono>
#include <cstdio>
#include <fstream>

#include <unistd.h>

#include "../temp_dir.h"
#include "../test_helpers.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// Resident set size in bytes, from /proc/self/statm (its second field, in pages).
size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  size_t total_pages = 0, resident_pages = 0;
  statm >> total_pages >> resident_pages;
  REQUIRE(statm);
  return resident_pages * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

TEST_CASE("thousands of training steps keep the resident set within 5% after warm-up",
          "[optim][endurance]") {
  constexpr int64_t kSteps = 8000, kWarmup = 1000, kSampleEvery = 50, kCheckpointEvery = 500;
  TempDir dir("kiln-endurance");
  manual_seed(0);
  const data::InMemoryImages images = data::random_images(1024, {3, 16, 16}, 10, 1);
  data::DataLoader loader(images, data::LoaderOptions{.batch_size = 8, .shuffle = true,
                                                      .drop_last = true, .seed = 2});
  auto net = std::make_shared<nn::Sequential>(
      std::make_shared<nn::Conv2d>(3, 8, 3, nn::Conv2dOptions{.padding = 1}),
      std::make_shared<nn::GroupNorm>(2, 8), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(2, nn::Pool2dOptions{.stride = 2}),
      std::make_shared<nn::Conv2d>(8, 8, 3, nn::Conv2dOptions{.padding = 1}),
      std::make_shared<nn::GroupNorm>(2, 8), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(2, nn::Pool2dOptions{.stride = 2}),
      std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(8 * 4 * 4, 10));
  net->train();
  optim::Adam opt(net->parameters(), optim::AdamOptions{.lr = 1e-3});

  const auto start = std::chrono::steady_clock::now();
  size_t baseline = 0, low = 0, high = 0;
  double first_loss = 0, last_loss = 0;  // mean loss of the first and of the last 100 steps
  int64_t step = 0;
  while (step < kSteps) {
    for (const data::Batch& b : loader) {
      opt.zero_grad();
      Tensor loss = nn::functional::cross_entropy(net->forward(b.images), b.labels);
      loss.backward();
      opt.step();
      ++step;
      const double value = loss.item<double>();
      if (step <= 100) first_loss += value / 100;
      if (step > kSteps - 100) last_loss += value / 100;
      if (step % kCheckpointEvery == 0) {
        optim::TrainingState state;
        state.model = net.get();
        state.optimizer = &opt;
        state.step = step;
        optim::save_checkpoint(dir.file("checkpoint.safetensors"), state);
      }
      if (step == kWarmup) baseline = low = high = resident_bytes();
      if (step > kWarmup && step % kSampleEvery == 0) {
        const size_t rss = resident_bytes();
        low = std::min(low, rss);
        high = std::max(high, rss);
      }
      if (step == kSteps) break;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double growth = static_cast<double>(high) / static_cast<double>(baseline) - 1;
  std::printf("endurance: %lld steps in %.1f s, loss %.3f -> %.3f; resident set after %lld steps "
              "%.2f MiB, then between %.2f and %.2f MiB (largest growth %+.2f%%)\n",
              static_cast<long long>(kSteps), seconds, first_loss, last_loss,
              static_cast<long long>(kWarmup), baseline / 1048576.0, low / 1048576.0,
              high / 1048576.0, 100 * growth);
  REQUIRE(step == kSteps);
  REQUIRE(last_loss < first_loss);  // it trained
  REQUIRE(static_cast<double>(high) <= 1.05 * static_cast<double>(baseline));
}
