// kiln::dist: the communication primitives of data-parallel training, over MPI.
//
// Built only when kiln is configured with KILN_WITH_MPI (on by default when CMake finds MPI); the
// macro KILN_WITH_MPI is then defined for kiln and for every target that links kiln::kiln.
//
//   mpirun -np 2 ./train                        // one process per worker ("rank")
//
//   dist::init(&argc, &argv);                   // once, before any other dist call
//   dist::GradientAverager averager(*net);      // layers/data_parallel.h: rank 0's weights to all
//   ...
//   loss.backward();
//   averager.average();                         // gradients averaged over the ranks
//   opt.step();
//   ...
//   dist::finalize();
//
// Every collective (barrier, broadcast, all_reduce, all_gather) must be called by every rank, in
// the same order, with the same sizes; a rank that skips one leaves the others waiting.
//
// Determinism: all_reduce does not use MPI's reduction, whose order depends on the algorithm the
// MPI library picks for the message size and the number of ranks. It splits the buffer into one
// chunk per rank, sends chunk r of every rank to rank r (MPI_Alltoallv), where the P values of each
// element are combined in rank order 0, 1, ..., P-1 (float in double), then gathers the reduced
// chunks back to everyone (MPI_Allgatherv). Every rank gets the same bits, and the same bits on
// every run. This is the bandwidth-optimal reduce-scatter + all-gather pattern: each rank sends and
// receives 2 (P-1)/P of the buffer.
//
// MPI is only ever called from the thread that called init (MPI_THREAD_FUNNELED): kiln's own
// parallel loops never communicate. MPI errors are returned, not fatal, and throw kiln::Error.
#pragma once

#ifndef KILN_WITH_MPI
#error "<kiln/core/distributed.h> needs kiln built with MPI (cmake -DKILN_WITH_MPI=ON, libopenmpi-dev)"
#endif

#include <cstdint>

#include <kiln/core/tensor.h>

namespace kiln::dist {

/// How all_reduce combines the ranks' values (torch.distributed.ReduceOp).
enum class ReduceOp { sum, avg, max, min };

/// Initializes MPI (MPI_Init_thread, MPI_THREAD_FUNNELED) unless it already is, and makes kiln's
/// own communicator, a duplicate of MPI_COMM_WORLD. argc / argv may be null. Calling it again is
/// a no-op.
void init(int* argc = nullptr, char*** argv = nullptr);
/// Releases kiln's communicator, and finalizes MPI if init() initialized it. A no-op when not
/// initialized.
void finalize();
/// Whether init() has been called (and finalize() not yet).
bool is_initialized();
/// Whether this process was started by an MPI launcher (mpirun, mpiexec, srun): its environment
/// names a rank. Lets a program call init() only when it runs as one of several processes.
bool launched_by_mpi();

/// This process's rank in [0, world_size()).
int rank();
/// The number of processes.
int world_size();
/// The number of processes on this machine (MPI_COMM_TYPE_SHARED), to size the thread pools.
int local_world_size();

/// Waits until every rank has called it.
void barrier();

/// Copies root's tensor into every rank's `t`, in place (same shape and dtype everywhere;
/// contiguous).
void broadcast(Tensor& t, int root = 0);
/// broadcast of a flat buffer of `count` values, the same count on every rank.
void broadcast(float* data, int64_t count, int root = 0);
/// broadcast of a flat buffer of `count` values, the same count on every rank.
void broadcast(double* data, int64_t count, int root = 0);
/// broadcast of a flat buffer of `count` values, the same count on every rank.
void broadcast(int64_t* data, int64_t count, int root = 0);

/// Replaces `t` on every rank with the element-wise combination of all ranks' `t`, in rank order
/// (see the top of this file). t: contiguous f32, f64 or i64, the same shape on every rank. avg
/// divides the sum by world_size() (for i64, rounding toward zero).
void all_reduce(Tensor& t, ReduceOp op = ReduceOp::sum);
/// all_reduce of a flat buffer of `count` values, the same count on every rank.
void all_reduce(float* data, int64_t count, ReduceOp op = ReduceOp::sum);
/// all_reduce of a flat buffer of `count` values, the same count on every rank.
void all_reduce(double* data, int64_t count, ReduceOp op = ReduceOp::sum);
/// all_reduce of a flat buffer of `count` values, the same count on every rank.
void all_reduce(int64_t* data, int64_t count, ReduceOp op = ReduceOp::sum);

/// recv[r * count + i] = rank r's send[i]: recv holds world_size() * count values, in rank order.
void all_gather(const double* send, int64_t count, double* recv);

/// How many collective calls this process has made since init() (each all_reduce counts one, as
/// does each broadcast, all_gather and barrier). For tests and profiling: a bucketed gradient
/// average makes one per bucket.
int64_t collective_count();

}  // namespace kiln::dist
