#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include "../test_helpers.h"

using namespace kiln;
using kiln::testing::error_text;

namespace {
struct AnomalyScope {
  AnomalyScope() { set_detect_anomaly(true); }
  ~AnomalyScope() { set_detect_anomaly(false); }
};
}  // namespace

TEST_CASE("anomaly detection names the op whose forward made a NaN or Inf", "[autograd][anomaly]") {
  AnomalyScope scope;
  Tensor x = Tensor::from_vector(std::vector<float>{1, 0, 2}).requires_grad_();
  // log(0) = -inf
  REQUIRE_THAT(error_text([&] { log(x); }),
               Catch::Contains("anomaly detected: forward of Log produced NaN or Inf"));
  // Without requires_grad the forward check still runs.
  REQUIRE_THAT(error_text([&] { log(Tensor::zeros({2})); }), Catch::Contains("forward of Log produced"));
}

TEST_CASE("anomaly detection names the op whose backward made a NaN or Inf", "[autograd][anomaly]") {
  // sqrt(x) at 0 is finite forward but its gradient 0.5 / sqrt(0) is inf.
  Tensor x = Tensor::from_vector(std::vector<float>{0, 4}).requires_grad_();
  Tensor y = sqrt(x).sum();
  AnomalyScope scope;
  REQUIRE_THAT(error_text([&] { y.backward(); }),
               Catch::Contains("anomaly detected: backward of SqrtBackward produced NaN or Inf"));
}

TEST_CASE("without anomaly detection, NaN flows silently", "[autograd][anomaly]") {
  Tensor x = Tensor::from_vector(std::vector<float>{0}).requires_grad_();
  Tensor y = log(x).sum();
  REQUIRE(std::isinf(y.item<float>()));
}

TEST_CASE("anomaly detection names the first bad op inside a network, not the ops after it",
          "[autograd][anomaly]") {
  // conv -> relu -> log -> mean: relu makes exact zeros, log(0) = -inf, and every op after it
  // would see the Inf too. The error must stop at Log, and the tensors before it stay usable.
  manual_seed(3);
  nn::Conv2d conv(2, 4, 3, {.padding = 1});
  Tensor x = Tensor::randn({2, 2, 5, 5});
  AnomalyScope scope;
  Tensor h = relu(conv.forward(x));
  REQUIRE(min(h).item<float>() == 0.0f);
  REQUIRE_THAT(error_text([&] { mean(log(h)); }),
               Catch::Contains("anomaly detected: forward of Log produced NaN or Inf (shape [2, 4, 5, 5])"));
  // Shifted away from zero the same network runs clean, forward and backward.
  Tensor loss = mean(log(h + 1.0f));
  loss.backward();
  REQUIRE(conv.weight.grad().defined());
}
