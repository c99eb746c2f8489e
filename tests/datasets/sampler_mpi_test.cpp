// DistributedSampler on 2 real ranks (kiln_mpi_tests, under mpirun): each epoch, the ranks' shards
// together cover every index exactly once, and each epoch reshuffles.
#include <catch2/catch.hpp>
#include <kiln/kiln.h>

using namespace kiln;

namespace {

// Every rank's indices for the epoch, rank 0's first.
std::vector<int64_t> gathered(const data::DistributedSampler& sampler, int64_t epoch) {
  const std::vector<int64_t> mine = sampler.indices(epoch);
  std::vector<double> send(mine.begin(), mine.end()), all(send.size() * 2);
  dist::all_gather(send.data(), static_cast<int64_t>(send.size()), all.data());
  return std::vector<int64_t>(all.begin(), all.end());
}

}  // namespace

TEST_CASE("DistributedSampler on 2 ranks: every index exactly once per epoch",
          "[mpi][sampler]") {
  const int64_t n = 1000;
  data::DistributedSampler sampler(n, {.num_replicas = dist::world_size(), .rank = dist::rank(),
                                       .seed = 3});
  REQUIRE(sampler.size() == 500);
  std::vector<int64_t> previous;
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    INFO("epoch " << epoch);
    std::vector<int64_t> all = gathered(sampler, epoch);
    REQUIRE(all.size() == static_cast<size_t>(n));
    std::vector<int64_t> sorted = all;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < n; ++i) REQUIRE(sorted[static_cast<size_t>(i)] == i);
    REQUIRE(all != previous);  // reshuffled
    previous = all;
  }
}
