// kiln-dist-bench: where the time of a data-parallel training step goes, under mpirun.
//
//   mpirun -np 2 kiln-dist-bench --norm gn --batch 2 --steps 30
//
// Trains a VGG on random [batch, 1, 32, 32] images (Fashion-MNIST's shape after padding) with
// gradients averaged over the ranks, and prints the mean per step of forward + backward, the
// gradient averaging (dist::GradientAverager, which includes waiting for the slowest rank) and
// the optimizer step, then the time of one all-reduce of a buffer the size of the gradients:
// kiln's rank-ordered dist::all_reduce against the MPI library's own MPI_Allreduce.
#include <chrono>
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <kiln/kiln.h>
#include <mpi.h>

#include "models.h"

using namespace kiln;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  dist::init(&argc, &argv);
  std::string model = "vgg8", norm = "gn";
  int64_t batch = 2;
  int steps = 30, threads = 1;
  CLI::App app{"kiln-dist-bench: the parts of a data-parallel training step, under mpirun"};
  app.add_option("--model", model, "vgg8 or vgg16")->check(CLI::IsMember({"vgg8", "vgg16"}));
  app.add_option("--norm", norm, "gn, bn, syncbn, ...")->check(CLI::IsMember(apps::norm_names()));
  app.add_option("--batch", batch, "images per rank and step")->check(CLI::PositiveNumber);
  app.add_option("--steps", steps, "timed steps (after 3 untimed ones)")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "threads per rank")->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = dist::rank() == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
    dist::finalize();
    return code;
  }
  try {
    set_num_threads(threads);
    manual_seed(0);
    auto net = apps::make_vgg(apps::vgg_blocks(model), norm, 32, 1, 10);
    dist::GradientAverager averager(*net);
    optim::SGD opt(net->parameters(), optim::SGDOptions{.lr = 1e-3, .momentum = 0.9});
    Generator gen(static_cast<uint64_t>(dist::rank()));
    const Tensor x = Tensor::randn({batch, 1, 32, 32}, DType::f32, &gen);
    const Tensor labels = Tensor::full({batch}, 3, DType::i64);

    double forward_backward = 0, average = 0, update = 0;
    for (int s = -3; s < steps; ++s) {
      const auto t0 = Clock::now();
      opt.zero_grad();
      nn::functional::cross_entropy(net->forward(x), labels).backward();
      const double fb = ms_since(t0);
      const auto t1 = Clock::now();
      averager.average();
      const double avg = ms_since(t1);
      const auto t2 = Clock::now();
      opt.step();
      if (s >= 0) {
        forward_backward += fb;
        average += avg;
        update += ms_since(t2);
      }
    }

    // One all-reduce of as many floats as the gradients hold, both ways.
    int64_t numel = 0;
    for (const Tensor& p : net->parameters()) numel += p.numel();
    std::vector<float> buffer(static_cast<size_t>(numel), 1.0f), out(buffer.size());
    double kiln_ms = 0, mpi_ms = 0;
    for (int s = -3; s < steps; ++s) {
      dist::barrier();
      const auto t0 = Clock::now();
      dist::all_reduce(buffer.data(), numel, dist::ReduceOp::avg);
      const double k = ms_since(t0);
      dist::barrier();
      const auto t1 = Clock::now();
      MPI_Allreduce(buffer.data(), out.data(), static_cast<int>(numel), MPI_FLOAT, MPI_SUM,
                    MPI_COMM_WORLD);
      const double m = ms_since(t1);
      if (s >= 0) {
        kiln_ms += k;
        mpi_ms += m;
      }
    }
    if (dist::rank() == 0) {
      const double step = (forward_backward + average + update) / steps;
      std::printf("%s + %s, %d ranks x batch %lld, %d thread(s) each, %d steps:\n", model.c_str(),
                  norm.c_str(), dist::world_size(), static_cast<long long>(batch), num_threads(),
                  steps);
      std::printf("  per step: forward+backward %.2f ms, gradient averaging %.2f ms (%lld buckets), "
                  "optimizer %.2f ms: %.0f images/s\n",
                  forward_backward / steps, average / steps,
                  static_cast<long long>(averager.num_buckets()), update / steps,
                  1e3 * static_cast<double>(batch * dist::world_size()) / step);
      std::printf("  all-reduce of %lld floats (%.1f MB): dist::all_reduce %.2f ms, MPI_Allreduce "
                  "%.2f ms\n",
                  static_cast<long long>(numel), 4e-6 * static_cast<double>(numel),
                  kiln_ms / steps, mpi_ms / steps);
    }
  } catch (const std::exception& e) {
    std::cerr << "kiln-dist-bench (rank " << dist::rank() << "): " << e.what() << "\n";
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  dist::finalize();
  return 0;
}
