// The parallel helpers. oneTBB is the only thread pool; OpenBLAS runs single-threaded inside it.
//
// Work is cut into chunks whose boundaries depend on the problem size only, never on the thread
// count, and reductions combine per-chunk partials in chunk order. So every result is bit-identical
// at 1, 2 or 16 threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

namespace kiln {

/// Sizes the pool (n >= 1). The default comes from KILN_NUM_THREADS, else the core count.
void set_num_threads(int n);
/// The size of the pool.
int num_threads();

/// The family of kernels OpenBLAS chose for this CPU when it loaded, as OpenBLAS names it
/// ("SkylakeX", "Cooperlake", "Haswell", ...). A result is bit-identical at any thread count on one
/// machine, but two families can round the same matrix product differently, so on another CPU a
/// training run can differ in the last bits and drift from there. Setting OPENBLAS_CORETYPE to a
/// family the CPU supports, before the program starts, picks it instead.
std::string blas_kernels();

/// Asks the pool's idle threads to wake, without waiting for them: a thread asleep takes tens of
/// microseconds to start on a loop, so code that knows a parallel loop is coming after a serial
/// stretch can call this first.
void wake_pool();

/// Calls fn(chunk_begin, chunk_end) for the chunks [begin + k*grain, min(begin + (k+1)*grain, end)),
/// in parallel. Each chunk runs on one thread; the decomposition depends on (begin, end, grain) only.
template <class Fn>
void parallel_for(int64_t begin, int64_t end, int64_t grain, Fn&& fn) {
  if (end <= begin) return;
  if (grain < 1) grain = 1;
  const int64_t chunks = (end - begin + grain - 1) / grain;
  if (chunks == 1 || num_threads() == 1) {
    for (int64_t k = 0; k < chunks; ++k) {
      int64_t b = begin + k * grain;
      fn(b, b + grain < end ? b + grain : end);
    }
    return;
  }
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, chunks, 1),
      [&](const tbb::blocked_range<int64_t>& r) {
        for (int64_t k = r.begin(); k < r.end(); ++k) {
          int64_t b = begin + k * grain;
          fn(b, b + grain < end ? b + grain : end);
        }
      },
      tbb::simple_partitioner());
}

/// Deterministic reduction: partial = chunk_fn(chunk_begin, chunk_end) per fixed chunk, then
/// combined left to right in chunk order with combine(acc, partial), starting from identity.
template <class Acc, class ChunkFn, class Combine>
Acc parallel_reduce(int64_t begin, int64_t end, int64_t grain, Acc identity, ChunkFn&& chunk_fn,
                    Combine&& combine) {
  if (end <= begin) return identity;
  if (grain < 1) grain = 1;
  const int64_t chunks = (end - begin + grain - 1) / grain;
  std::vector<Acc> partials(static_cast<size_t>(chunks), identity);
  parallel_for(0, chunks, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      int64_t b = begin + k * grain;
      partials[static_cast<size_t>(k)] = chunk_fn(b, b + grain < end ? b + grain : end);
    }
  });
  Acc acc = identity;
  for (const Acc& p : partials) acc = combine(acc, p);
  return acc;
}

/// A grain that gives chunks of about `target` units of work when each index costs `cost_per_index`.
inline int64_t grain_for(int64_t cost_per_index, int64_t target = 32768) {
  if (cost_per_index < 1) cost_per_index = 1;
  int64_t g = target / cost_per_index;
  return g < 1 ? 1 : g;
}

}  // namespace kiln
