// kiln::dist's primitives on 2 ranks (kiln_mpi_tests, under mpirun): ranks, broadcast,
// all_reduce (sum, avg, max, min; odd sizes; the same bits on every rank), all_gather, errors.
#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include "../test_helpers.h"

using namespace kiln;
using kiln::testing::error_text;

namespace {

// Whether every rank holds the same bits in `values`.
bool same_on_every_rank(const std::vector<double>& values) {
  std::vector<double> low = values, high = values;
  dist::all_reduce(low.data(), static_cast<int64_t>(low.size()), dist::ReduceOp::min);
  dist::all_reduce(high.data(), static_cast<int64_t>(high.size()), dist::ReduceOp::max);
  return low == values && high == values;
}

}  // namespace

TEST_CASE("dist: two ranks on this machine", "[mpi][distributed]") {
  REQUIRE(dist::is_initialized());
  REQUIRE(dist::launched_by_mpi());
  REQUIRE(dist::world_size() == 2);
  REQUIRE((dist::rank() == 0 || dist::rank() == 1));
  REQUIRE(dist::local_world_size() == 2);
  dist::barrier();
}

TEST_CASE("dist: all_reduce sums, averages, and takes max and min in every dtype",
          "[mpi][distributed]") {
  const int r = dist::rank();
  // Odd sizes, including fewer elements than ranks and none at all.
  for (int64_t n : {0, 1, 3, 17, 33, 1000, 100003}) {
    INFO("n = " << n);
    std::vector<double> d(static_cast<size_t>(n));
    std::vector<float> f(static_cast<size_t>(n));
    std::vector<int64_t> i64(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) {
      d[k] = (r + 1) * 0.25 * static_cast<double>(k) - r;   // rank 0: k/4, rank 1: k/2 - 1
      f[k] = static_cast<float>(d[k]);
      i64[k] = (r + 1) * k;
    }
    std::vector<double> d_avg = d, d_max = d, d_min = d;
    dist::all_reduce(d.data(), n);
    dist::all_reduce(d_avg.data(), n, dist::ReduceOp::avg);
    dist::all_reduce(d_max.data(), n, dist::ReduceOp::max);
    dist::all_reduce(d_min.data(), n, dist::ReduceOp::min);
    dist::all_reduce(f.data(), n);
    dist::all_reduce(i64.data(), n);
    for (int64_t k = 0; k < n; ++k) {
      const double a = 0.25 * static_cast<double>(k), b = 0.5 * static_cast<double>(k) - 1;
      REQUIRE(d[k] == a + b);
      REQUIRE(d_avg[k] == (a + b) / 2);
      REQUIRE(d_max[k] == std::max(a, b));
      REQUIRE(d_min[k] == std::min(a, b));
      REQUIRE(f[k] == static_cast<float>(static_cast<double>(static_cast<float>(a)) +
                                          static_cast<double>(static_cast<float>(b))));
      REQUIRE(i64[k] == 3 * k);
    }
    REQUIRE(same_on_every_rank(d));
  }
}

TEST_CASE("dist: all_reduce of a tensor is in place and the same on every rank",
          "[mpi][distributed]") {
  Generator gen(100 + static_cast<uint64_t>(dist::rank()));
  Tensor t = Tensor::randn({3, 5, 7}, DType::f32, &gen);
  Tensor mine = t.clone();
  const uint64_t version = t.unsafe_impl()->storage->version();
  dist::all_reduce(t, dist::ReduceOp::avg);
  REQUIRE(t.unsafe_impl()->storage->version() > version);
  // Both ranks' tensors, to check the average against.
  std::vector<double> local = mine.to_vector<double>(), both(2 * local.size());
  dist::all_gather(local.data(), static_cast<int64_t>(local.size()), both.data());
  const std::vector<float> got = t.to_vector<float>();
  for (size_t k = 0; k < local.size(); ++k)
    REQUIRE(got[k] == static_cast<float>((both[k] + both[local.size() + k]) / 2));
  REQUIRE(same_on_every_rank(t.to_vector<double>()));

  Tensor counts = Tensor::full({4}, dist::rank() + 1.0, DType::i64);
  dist::all_reduce(counts);
  REQUIRE(counts.to_vector<int64_t>() == std::vector<int64_t>{3, 3, 3, 3});
}

TEST_CASE("dist: broadcast from either root", "[mpi][distributed]") {
  for (int root : {0, 1}) {
    INFO("root " << root);
    Tensor t = Tensor::full({2, 3}, 10.0 * dist::rank() + 1, DType::f64);
    dist::broadcast(t, root);
    REQUIRE(t.to_vector<double>() == std::vector<double>(6, 10.0 * root + 1));
    std::vector<int64_t> v = {dist::rank(), 7};
    dist::broadcast(v.data(), 2, root);
    REQUIRE(v == std::vector<int64_t>{root, 7});
  }
}

TEST_CASE("dist: all_gather puts each rank's values in rank order", "[mpi][distributed]") {
  const double mine[3] = {dist::rank() + 0.5, -1.0 * dist::rank(), 42};
  std::vector<double> all(6);
  dist::all_gather(mine, 3, all.data());
  REQUIRE(all == std::vector<double>{0.5, 0, 42, 1.5, -1, 42});
}

TEST_CASE("dist: each collective is counted once", "[mpi][distributed]") {
  const int64_t before = dist::collective_count();
  std::vector<float> big(300000, 1.0f);
  dist::all_reduce(big.data(), static_cast<int64_t>(big.size()));
  dist::barrier();
  REQUIRE(dist::collective_count() == before + 2);
  REQUIRE(big[299999] == 2.0f);
}

TEST_CASE("dist: errors name what was expected", "[mpi][distributed]") {
  Tensor t = Tensor::zeros({3, 4}).transpose(0, 1);
  REQUIRE_THAT(error_text([&] { dist::all_reduce(t); }),
               Catch::Contains("dist::all_reduce: expected a contiguous tensor, got shape [4, 3]"));
  Tensor u = Tensor::zeros({2});
  REQUIRE_THAT(error_text([&] { dist::broadcast(u, 2); }),
               Catch::Contains("dist::broadcast: expected root in [0, 2), got 2"));
  REQUIRE_THAT(error_text([&] { dist::all_reduce(static_cast<float*>(nullptr), -1); }),
               Catch::Contains("expected count >= 0, got -1"));
}
