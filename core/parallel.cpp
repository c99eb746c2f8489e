#include <kiln/core/parallel.h>

#include <cstdlib>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <cblas.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <kiln/core/error.h>

namespace kiln {

namespace {

int default_thread_count() {
  if (const char* env = std::getenv("KILN_NUM_THREADS")) {
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n >= 1 && n <= 4096) return static_cast<int>(n);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

struct Pool {
  std::mutex mutex;
  std::atomic<int> threads{0};
  std::unique_ptr<tbb::global_control> control;

  Pool() {
    // OpenBLAS is only ever called from inside kiln's own tasks, one call per chunk.
    openblas_set_num_threads(1);
    apply(default_thread_count());
  }
  void apply(int n) {
    control.reset();
    control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                    static_cast<size_t>(n));
    threads = n;
  }
};

Pool& pool() {
  static Pool instance;
  return instance;
}

}  // namespace

void set_num_threads(int n) {
  KILN_CHECK(n >= 1, "set_num_threads: expected at least 1 thread, got ", n);
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  p.apply(n);
}

void wake_pool() {
  if (num_threads() > 1) tbb::this_task_arena::enqueue([] {});
}

int num_threads() { return pool().threads; }

std::string blas_kernels() {
  const char* name = openblas_get_corename();
  return name ? name : "";
}

}  // namespace kiln
