// A whole training step (forward, cross-entropy, backward, Adam) gives the same bits at 1 and 2
// threads, for each norm of the app's models.
#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include "../test_helpers.h"
#include "models.h"

using namespace kiln;

namespace {
std::vector<Tensor> two_steps(const std::string& norm, int threads) {
  set_num_threads(threads);
  manual_seed(7);
  auto net = apps::make_vgg(apps::vgg_blocks("vgg8"), norm);
  optim::Adam opt(net->parameters(), optim::AdamOptions{.lr = 1e-3});
  Tensor x = Tensor::randn({2, 3, 32, 32});
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{3, 7});
  for (int step = 0; step < 2; ++step) {
    opt.zero_grad();
    nn::functional::cross_entropy(net->forward(x), labels).backward();
    opt.step();
  }
  std::vector<Tensor> out;
  for (auto& [name, t] : net->state_dict()) out.push_back(t.clone());
  return out;
}
}  // namespace

TEST_CASE("a training step is bit-identical at 1 and 2 threads", "[apps][determinism]") {
  for (const char* norm : {"gn", "bn", "gn+ws"}) {
    INFO("norm " << norm);
    auto one = two_steps(norm, 1), two = two_steps(norm, 2);
    set_num_threads(2);
    REQUIRE(one.size() == two.size());
    for (size_t i = 0; i < one.size(); ++i) kiln::testing::require_equal(one[i], two[i]);
  }
}
