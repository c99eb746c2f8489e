// SyncBatchNorm on 2 ranks against BatchNorm on one process holding both ranks' images: the
// forward pass, the backward pass and the running statistics agree to rounding. Plain BatchNorm
// on 2 ranks normalizes each rank's half alone and differs; the test prints by how much.
//
// Every rank computes the one-process reference itself, on the whole batch, from the same seed.
#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include <cstdio>

#include "../test_helpers.h"

using namespace kiln;
using kiln::testing::relative_error;

namespace {

// Rows [first, first + count) of dim 0.
Tensor rows(const Tensor& t, int64_t first, int64_t count) {
  return t.slice(0, first, first + count).contiguous();
}

// The sum over the ranks of t (a copy).
Tensor summed(const Tensor& t) {
  Tensor out = t.contiguous().clone();
  dist::all_reduce(out);
  return out;
}

}  // namespace

TEST_CASE("sync_batch_norm on 2 ranks equals batch_norm of both batches, in float64",
          "[mpi][sync_batch_norm]") {
  const int r = dist::rank();
  // (rank 0's images, rank 1's images): equal halves, and unequal ones.
  for (auto [n0, n1] : std::vector<std::pair<int64_t, int64_t>>{{2, 2}, {3, 1}, {1, 4}}) {
    INFO("rank 0 has " << n0 << " images, rank 1 has " << n1);
    const int64_t C = 3, N = n0 + n1;
    Generator gen(7);
    // Far from zero, so the statistics' accuracy shows: 5 + 2 randn.
    const Tensor x_all = Tensor::randn({N, C, 4, 5}, DType::f64, &gen) * 2.0 + 5.0;
    const Tensor g_all = Tensor::randn({N, C, 4, 5}, DType::f64, &gen);
    const Tensor w0 = Tensor::rand({C}, DType::f64, &gen) + 0.5;
    const Tensor b0 = Tensor::randn({C}, DType::f64, &gen);

    // One process, the whole batch.
    Tensor x1 = x_all.clone().requires_grad_(), w1 = w0.clone().requires_grad_(),
           b1 = b0.clone().requires_grad_();
    Tensor rm1 = Tensor::zeros({C}, DType::f64), rv1 = Tensor::ones({C}, DType::f64);
    Tensor y1 = nn::functional::batch_norm(x1, rm1, rv1, w1, b1, true, 0.1);
    y1.backward(g_all);

    // This rank's share, synchronized.
    const int64_t first = r == 0 ? 0 : n0, count = r == 0 ? n0 : n1;
    Tensor x2 = rows(x_all, first, count).requires_grad_(), w2 = w0.clone().requires_grad_(),
           b2 = b0.clone().requires_grad_();
    Tensor rm2 = Tensor::zeros({C}, DType::f64), rv2 = Tensor::ones({C}, DType::f64);
    Tensor y2 = nn::functional::sync_batch_norm(x2, rm2, rv2, w2, b2, true, 0.1);
    y2.backward(rows(g_all, first, count));

    REQUIRE(relative_error(y2, rows(y1, first, count)) < 1e-13);
    REQUIRE(relative_error(x2.grad(), rows(x1.grad(), first, count)) < 1e-12);
    // dL/dweight and dL/dbias are each rank's own sums: over the ranks, the whole batch's.
    REQUIRE(relative_error(summed(w2.grad()), w1.grad()) < 1e-12);
    REQUIRE(relative_error(summed(b2.grad()), b1.grad()) < 1e-12);
    // Running statistics: the global ones, the same on both ranks.
    REQUIRE(relative_error(rm2, rm1) < 1e-13);
    REQUIRE(relative_error(rv2, rv1) < 1e-13);
  }
}

TEST_CASE("SyncBatchNorm2d on 2 ranks of batch 2 equals BatchNorm2d on batch 4, train and eval",
          "[mpi][sync_batch_norm]") {
  const int r = dist::rank();
  const int64_t B = 2, C = 8;
  nn::BatchNorm2d bn(C);
  nn::SyncBatchNorm sync_bn(C);
  REQUIRE(sync_bn.type_name() == "SyncBatchNorm");
  REQUIRE(sync_bn.state_dict().size() == bn.state_dict().size());
  Generator gen(3);
  for (int step = 0; step < 3; ++step) {
    INFO("step " << step);
    const Tensor x_all = Tensor::randn({2 * B, C, 6, 6}, DType::f32, &gen) * 3.0 + 1.0;
    const Tensor target = Tensor::randn({2 * B, C, 6, 6}, DType::f32, &gen);
    // Loss: the mean over the batch, as in training; the ranks' parameter gradients averaged.
    Tensor x1 = x_all.clone().requires_grad_();
    bn.zero_grad();
    Tensor y1 = bn.forward(x1);
    (y1 * target).mean().backward();
    Tensor x2 = rows(x_all, r * B, B).requires_grad_();
    sync_bn.zero_grad();
    Tensor y2 = sync_bn.forward(x2);
    (y2 * rows(target, r * B, B)).mean().backward();
    REQUIRE(relative_error(y2, rows(y1.detach(), r * B, B)) < 1e-5);
    // d(mean over 2B)/dx = 1/2 d(mean over B)/dx on this rank's images.
    REQUIRE(relative_error(x2.grad() * 0.5, rows(x1.grad(), r * B, B)) < 1e-5);
    Tensor w_grad = sync_bn.weight.grad().clone(), b_grad = sync_bn.bias.grad().clone();
    dist::all_reduce(w_grad, dist::ReduceOp::avg);
    dist::all_reduce(b_grad, dist::ReduceOp::avg);
    REQUIRE(relative_error(w_grad, bn.weight.grad()) < 1e-5);
    REQUIRE(relative_error(b_grad, bn.bias.grad()) < 1e-5);
  }
  REQUIRE(relative_error(sync_bn.running_mean, bn.running_mean) < 1e-6);
  REQUIRE(relative_error(sync_bn.running_var, bn.running_var) < 1e-6);
  REQUIRE(sync_bn.num_batches_tracked.item<int64_t>() == 3);
  // Eval: the running statistics, no communication, the same as BatchNorm with them.
  sync_bn.eval();
  bn.eval();
  const Tensor x_eval = Tensor::randn({B, C, 6, 6}, DType::f32, &gen);
  const int64_t before = dist::collective_count();
  Tensor y_eval = sync_bn.forward(x_eval);
  REQUIRE(dist::collective_count() == before);
  REQUIRE(relative_error(y_eval, bn.forward(x_eval)) < 1e-6);
}

TEST_CASE("SyncBatchNorm's fused ReLU on 2 ranks equals BatchNorm2d then relu on batch 4",
          "[mpi][sync_batch_norm][fused]") {
  const int r = dist::rank();
  const int64_t B = 2, C = 6;
  nn::BatchNorm2d bn(C);
  nn::SyncBatchNorm sync_bn(C);
  Generator gen(5);
  const Tensor x_all = Tensor::randn({2 * B, C, 5, 5}, DType::f32, &gen) * 2.0 + 0.5;
  const Tensor target = Tensor::randn({2 * B, C, 5, 5}, DType::f32, &gen);
  Tensor x1 = x_all.clone().requires_grad_();
  Tensor y1 = relu(bn.forward(x1));
  (y1 * target).mean().backward();
  Tensor x2 = rows(x_all, r * B, B).requires_grad_();
  Tensor y2 = sync_bn.forward_relu(x2);
  (y2 * rows(target, r * B, B)).mean().backward();
  REQUIRE(relative_error(y2, rows(y1.detach(), r * B, B)) < 1e-5);
  REQUIRE(relative_error(x2.grad() * 0.5, rows(x1.grad(), r * B, B)) < 1e-5);
  Tensor w_grad = sync_bn.weight.grad().clone();
  dist::all_reduce(w_grad, dist::ReduceOp::avg);
  REQUIRE(relative_error(w_grad, bn.weight.grad()) < 1e-5);
  REQUIRE(relative_error(sync_bn.running_var, bn.running_var) < 1e-6);
}

TEST_CASE("plain BatchNorm on 2 ranks of batch 2 differs from batch 4", "[mpi][sync_batch_norm]") {
  // Each rank normalizes its own 2 images: the paper's "batch size per worker".
  const int r = dist::rank();
  const int64_t B = 2, C = 8;
  Generator gen(5);
  const Tensor x_all = Tensor::randn({2 * B, C, 8, 8}, DType::f64, &gen);
  const Tensor g_all = Tensor::randn({2 * B, C, 8, 8}, DType::f64, &gen);
  Tensor x1 = x_all.clone().requires_grad_();
  Tensor y1 = nn::functional::batch_norm(x1, Tensor(), Tensor(), Tensor(), Tensor(), true);
  y1.backward(g_all);
  Tensor x2 = rows(x_all, r * B, B).requires_grad_();
  Tensor y2 = nn::functional::batch_norm(x2, Tensor(), Tensor(), Tensor(), Tensor(), true);
  y2.backward(rows(g_all, r * B, B));
  Tensor x3 = rows(x_all, r * B, B).requires_grad_();
  Tensor y3 = nn::functional::sync_batch_norm(x3, Tensor(), Tensor(), Tensor(), Tensor(), true);
  y3.backward(rows(g_all, r * B, B));
  double errors[4] = {relative_error(y2, rows(y1, r * B, B)),
                      relative_error(x2.grad(), rows(x1.grad(), r * B, B)),
                      relative_error(y3, rows(y1, r * B, B)),
                      relative_error(x3.grad(), rows(x1.grad(), r * B, B))};
  dist::all_reduce(errors, 4, dist::ReduceOp::max);
  if (dist::rank() == 0)
    std::printf("BatchNorm, 2 ranks x batch 2 against 1 process x batch 4, [4, 8, 8, 8] randn, "
                "max |difference| / max |reference|:\n"
                "  plain BatchNorm: forward %.3g, backward (dL/dx) %.3g\n"
                "  SyncBatchNorm:   forward %.3g, backward (dL/dx) %.3g\n",
                errors[0], errors[1], errors[2], errors[3]);
  REQUIRE(errors[0] > 0.01);
  REQUIRE(errors[1] > 0.01);
  REQUIRE(errors[2] < 1e-13);
  REQUIRE(errors[3] < 1e-12);
}

TEST_CASE("SyncBatchNorm: errors over all ranks", "[mpi][sync_batch_norm]") {
  // One value per channel on each rank is enough when synchronized: 2 over both ranks.
  Tensor x = Tensor::full({1, 3}, dist::rank() * 2.0 - 1.0);
  nn::SyncBatchNorm sync_bn(3);
  REQUIRE(sync_bn.forward(x).to_vector<float>()[0] == Approx(dist::rank() == 0 ? -1.0 : 1.0).epsilon(1e-4));
  REQUIRE_THAT(kiln::testing::error_text([&] { sync_bn.forward(Tensor::zeros({2})); }),
               Catch::Contains("SyncBatchNorm: expected an input [N, C, *] with at least 2 dims, got [2]"));
}
