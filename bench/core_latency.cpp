// Measures how long a cache line takes to go from one core to another and back: two threads,
// pinned to CPUs 0 and 1, hand a counter back and forth. On the 2-vCPU VMs kiln is measured on,
// this round trip moves between about 50-140 ns and 230-600 ns as the host places the two vCPUs
// near or far apart, and kiln's small-batch steps (whose chunks read data that the other thread
// wrote) slow down with it; compare.sh prints it beside each pair of timings.
//   core_latency            prints "round_trip_ns\t<median of 9 batches>" ("-" on one CPU)
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

namespace {

alignas(64) std::atomic<long> ball{0};

// Pins the calling thread to `cpu` when the machine has it; a failure leaves it unpinned.
void pin(int cpu) {
  if (cpu >= static_cast<int>(std::thread::hardware_concurrency())) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

}  // namespace

int main() {
  if (std::thread::hardware_concurrency() < 2) {  // nothing to measure, and spinning would stall
    std::printf("round_trip_ns\t-\n");
    return 0;
  }
  constexpr long kTrips = 20000, kBatches = 9;
  // The partner answers every odd value with the next even one.
  std::thread partner([] {
    pin(1);
    for (long i = 0; i < kTrips * kBatches; ++i) {
      while (ball.load(std::memory_order_acquire) != 2 * i + 1) {
      }
      ball.store(2 * i + 2, std::memory_order_release);
    }
  });
  pin(0);
  std::vector<double> ns;
  for (long b = 0; b < kBatches; ++b) {
    const auto t0 = std::chrono::steady_clock::now();
    for (long i = b * kTrips; i < (b + 1) * kTrips; ++i) {
      ball.store(2 * i + 1, std::memory_order_release);
      while (ball.load(std::memory_order_acquire) != 2 * i + 2) {
      }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ns.push_back(seconds / kTrips * 1e9);
  }
  partner.join();
  std::sort(ns.begin(), ns.end());
  std::printf("round_trip_ns\t%.0f\n", ns[ns.size() / 2]);
  return 0;
}
