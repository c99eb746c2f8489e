// Measures the machine's fp32 FMA peak (build with -O2 -march=native -ffp-contract=fast): independent chains of fused multiply-adds on 16-float
// vectors, one thread per core, so the figure is the ceiling kiln's GFLOP/s is compared with.
//   fma_peak [threads]      prints "peak_gflops\t<value>"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

typedef float Lanes __attribute__((vector_size(64)));

namespace {

// 12 independent accumulators hide the FMA latency; each iteration is 12 FMAs of 16 lanes.
// Named variables (not an array) keep every accumulator in a register.
double run(long iterations, float seed) {
  Lanes a0 = Lanes{} + seed, a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4, a5 = a0 + 5;
  Lanes a6 = a0 + 6, a7 = a0 + 7, a8 = a0 + 8, a9 = a0 + 9, a10 = a0 + 10, a11 = a0 + 11;
  Lanes m = Lanes{} + 0.999999f, b = Lanes{} + 1e-7f;
  asm volatile("" : "+v"(m), "+v"(b));
  for (long it = 0; it < iterations; ++it) {
    a0 = a0 * m + b; a1 = a1 * m + b; a2 = a2 * m + b; a3 = a3 * m + b;
    a4 = a4 * m + b; a5 = a5 * m + b; a6 = a6 * m + b; a7 = a7 * m + b;
    a8 = a8 * m + b; a9 = a9 * m + b; a10 = a10 * m + b; a11 = a11 * m + b;
  }
  Lanes total = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
  float sum = 0;
  for (int j = 0; j < 16; ++j) sum += total[j];
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : static_cast<int>(std::thread::hardware_concurrency());
  const long iterations = 200'000'000 / 12;
  double best = 0;
  for (int trial = 0; trial < 3; ++trial) {
    std::vector<std::thread> pool;
    std::vector<double> sink(threads);
    auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { sink[t] = run(iterations, 1.0f + t); });
    for (auto& th : pool) th.join();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // 2 flops per FMA lane
    const double gflops = 2.0 * 16 * 12 * static_cast<double>(iterations) * threads / seconds / 1e9;
    if (gflops > best) best = gflops;
    if (sink[0] == 12345.0) std::printf("%g\n", sink[0]);
  }
  std::printf("peak_gflops\t%.1f\n", best);
  return 0;
}
