#include <cmath>

#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include "../test_helpers.h"
#include "fixture_cases.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

nn::Reduction reduction_of(int64_t code) {
  return code == 0 ? nn::Reduction::none : code == 1 ? nn::Reduction::mean : nn::Reduction::sum;
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

}  // namespace

TEST_CASE("losses match PyTorch forward and backward", "[loss]") {
  auto fixture = load_fixture("loss.safetensors");
  auto cases = fixture_cases(fixture);
  REQUIRE(cases.size() == 22);
  for (const std::string& name : cases) {
    INFO("case " << name);
    // config = [kind (0 cross_entropy, 1 nll_loss, 2 mse_loss), reduction, ignore_index]
    auto config = fixture_tensor(fixture, name, "config").to_vector<int64_t>();
    const nn::Reduction reduction = reduction_of(config[1]);
    Tensor x = leaf_copy(fixture_tensor(fixture, name, "x"));
    Tensor target, y;
    if (config[0] == 0) {
      const double smoothing = fixture_tensor(fixture, name, "smoothing").item<double>();
      nn::CrossEntropyLoss criterion({.reduction = reduction, .label_smoothing = smoothing,
                                      .ignore_index = config[2]});
      y = criterion.forward(x, fixture_tensor(fixture, name, "labels"));
    } else if (config[0] == 1) {
      nn::NLLLoss criterion({.reduction = reduction, .ignore_index = config[2]});
      y = criterion(x, fixture_tensor(fixture, name, "labels"));
    } else {
      target = leaf_copy(fixture_tensor(fixture, name, "target"));
      y = nn::MSELoss(reduction).forward(x, target);
    }
    KILN_REQUIRE_CLOSE(y, fixture_tensor(fixture, name, "y"), 1e-5, 1e-5);
    y.backward(fixture_tensor(fixture, name, "grad_y"));
    KILN_REQUIRE_CLOSE(x.grad(), fixture_tensor(fixture, name, "grad_x"), 1e-6, 1e-5);
    if (target.defined()) {
      KILN_REQUIRE_CLOSE(target.grad(), fixture_tensor(fixture, name, "grad_target"), 1e-6, 1e-5);
    }
  }
}

TEST_CASE("loss functionals pass gradcheck in float64", "[loss][gradcheck]") {
  manual_seed(6);
  Tensor logits = Tensor::randn({5, 3}, DType::f64).requires_grad_();
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{2, 0, -100, 1, 2}, {5});
  Tensor spatial = Tensor::randn({2, 3, 3, 1}, DType::f64).requires_grad_();
  Tensor spatial_labels = Tensor::from_vector(std::vector<int64_t>{0, 2, 1, 1, 7, 0}, {2, 3, 1});
  Tensor target = Tensor::randn({5, 3}, DType::f64).requires_grad_();
  std::vector<std::pair<std::string, Fn>> fns;
  for (auto reduction : {nn::Reduction::none, nn::Reduction::mean, nn::Reduction::sum}) {
    for (double smoothing : {0.0, 0.2}) {
      fns.emplace_back("cross_entropy", [=](const std::vector<Tensor>& in) {
        return nn::functional::cross_entropy(in[0], labels, {.reduction = reduction, .label_smoothing = smoothing});
      });
      fns.emplace_back("cross_entropy, spatial, ignore_index 7", [=](const std::vector<Tensor>& in) {
        return nn::functional::cross_entropy(in[1], spatial_labels, {.reduction = reduction,
                                             .label_smoothing = smoothing, .ignore_index = 7});
      });
    }
    fns.emplace_back("nll_loss", [=](const std::vector<Tensor>& in) {
      return nn::functional::nll_loss(in[0], labels, {.reduction = reduction});
    });
    fns.emplace_back("mse_loss", [=](const std::vector<Tensor>& in) {
      return nn::functional::mse_loss(in[0], in[2], reduction);
    });
  }
  fns.emplace_back("cross_entropy on non-contiguous logits", [=](const std::vector<Tensor>& in) {
    Tensor strided = in[0].transpose(0, 1).contiguous().transpose(0, 1);  // [5, 3], strides [1, 5]
    return nn::functional::cross_entropy(strided, labels);
  });
  for (auto& [name, fn] : fns) {
    INFO(name);
    REQUIRE(autograd::gradcheck(fn, {logits, spatial, target}));
  }
}

TEST_CASE("cross_entropy: semantics of mean, ignore_index and label_smoothing", "[loss]") {
  Tensor logits = Tensor::from_vector(std::vector<double>{1, 2, 3, 0, 0, 0, -1, 5, 2}, {3, 3})
                      .requires_grad_();
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{2, -100, 1}, {3});
  // mean divides by the 2 positions that are not ignored.
  Tensor per_row = nn::functional::cross_entropy(logits, labels, {.reduction = nn::Reduction::none});
  auto rows = per_row.to_vector<double>();
  REQUIRE(rows[1] == 0.0);
  Tensor mean = nn::functional::cross_entropy(logits, labels);
  REQUIRE(mean.dim() == 0);
  REQUIRE(mean.item<double>() == Approx((rows[0] + rows[2]) / 2));
  // Row 0 by hand: lse(1, 2, 3) - 3.
  const double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  REQUIRE(rows[0] == Approx(lse0 - 3));
  // label_smoothing eps: (1 - eps) nll + eps * mean_c(-log p_c).
  Tensor smoothed = nn::functional::cross_entropy(logits, labels, {.reduction = nn::Reduction::none,
                                                                   .label_smoothing = 0.1});
  const double uniform0 = lse0 - (1 + 2 + 3) / 3.0;
  REQUIRE(smoothed.to_vector<double>()[0] == Approx(0.9 * (lse0 - 3) + 0.1 * uniform0));
  // Ignored rows get no gradient.
  mean.backward();
  auto grad = logits.grad().to_vector<double>();
  REQUIRE(grad[3] == 0.0);
  REQUIRE(grad[4] == 0.0);
  REQUIRE(grad[5] == 0.0);

  // Every label ignored: mean is 0 / 0 = NaN (as PyTorch), sum is 0, the gradient is 0.
  Tensor all_ignored = Tensor::full({3}, -100, DType::i64);
  REQUIRE(std::isnan(nn::functional::cross_entropy(logits, all_ignored).item<double>()));
  Tensor sum = nn::functional::cross_entropy(logits, all_ignored, {.reduction = nn::Reduction::sum});
  REQUIRE(sum.item<double>() == 0.0);
  logits.set_grad(Tensor());
  sum.backward();
  REQUIRE(logits.grad().to_vector<double>() == std::vector<double>(9, 0.0));
}

TEST_CASE("a small network trains end to end through cross_entropy", "[loss][linear]") {
  manual_seed(0);
  auto net = std::make_shared<nn::Sequential>(
      std::make_shared<nn::Linear>(6, 16), std::make_shared<nn::GELU>(), std::make_shared<nn::Dropout>(0.1),
      std::make_shared<nn::Linear>(16, 4));
  Tensor x = Tensor::randn({8, 6});
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 3, 3, 2, 1, 0}, {8});
  Tensor loss = nn::functional::cross_entropy(net->forward(x), labels, {.label_smoothing = 0.1});
  REQUIRE(loss.dim() == 0);
  loss.backward();
  for (const auto& [name, p] : net->named_parameters()) {
    INFO(name);
    REQUIRE(p.grad().defined());
  }
  REQUIRE(net->named_parameters()[0].first == "0.weight");
}

TEST_CASE("loss modules print as PyTorch's", "[loss]") {
  REQUIRE(nn::CrossEntropyLoss().repr() == "CrossEntropyLoss()");
  REQUIRE(nn::NLLLoss().repr() == "NLLLoss()");
  REQUIRE(nn::MSELoss().repr() == "MSELoss()");
}

TEST_CASE("loss errors name the label, the classes and the shapes", "[loss][errors]") {
  Tensor logits = Tensor::randn({4, 5});
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{0, 4, 7, 1}, {4});
  REQUIRE_THAT(error_text([&] { nn::functional::cross_entropy(logits, labels); }),
               Catch::StartsWith("cross_entropy: label 7 at index [2] is out of range for C = 5"
                                 " classes (expected 0 <= label < 5, or ignore_index -100)"));
  Tensor negative = Tensor::from_vector(std::vector<int64_t>{0, -1, 2, 1}, {4});
  REQUIRE_THAT(error_text([&] { nn::CrossEntropyLoss().forward(logits, negative); }),
               Catch::Contains("label -1 at index [1] is out of range for C = 5 classes"));
  REQUIRE_THAT(error_text([&] { nn::functional::nll_loss(Tensor::randn({2, 3, 2}),
                                                         Tensor::full({2, 2}, 3, DType::i64)); }),
               Catch::Contains("nll_loss: label 3 at index [0, 0] is out of range for C = 3"));
  REQUIRE_THAT(error_text([&] { nn::functional::cross_entropy(logits, Tensor::zeros({3}, DType::i64)); }),
               Catch::Contains("logits of shape [4, 5] need labels of shape [4], got [3]"));
  REQUIRE_THAT(error_text([&] { nn::functional::cross_entropy(logits, Tensor::zeros({4})); }),
               Catch::Contains("expected labels as i64 class indices, got f32 of shape [4]"));
  REQUIRE_THAT(error_text([&] { nn::functional::cross_entropy(Tensor::randn({5}), Tensor::zeros({}, DType::i64)); }),
               Catch::Contains("expected logits [N, C] or [N, C, d1, ...], got shape [5]"));
  REQUIRE_THAT(error_text([&] { nn::functional::cross_entropy(logits, labels.clamp(0, 4), {.label_smoothing = 1.5}); }),
               Catch::Contains("label_smoothing must be in [0, 1], got 1.5"));
  REQUIRE_THAT(error_text([&] { nn::functional::mse_loss(Tensor::randn({2, 3}), Tensor::randn({3, 2})); }),
               Catch::Contains("mse_loss: the input [2, 3] and the target [3, 2] must have the same shape"));
  REQUIRE_THAT(error_text([&] { nn::CrossEntropyLoss().forward(logits); }),
               Catch::Contains("CrossEntropyLoss: this module does not define forward(input)"));
}
