// kiln-bench: times the workloads of bench/WORKLOADS.md and prints one line per workload in the
// format of bench/torch_ref.py, so the two outputs join on the name:
//
//   kiln-bench [--threads N] [NAME-PREFIX...]
//   op:conv3x3:2x64x32x32	3.512 ms
//   step:vgg8:gn:32	123.45 ms	259.2 img/s
//
// Timing: two warm-up runs, then runs until at least 1 s (ops) or 2 s (steps) and at least 5 runs
// have passed; the median is printed. Run it beside torch_ref.py in one sitting and compare ratios.
//
// A workload is one entry in workloads(): its name, its kind, and a setup function that builds the
// model and inputs once and returns the run to time.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <kiln/kiln.h>

#include "models.h"

using namespace kiln;

namespace {

enum class Kind { op, step };

struct Workload {
  std::string name;  // the same name as in torch_ref.py
  Kind kind;
  int64_t images;    // images per run, for img/s
  std::function<std::function<void()>()> setup;  // builds the inputs, returns one timed run
};

std::string shape_name(const Shape& shape) {
  std::string out;
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? "x" : "") + std::to_string(shape[i]);
  return out;
}

// op:<name>:<shape>: forward + backward of a module on x [shape] that requires grad, seeded with a
// fixed random g of the output's shape (torch_ref.py's op_bench).
Workload op(const std::string& name, const Shape& shape,
            std::function<std::shared_ptr<nn::Module>()> make_module) {
  auto setup = [shape, make_module]() -> std::function<void()> {
    std::shared_ptr<nn::Module> module = make_module();
    Tensor x = Tensor::randn(shape).requires_grad_();
    Tensor g = Tensor::randn(module->forward(x).shape());
    return [module, x, g]() mutable {
      x.set_grad(Tensor());
      module->zero_grad();
      module->forward(x).backward(g);
    };
  };
  return {"op:" + name + ":" + shape_name(shape), Kind::op, shape[0], setup};
}

// step:<model>:<norm>:<B>: zero_grad, forward, cross-entropy on random labels, backward, then
// Adam(lr 2.5e-4), on x [B, 3, 32, 32] (torch_ref.py's step_bench).
Workload step(const std::string& model, const std::string& norm, int64_t B) {
  auto setup = [model, norm, B]() -> std::function<void()> {
    auto net = apps::make_vgg(apps::vgg_blocks(model), norm);
    net->train();
    auto opt = std::make_shared<optim::Adam>(net->parameters(), optim::AdamOptions{.lr = 2.5e-4});
    Tensor x = Tensor::randn({B, 3, 32, 32});
    Tensor labels = Tensor::empty({B}, DType::i64);
    for (int64_t i = 0; i < B; ++i) labels.data_ptr<int64_t>()[i] = static_cast<int64_t>(default_generator().next_below(10));
    return [net, opt, x, labels]() {
      opt->zero_grad(/*set_to_none=*/true);
      Tensor loss = nn::functional::cross_entropy(net->forward(x), labels);
      loss.backward();
      opt->step();
    };
  };
  return {"step:" + model + ":" + norm + ":" + std::to_string(B), Kind::step, B, setup};
}

// data:cifar10-augment: one epoch's worth of batches of 128 through the CIFAR-10 training
// pipeline (random crop with padding 4, horizontal flip, normalize) with prefetch, on 10,000
// random images in CIFAR-10's layout; images/s is the figure to compare with a training step's.
Workload data_pipeline() {
  constexpr int64_t kImages = 10000, kBatch = 128;
  auto setup = []() -> std::function<void()> {
    auto images = std::make_shared<data::InMemoryImages>(data::random_images(kImages, {3, 32, 32}, 10, 0));
    auto loader = std::make_shared<data::DataLoader>(
        *images, data::LoaderOptions{.batch_size = kBatch, .shuffle = true, .drop_last = true,
                                     .seed = 0, .transform = data::cifar10_train_transform()});
    return [images, loader]() {
      int64_t seen = 0;
      for (const data::Batch& b : *loader) seen += b.labels.numel();
      if (seen == 0) throw Error("data:cifar10-augment: the loader yielded nothing");
    };
  };
  return {"data:cifar10-augment", Kind::step, kImages / kBatch * kBatch, setup};
}

// Every workload, in torch_ref.py's order, then kiln's own.
std::vector<Workload> workloads() {
  std::vector<Workload> list;
  for (int64_t B : {2, 8, 32}) {
    list.push_back(op("conv3x3", {B, 64, 32, 32}, [] {
      return std::make_shared<nn::Conv2d>(64, 64, 3, nn::Conv2dOptions{.padding = 1});
    }));
    list.push_back(op("groupnorm32", {B, 64, 32, 32}, [] { return std::make_shared<nn::GroupNorm>(32, 64); }));
    list.push_back(op("batchnorm", {B, 64, 32, 32}, [] { return std::make_shared<nn::BatchNorm2d>(64); }));
    list.push_back(op("groupnorm32", {B, 256, 8, 8}, [] { return std::make_shared<nn::GroupNorm>(32, 256); }));
  }
  for (const char* model : {"vgg8", "vgg16"})
    for (const char* norm : {"gn", "bn", "none"})
      for (int64_t B : {2, 8, 32}) list.push_back(step(model, norm, B));
  list.push_back(data_pipeline());
  return list;
}

// Two warm-up runs, then runs until min_seconds and at least 5 runs; the median run time.
double median_seconds(const std::function<void()>& run, double min_seconds) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < 2; ++i) run();
  std::vector<double> times;
  const Clock::time_point start = Clock::now();
  while (std::chrono::duration<double>(Clock::now() - start).count() < min_seconds ||
         times.size() < 5) {
    const Clock::time_point t0 = Clock::now();
    run();
    times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  const size_t n = times.size();
  return n % 2 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;  // statistics.median
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Times kiln on the workloads of bench/WORKLOADS.md (torch_ref.py's format)."};
  int threads = 2;
  bool list_only = false;
  std::vector<std::string> prefixes;
  app.add_option("--threads", threads, "Threads in kiln's pool (default 2)")
      ->check(CLI::Range(1, 4096));
  app.add_flag("--list", list_only, "Print the workload names and exit");
  app.add_option("prefixes", prefixes,
                 "Run only the workloads whose names start with one of these");
  CLI11_PARSE(app, argc, argv);

  try {
    set_num_threads(threads);
    manual_seed(0);
    for (const Workload& w : workloads()) {
      auto starts = [&](const std::string& prefix) { return w.name.rfind(prefix, 0) == 0; };
      const bool wanted = prefixes.empty() || std::any_of(prefixes.begin(), prefixes.end(), starts);
      if (!wanted) continue;
      if (list_only) {
        std::printf("%s\n", w.name.c_str());
        continue;
      }
      const double seconds = median_seconds(w.setup(), w.kind == Kind::op ? 1.0 : 2.0);
      if (w.kind == Kind::op)
        std::printf("%s\t%.3f ms\n", w.name.c_str(), seconds * 1e3);
      else
        std::printf("%s\t%.2f ms\t%.1f img/s\n", w.name.c_str(), seconds * 1e3,
                    static_cast<double>(w.images) / seconds);
      std::fflush(stdout);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "kiln-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
