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
