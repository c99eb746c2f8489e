#include <kiln/core/distributed.h>

#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <vector>

#include <kiln/core/parallel.h>

namespace kiln::dist {

namespace {

struct State {
  bool initialized = false;
  bool owns_mpi = false;  // init() called MPI_Init_thread, so finalize() calls MPI_Finalize
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0, size = 1, local_size = 1;
  int64_t collectives = 0;
  std::vector<char> scratch;  // the reduce-scatter's receive buffer, reused
};

State& state() {
  static State s;
  return s;
}

// Elements per reduce-scatter round: MPI counts are int, and a round needs world_size x its chunk
// of scratch. Larger buffers go in several rounds, cut by the count alone.
constexpr int64_t kMaxRound = int64_t{1} << 26;

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  KILN_FAIL("dist::", what, ": MPI failed: ", std::string(text, static_cast<size_t>(length)));
}

State& ready(const char* what) {
  State& s = state();
  KILN_CHECK(s.initialized, "dist::", what, ": kiln's MPI communicator is not initialized; call "
             "dist::init() first (and run under mpirun for several processes)");
  return s;
}

template <class T> MPI_Datatype mpi_type();
template <> MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <> MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }
template <> MPI_Datatype mpi_type<int64_t>() { return MPI_INT64_T; }

// Floats are combined in double, so the sum of P floats is rounded once.
template <class T> struct Wide { using type = T; };
template <> struct Wide<float> { using type = double; };

template <class T>
void broadcast_impl(T* data, int64_t count, int root, const char* what) {
  State& s = ready(what);
  KILN_CHECK(count >= 0, "dist::", what, ": expected count >= 0, got ", count);
  KILN_CHECK(root >= 0 && root < s.size, "dist::", what, ": expected root in [0, ", s.size,
             "), got ", root);
  ++s.collectives;
  if (s.size == 1) return;
  for (int64_t start = 0; start < count; start += kMaxRound) {
    const int n = static_cast<int>(std::min(kMaxRound, count - start));
    check_mpi(MPI_Bcast(data + start, n, mpi_type<T>(), root, s.comm), what);
  }
}

// One reduce-scatter + all-gather round over data[0, n): chunk r = [n r / P, n (r + 1) / P).
template <class T>
void all_reduce_round(State& s, T* data, int64_t n, ReduceOp op) {
  using Acc = typename Wide<T>::type;
  const int P = s.size;
  std::vector<int> counts(static_cast<size_t>(P)), displs(static_cast<size_t>(P));
  for (int r = 0; r < P; ++r) {
    const int64_t lo = n * r / P, hi = n * (r + 1) / P;
    displs[static_cast<size_t>(r)] = static_cast<int>(lo);
    counts[static_cast<size_t>(r)] = static_cast<int>(hi - lo);
  }
  const int mine = counts[static_cast<size_t>(s.rank)];
  // Every rank sends me its copy of my chunk: gathered[i * mine + k] = rank i's data[my lo + k].
  std::vector<int> recv_counts(static_cast<size_t>(P), mine), recv_displs(static_cast<size_t>(P));
  for (int r = 0; r < P; ++r) recv_displs[static_cast<size_t>(r)] = r * mine;
  s.scratch.resize(static_cast<size_t>(P) * static_cast<size_t>(mine) * sizeof(T));
  T* gathered = reinterpret_cast<T*>(s.scratch.data());
  check_mpi(MPI_Alltoallv(data, counts.data(), displs.data(), mpi_type<T>(), gathered,
                          recv_counts.data(), recv_displs.data(), mpi_type<T>(), s.comm),
            "all_reduce");

  // out[k] = op(rank 0's, rank 1's, ..., rank P-1's), left to right; each element independent.
  T* out = data + displs[static_cast<size_t>(s.rank)];
  parallel_for(0, mine, 16384, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      Acc acc = static_cast<Acc>(gathered[k]);
      for (int i = 1; i < P; ++i) {
        const Acc v = static_cast<Acc>(gathered[static_cast<int64_t>(i) * mine + k]);
        if (op == ReduceOp::max) acc = std::max(acc, v);
        else if (op == ReduceOp::min) acc = std::min(acc, v);
        else acc += v;
      }
      if (op == ReduceOp::avg) acc /= static_cast<Acc>(P);
      out[k] = static_cast<T>(acc);
    }
  });
  check_mpi(MPI_Allgatherv(MPI_IN_PLACE, 0, mpi_type<T>(), data, counts.data(), displs.data(),
                           mpi_type<T>(), s.comm),
            "all_reduce");
}

template <class T>
void all_reduce_impl(T* data, int64_t count, ReduceOp op) {
  State& s = ready("all_reduce");
  KILN_CHECK(count >= 0, "dist::all_reduce: expected count >= 0, got ", count);
  ++s.collectives;
  if (s.size == 1) return;  // the sum, average, max and min of one value are the value
  for (int64_t start = 0; start < count; start += kMaxRound)
    all_reduce_round(s, data + start, std::min(kMaxRound, count - start), op);
}

void check_tensor(const Tensor& t, const char* what) {
  KILN_CHECK(t.defined(), "dist::", what, ": the tensor is undefined");
  KILN_CHECK(t.is_contiguous(), "dist::", what, ": expected a contiguous tensor, got shape ",
             t.shape(), " with strides ", t.strides(), " (call .contiguous() first)");
}

}  // namespace

void init(int* argc, char*** argv) {
  State& s = state();
  if (s.initialized) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  KILN_CHECK(!finalized, "dist::init: MPI was already finalized in this process; it cannot start "
             "again");
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = MPI_THREAD_SINGLE;
    check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "init");
    s.owns_mpi = true;
    KILN_CHECK(provided >= MPI_THREAD_FUNNELED, "dist::init: expected MPI thread support "
               "MPI_THREAD_FUNNELED or more, got level ", provided);
  }
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &s.comm), "init");
  // Errors on kiln's communicator come back as codes and become kiln::Error.
  check_mpi(MPI_Comm_set_errhandler(s.comm, MPI_ERRORS_RETURN), "init");
  check_mpi(MPI_Comm_rank(s.comm, &s.rank), "init");
  check_mpi(MPI_Comm_size(s.comm, &s.size), "init");
  MPI_Comm local = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split_type(s.comm, MPI_COMM_TYPE_SHARED, s.rank, MPI_INFO_NULL, &local), "init");
  check_mpi(MPI_Comm_size(local, &s.local_size), "init");
  MPI_Comm_free(&local);
  s.collectives = 0;
  s.initialized = true;
}

void finalize() {
  State& s = state();
  if (!s.initialized) return;
  MPI_Comm_free(&s.comm);
  s.comm = MPI_COMM_NULL;
  s.initialized = false;
  s.scratch = {};
  if (s.owns_mpi) {
    s.owns_mpi = false;
    check_mpi(MPI_Finalize(), "finalize");
  }
}

bool is_initialized() { return state().initialized; }

bool launched_by_mpi() {
  // Open MPI's mpirun, PMIx launchers, MPICH's hydra (PMI), MVAPICH.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                           "MV2_COMM_WORLD_SIZE"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

int rank() { return ready("rank").rank; }
int world_size() { return ready("world_size").size; }
int local_world_size() { return ready("local_world_size").local_size; }

void barrier() {
  State& s = ready("barrier");
  ++s.collectives;
  check_mpi(MPI_Barrier(s.comm), "barrier");
}

void broadcast(Tensor& t, int root) {
  check_tensor(t, "broadcast");
  switch (t.dtype()) {
    case DType::f32: broadcast_impl(t.data_ptr<float>(), t.numel(), root, "broadcast"); break;
    case DType::f64: broadcast_impl(t.data_ptr<double>(), t.numel(), root, "broadcast"); break;
    case DType::i64: broadcast_impl(t.data_ptr<int64_t>(), t.numel(), root, "broadcast"); break;
  }
  t.unsafe_impl()->storage->bump_version();
}
void broadcast(float* data, int64_t count, int root) { broadcast_impl(data, count, root, "broadcast"); }
void broadcast(double* data, int64_t count, int root) { broadcast_impl(data, count, root, "broadcast"); }
void broadcast(int64_t* data, int64_t count, int root) { broadcast_impl(data, count, root, "broadcast"); }

void all_reduce(Tensor& t, ReduceOp op) {
  check_tensor(t, "all_reduce");
  switch (t.dtype()) {
    case DType::f32: all_reduce_impl(t.data_ptr<float>(), t.numel(), op); break;
    case DType::f64: all_reduce_impl(t.data_ptr<double>(), t.numel(), op); break;
    case DType::i64: all_reduce_impl(t.data_ptr<int64_t>(), t.numel(), op); break;
  }
  t.unsafe_impl()->storage->bump_version();
}
void all_reduce(float* data, int64_t count, ReduceOp op) { all_reduce_impl(data, count, op); }
void all_reduce(double* data, int64_t count, ReduceOp op) { all_reduce_impl(data, count, op); }
void all_reduce(int64_t* data, int64_t count, ReduceOp op) { all_reduce_impl(data, count, op); }

void all_gather(const double* send, int64_t count, double* recv) {
  State& s = ready("all_gather");
  KILN_CHECK(count >= 0 && count <= std::numeric_limits<int>::max() / s.size,
             "dist::all_gather: expected a count in [0, ", std::numeric_limits<int>::max() / s.size,
             "], got ", count);
  ++s.collectives;
  if (s.size == 1) {
    std::copy(send, send + count, recv);
    return;
  }
  check_mpi(MPI_Allgather(send, static_cast<int>(count), MPI_DOUBLE, recv, static_cast<int>(count),
                          MPI_DOUBLE, s.comm),
            "all_gather");
}

int64_t collective_count() { return ready("collective_count").collectives; }

}  // namespace kiln::dist
