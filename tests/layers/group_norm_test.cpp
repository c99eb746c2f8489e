// GroupNorm, LayerNorm and InstanceNorm2d: gradcheck, parity with PyTorch fixtures
// (tests/tools/gen_norm_fixtures.py), the family identities, numerics and errors.
#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include "../test_helpers.h"

using namespace kiln;
using kiln::testing::error_text;
using kiln::testing::load_fixture;

namespace {

// Runs forward and backward with the fixture's g and compares y, dx and the parameter grads.
void check_against_fixture(nn::Module& module, const std::map<std::string, Tensor>& f,
                           const std::string& name) {
  INFO("fixture case " << name);
  for (auto& [pname, p] : module.named_parameters()) {
    NoGradGuard no_grad;
    p.copy_(f.at(name + "." + pname));
  }
  Tensor x = f.at(name + ".x").clone().requires_grad_();
  Tensor y = module.forward(x);
  y.backward(f.at(name + ".g"));
  KILN_REQUIRE_CLOSE(y, f.at(name + ".y"), 2e-5, 1e-4);
  KILN_REQUIRE_CLOSE(x.grad(), f.at(name + ".dx"), 2e-5, 1e-4);
  for (auto& [pname, p] : module.named_parameters()) {
    INFO("parameter " << pname);
    REQUIRE(p.grad().defined());
    KILN_REQUIRE_CLOSE(p.grad(), f.at(name + ".d" + pname), 5e-5, 1e-4);
  }
}

}  // namespace

TEST_CASE("group_norm gradcheck in float64", "[layers][group_norm]") {
  manual_seed(1);
  auto fn = [](int64_t groups) {
    return [groups](const std::vector<Tensor>& in) {
      return nn::functional::group_norm(in[0], groups, in[1], in[2], 1e-5);
    };
  };
  for (auto [shape, groups] : std::vector<std::pair<Shape, int64_t>>{
           {{2, 6, 2, 3}, 3}, {{1, 4, 3, 1}, 1}, {{2, 3, 2, 2}, 3}, {{3, 2, 5}, 2}}) {
    INFO("shape " << shape_str(shape) << " groups " << groups);
    Tensor x = (Tensor::randn(shape, DType::f64) * 2.0 + 1.0).requires_grad_();
    Tensor w = Tensor::randn({shape[1]}, DType::f64).requires_grad_();
    Tensor b = Tensor::randn({shape[1]}, DType::f64).requires_grad_();
    REQUIRE(autograd::gradcheck(fn(groups), {x, w, b}));
  }
  SECTION("without affine, and on a non-contiguous input") {
    Tensor base = Tensor::randn({4, 2, 3, 2}, DType::f64).requires_grad_();
    REQUIRE(autograd::gradcheck(
        [](const std::vector<Tensor>& in) {
          return nn::functional::group_norm(in[0].permute({1, 0, 2, 3}), 2);
        },
        {base}));
  }
}

TEST_CASE("layer_norm and instance_norm gradcheck in float64", "[layers][group_norm]") {
  manual_seed(2);
  Tensor x = Tensor::randn({2, 3, 2, 3}, DType::f64).requires_grad_();
  Tensor w = Tensor::randn({2, 3}, DType::f64).requires_grad_();
  Tensor b = Tensor::randn({2, 3}, DType::f64).requires_grad_();
  REQUIRE(autograd::gradcheck(
      [](const std::vector<Tensor>& in) {
        return nn::functional::layer_norm(in[0], {2, 3}, in[1], in[2]);
      },
      {x, w, b}));
  Tensor wi = Tensor::randn({3}, DType::f64).requires_grad_();
  Tensor bi = Tensor::randn({3}, DType::f64).requires_grad_();
  REQUIRE(autograd::gradcheck(
      [](const std::vector<Tensor>& in) { return nn::functional::instance_norm(in[0], in[1], in[2]); },
      {x, wi, bi}));
}

TEST_CASE("GroupNorm matches PyTorch", "[layers][group_norm][parity]") {
  auto f = load_fixture("norm_fixtures.safetensors");
  for (int i = 0; i < 6; ++i) {
    const std::string name = "gn" + std::to_string(i);
    const int64_t groups = f.at(name + ".groups").item<int64_t>();
    nn::GroupNorm gn(groups, f.at(name + ".x").shape()[1]);
    check_against_fixture(gn, f, name);
  }
}

TEST_CASE("LayerNorm matches PyTorch", "[layers][group_norm][parity]") {
  auto f = load_fixture("norm_fixtures.safetensors");
  for (int i = 0; i < 4; ++i) {
    const std::string name = "ln" + std::to_string(i);
    nn::LayerNorm ln(f.at(name + ".normalized_shape").to_vector<int64_t>());
    check_against_fixture(ln, f, name);
  }
}

TEST_CASE("InstanceNorm2d matches PyTorch", "[layers][group_norm][parity]") {
  auto f = load_fixture("norm_fixtures.safetensors");
  const bool affine[] = {true, false, true};
  for (int i = 0; i < 3; ++i) {
    const std::string name = "in" + std::to_string(i);
    nn::InstanceNorm2d norm(f.at(name + ".x").shape()[1], 1e-5, 0.1, affine[i]);
    check_against_fixture(norm, f, name);
  }
}

TEST_CASE("GroupNorm with G=1 is LayerNorm over (C,H,W); with G=C it is InstanceNorm",
          "[layers][group_norm]") {
  manual_seed(3);
  Tensor x = Tensor::randn({3, 6, 4, 5}, DType::f64);
  Tensor g = Tensor::randn({3, 6, 4, 5}, DType::f64);
  auto run = [&](auto&& fn) {
    Tensor xi = x.clone().requires_grad_();
    Tensor y = fn(xi);
    y.backward(g);
    return std::pair{y, xi.grad()};
  };
  auto [y_g1, dx_g1] = run([](const Tensor& t) { return nn::functional::group_norm(t, 1); });
  auto [y_ln, dx_ln] = run([](const Tensor& t) { return nn::functional::layer_norm(t, {6, 4, 5}); });
  KILN_REQUIRE_CLOSE(y_g1, y_ln, 1e-12, 1e-12);
  KILN_REQUIRE_CLOSE(dx_g1, dx_ln, 1e-12, 1e-12);
  auto [y_gc, dx_gc] = run([](const Tensor& t) { return nn::functional::group_norm(t, 6); });
  auto [y_in, dx_in] = run([](const Tensor& t) { return nn::functional::instance_norm(t); });
  KILN_REQUIRE_CLOSE(y_gc, y_in, 1e-12, 1e-12);
  KILN_REQUIRE_CLOSE(dx_gc, dx_in, 1e-12, 1e-12);
}

TEST_CASE("GroupNorm statistics are stable", "[layers][group_norm][numerics]") {
  manual_seed(4);
  SECTION("1e4 + 1e-2 randn normalizes to unit variance") {
    // eps = 0: with the default 1e-5 the output variance would be sigma2 / (sigma2 + eps) = 0.91
    // for sigma2 = 1e-4, by definition rather than by error.
    Tensor x = Tensor::randn({2, 8, 16, 16}) * 1e-2 + 1e4;
    Tensor y = nn::functional::group_norm(x, 4, Tensor(), Tensor(), /*eps=*/0.0);
    Tensor per_group = y.reshape({2, 4, -1});
    Tensor var = per_group.var({2}, /*correction=*/0);
    Tensor mean = per_group.mean({2});
    for (double v : var.to_vector<double>()) REQUIRE(std::abs(v - 1.0) < 1e-3);
    for (double m : mean.to_vector<double>()) REQUIRE(std::abs(m) < 1e-3);
  }
  SECTION("a constant group gives zeros, and a finite gradient") {
    Tensor x = Tensor::full({2, 4, 3, 3}, 7.25).requires_grad_();
    Tensor y = nn::functional::group_norm(x, 2);
    for (float v : y.to_vector<float>()) REQUIRE(v == 0.0f);
    y.sum().backward();
    for (float v : x.grad().to_vector<float>()) REQUIRE(std::isfinite(v));
  }
  SECTION("the variance is never negative") {
    // Values whose naive E[x^2] - E[x]^2 rounds below zero in float.
    Tensor x = Tensor::full({1, 2, 1, 3}, 0.1f) + Tensor::from_vector(std::vector<float>{0, 1e-9f, 0, 0, 0, 0}, {1, 2, 1, 3});
    Tensor y = nn::functional::group_norm(x, 1);
    for (float v : y.to_vector<float>()) REQUIRE(std::isfinite(v));
  }
}

TEST_CASE("GroupNorm module", "[layers][group_norm]") {
  auto gn = std::make_shared<nn::GroupNorm>(4, 8);
  REQUIRE(gn->state_dict().size() == 2);
  REQUIRE(gn->state_dict()[0].first == "weight");
  REQUIRE(gn->state_dict()[1].first == "bias");
  REQUIRE(gn->repr() == "GroupNorm(4, 8, eps=1e-05, affine=True)");
  Tensor x = Tensor::randn({2, 8, 5, 5}).requires_grad_();
  Tensor y = gn->forward(x);
  REQUIRE(y.shape() == Shape{2, 8, 5, 5});
  y.sum().backward();
  REQUIRE(gn->weight.grad().defined());
  REQUIRE(gn->bias.grad().defined());
  REQUIRE(nn::LayerNorm(std::vector<int64_t>{8, 5, 5}).repr() ==
          "LayerNorm((8, 5, 5), eps=1e-05, elementwise_affine=True)");
  REQUIRE(nn::InstanceNorm2d(8).parameters().empty());
}

TEST_CASE("normalization errors name the shapes", "[layers][group_norm][errors]") {
  REQUIRE_THAT(error_text([] { nn::GroupNorm(32, 30); }),
               Catch::Contains("channels 30 is not divisible by groups 32"));
  REQUIRE_THAT(error_text([] { nn::functional::group_norm(Tensor::zeros({2, 30, 4, 4}), 32); }),
               Catch::Contains("channels 30 is not divisible by groups 32 (input [2, 30, 4, 4])"));
  nn::GroupNorm gn(2, 4);
  REQUIRE_THAT(error_text([&] { gn.forward(Tensor::zeros({2, 6, 3, 3})); }),
               Catch::Contains("expected an input [N, 4, *], got [2, 6, 3, 3]"));
  REQUIRE_THAT(error_text([&] { gn.forward(Tensor::zeros({4})); }), Catch::Contains("got [4]"));
  REQUIRE_THAT(error_text([] { nn::functional::layer_norm(Tensor::zeros({2, 3, 4}), {3}); }),
               Catch::Contains("trailing dims are normalized_shape [3], got [2, 3, 4]"));
  nn::InstanceNorm2d in(3);
  REQUIRE_THAT(error_text([&] { in.forward(Tensor::zeros({2, 3})); }),
               Catch::Contains("got [2, 3]"));
}

TEST_CASE("GroupNorm is bit-identical at 1 and 2 threads", "[layers][group_norm][determinism]") {
  manual_seed(5);
  Tensor x0 = Tensor::randn({2, 64, 32, 32});
  Tensor g = Tensor::randn({2, 64, 32, 32});
  auto run = [&](int threads) {
    set_num_threads(threads);
    nn::GroupNorm gn(32, 64);
    Tensor x = x0.clone().requires_grad_();
    Tensor y = gn.forward(x);
    y.backward(g);
    return std::vector<Tensor>{y, x.grad(), gn.weight.grad(), gn.bias.grad()};
  };
  auto one = run(1), two = run(2);
  set_num_threads(2);
  for (size_t i = 0; i < one.size(); ++i) kiln::testing::require_equal(one[i], two[i]);
}

namespace {

// gradcheck in float64 of a fused GroupNorm op(x, groups, weight, bias, eps), for each (shape of
// x, groups), on inputs spread out so that no step of gradcheck crosses a ReLU's kink or flips a
// pooling window's pick.
template <class Op>
void gradcheck_fused_norm(Op op, const std::vector<std::pair<Shape, int64_t>>& cases) {
  for (auto [shape, groups] : cases) {
    INFO("shape " << shape_str(shape) << " groups " << groups);
    Tensor x = (Tensor::randn(shape, DType::f64) * 2.0 + 1.0).requires_grad_();
    Tensor w = Tensor::randn({shape[1]}, DType::f64).requires_grad_();
    Tensor b = Tensor::randn({shape[1]}, DType::f64).requires_grad_();
    const int64_t g = groups;
    REQUIRE(autograd::gradcheck(
        [&op, g](const std::vector<Tensor>& in) { return op(in[0], g, in[1], in[2], 1e-5); },
        {x, w, b}));
  }
}

}  // namespace

TEST_CASE("group_norm_relu gradcheck in float64", "[layers][group_norm][fused]") {
  manual_seed(11);
  gradcheck_fused_norm(nn::functional::group_norm_relu,
                       {{{2, 6, 2, 3}, 3}, {{1, 4, 3, 1}, 1}, {{3, 2, 5}, 2}});
}

namespace {

// y, dx, dweight, dbias of fn(x, weight, bias) with upstream gradient g.
template <class Fn>
std::vector<Tensor> norm_results(Fn fn, const Tensor& x0, const Tensor& w0, const Tensor& b0,
                                 const Tensor& g) {
  Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_();
  Tensor b = b0.clone().requires_grad_();
  Tensor y = fn(x, w, b);
  y.backward(g);
  return {y, x.grad(), w.grad(), b.grad()};
}

}  // namespace

TEST_CASE("group_norm_relu has the bits of relu(group_norm)", "[layers][group_norm][fused]") {
  manual_seed(12);
  // S = 7, 16, 37 and 1024 cover the vector loops' tails; the bias shifts some channels so that
  // most of their outputs are cut. Group {-1, 0, 1} normalizes to an exact 0 at the middle, where
  // both must pass no gradient.
  for (const Shape& shape : std::vector<Shape>{{2, 4, 7}, {3, 6, 4, 4}, {2, 8, 37}, {2, 64, 32, 32}}) {
    for (DType dtype : {DType::f32, DType::f64}) {
      INFO("shape " << shape_str(shape) << " dtype " << dtype_name(dtype));
      const int64_t C = shape[1], groups = C / 2;
      Tensor x = Tensor::randn(shape, dtype) * 3.0 + 0.5;
      Tensor w = Tensor::randn({C}, dtype), b = Tensor::randn({C}, dtype);
      Tensor g = Tensor::randn(shape, dtype);
      auto fused = norm_results(
          [&](const Tensor& xi, const Tensor& wi, const Tensor& bi) {
            return nn::functional::group_norm_relu(xi, groups, wi, bi);
          },
          x, w, b, g);
      auto apart = norm_results(
          [&](const Tensor& xi, const Tensor& wi, const Tensor& bi) {
            return relu(nn::functional::group_norm(xi, groups, wi, bi));
          },
          x, w, b, g);
      for (size_t i = 0; i < fused.size(); ++i) kiln::testing::require_equal(fused[i], apart[i]);
    }
  }
  SECTION("an exact zero passes no gradient") {
    Tensor x = Tensor::from_vector(std::vector<float>{-1, 0, 1, 2, 4, 6}, {1, 2, 3}).requires_grad_();
    Tensor y = nn::functional::group_norm_relu(x, 2);
    y.backward(Tensor::ones({1, 2, 3}));
    REQUIRE(y.to_vector<float>()[1] == 0.0f);
    REQUIRE(y.to_vector<float>()[4] == 0.0f);
    Tensor x2 = x.detach().clone().requires_grad_();
    relu(nn::functional::group_norm(x2, 2)).backward(Tensor::ones({1, 2, 3}));
    kiln::testing::require_equal(x.grad(), x2.grad());
  }
}

TEST_CASE("group_norm_relu_max_pool2d gradcheck in float64", "[layers][group_norm][fused]") {
  manual_seed(14);
  // Even and odd planes (an odd last row or column is in no window), one and several channels a
  // group.
  gradcheck_fused_norm(nn::functional::group_norm_relu_max_pool2d,
                       {{{2, 6, 4, 2}, 3}, {{1, 4, 3, 5}, 2}, {{2, 2, 2, 3}, 2}});
}

TEST_CASE("group_norm_relu_max_pool2d has the bits of max_pool2d(relu(group_norm))",
          "[layers][group_norm][fused]") {
  manual_seed(15);
  // Planes of 2x2 up to 32x32, odd sizes (3x5, 7x7), and groups of 1 to 8 channels. The bias
  // shifts some channels so that whole windows are cut to 0, where the first element must take
  // the gradient, as MaxPool2d's backward gives it.
  for (auto [shape, groups] : std::vector<std::pair<Shape, int64_t>>{
           {{2, 4, 2, 2}, 2}, {{3, 6, 3, 5}, 3}, {{2, 8, 7, 7}, 1}, {{2, 16, 8, 8}, 4},
           {{2, 32, 32, 32}, 32}, {{1, 256, 4, 4}, 32}, {{2, 40, 2, 2}, 8}, {{2, 6, 4, 4}, 3},
           {{2, 8, 16, 16}, 4}}) {
    for (DType dtype : {DType::f32, DType::f64}) {
      INFO("shape " << shape_str(shape) << " groups " << groups << " dtype " << dtype_name(dtype));
      const int64_t C = shape[1];
      Tensor x = Tensor::randn(shape, dtype) * 3.0 + 0.5;
      Tensor w = Tensor::randn({C}, dtype), b = Tensor::randn({C}, dtype);
      Tensor g = Tensor::randn({shape[0], C, shape[2] / 2, shape[3] / 2}, dtype);
      auto fused = norm_results(
          [&](const Tensor& xi, const Tensor& wi, const Tensor& bi) {
            return nn::functional::group_norm_relu_max_pool2d(xi, groups, wi, bi);
          },
          x, w, b, g);
      auto apart = norm_results(
          [&](const Tensor& xi, const Tensor& wi, const Tensor& bi) {
            return nn::functional::max_pool2d(relu(nn::functional::group_norm(xi, groups, wi, bi)),
                                              2);
          },
          x, w, b, g);
      for (size_t i = 0; i < fused.size(); ++i) kiln::testing::require_equal(fused[i], apart[i]);
    }
  }
  SECTION("a NaN, a window of ties and a -0 gradient give the same bits too") {
    // Channel 0 holds a NaN, which spreads over its group; channel 1 is constant, so it
    // normalizes to 0 and its window is four ties, of which the first takes the gradient.
    Tensor x0 = Tensor::from_vector(std::vector<float>{1, NAN, 3, 4, 5, 5, 5, 5}, {1, 2, 2, 2});
    Tensor g = Tensor::from_vector(std::vector<float>{-0.0f, 2.0f}, {1, 2, 1, 1});
    auto run = [&](bool fused) {
      Tensor x = x0.clone().requires_grad_();
      Tensor y = fused ? nn::functional::group_norm_relu_max_pool2d(x, 2)
                       : nn::functional::max_pool2d(relu(nn::functional::group_norm(x, 2)), 2);
      y.backward(g);
      return std::vector<Tensor>{y, x.grad()};
    };
    auto fused = run(true), apart = run(false);
    for (size_t i = 0; i < fused.size(); ++i) kiln::testing::require_equal(fused[i], apart[i]);
  }
  SECTION("inputs it cannot pool are refused, naming the shape") {
    REQUIRE_THROWS_WITH(nn::functional::group_norm_relu_max_pool2d(Tensor::randn({2, 4, 1, 6}), 2),
                        Catch::Contains("expected an input [N, C, H, W] with H and W at least 2") &&
                            Catch::Contains("[2, 4, 1, 6]"));
    REQUIRE_THROWS_WITH(nn::functional::group_norm_relu_max_pool2d(Tensor::randn({2, 4, 6}), 2),
                        Catch::Contains("[2, 4, 6]"));
  }
}

namespace {
// A GroupNorm whose forward is its own: Sequential must call it, not fuse around it.
struct DoubledGroupNorm : nn::GroupNorm {
  using nn::GroupNorm::GroupNorm;
  Tensor forward(const Tensor& x) override { return nn::GroupNorm::forward(x) * 2.0; }
};
}  // namespace

TEST_CASE("Sequential fuses GroupNorm and ReLU with the same bits", "[layers][group_norm][fused]") {
  manual_seed(13);
  auto conv = std::make_shared<nn::Conv2d>(3, 8, 3, nn::Conv2dOptions{.padding = 1});
  auto gn = std::make_shared<nn::GroupNorm>(4, 8);
  auto relu_module = std::make_shared<nn::ReLU>();
  nn::Sequential net(conv, gn, relu_module, std::make_shared<nn::Flatten>());
  {
    NoGradGuard no_grad;
    gn->weight.copy_(Tensor::randn({8}));
    gn->bias.copy_(Tensor::randn({8}));
  }
  Tensor x0 = Tensor::randn({2, 3, 6, 6});
  Tensor g = Tensor::randn({2, 8 * 36});
  auto run = [&](bool through_sequential) {
    net.zero_grad();
    Tensor x = x0.clone().requires_grad_();
    Tensor y = through_sequential
                   ? net.forward(x)
                   : net[3]->forward(relu_module->forward(gn->forward(conv->forward(x))));
    y.backward(g);
    return std::vector<Tensor>{y, x.grad(), conv->weight.grad(), gn->weight.grad(),
                               gn->bias.grad()};
  };
  auto fused = run(true), apart = run(false);
  for (size_t i = 0; i < fused.size(); ++i) kiln::testing::require_equal(fused[i], apart[i]);

  SECTION("with a MaxPool2d(2) after the ReLU, the three run as one op") {
    auto pool = std::make_shared<nn::MaxPool2d>(2);
    nn::Sequential pooled_net(conv, gn, relu_module, pool, std::make_shared<nn::Flatten>());
    Tensor gp = Tensor::randn({2, 8 * 9});
    auto run_pooled = [&](bool through_sequential) {
      pooled_net.zero_grad();
      Tensor x = x0.clone().requires_grad_();
      Tensor y = through_sequential
                     ? pooled_net.forward(x)
                     : pooled_net[4]->forward(pool->forward(
                           relu_module->forward(gn->forward(conv->forward(x)))));
      y.backward(gp);
      return std::vector<Tensor>{y, x.grad(), conv->weight.grad(), gn->weight.grad(),
                                 gn->bias.grad()};
    };
    auto fused_pooled = run_pooled(true), apart_pooled = run_pooled(false);
    for (size_t i = 0; i < fused_pooled.size(); ++i)
      kiln::testing::require_equal(fused_pooled[i], apart_pooled[i]);
    // The pooled output comes from the norm's node, not from a MaxPool2d of its own.
    Tensor x = x0.clone().requires_grad_();
    Tensor y = nn::Sequential(conv, gn, relu_module, pool).forward(x);
    REQUIRE(y.grad_fn()->name() == "GroupNormalizeBackward");
    REQUIRE(pool->forward(relu_module->forward(gn->forward(conv->forward(x)))).grad_fn()->name() ==
            "MaxPool2dBackward");
  }
  SECTION("other poolings after the ReLU run on their own") {
    // stride 1 and padding 1 are not the fused 2x2 pooling: Sequential must run them as given.
    for (auto options : {nn::Pool2dOptions{.stride = 1}, nn::Pool2dOptions{.padding = 1}}) {
      auto pool = std::make_shared<nn::MaxPool2d>(2, options);
      nn::Sequential other(gn, relu_module, pool);
      Tensor x = Tensor::randn({2, 8, 5, 5});
      kiln::testing::require_equal(other.forward(x),
                                   pool->forward(relu_module->forward(gn->forward(x))));
    }
  }
  SECTION("a subclass keeps its own forward") {
    auto doubled = std::make_shared<DoubledGroupNorm>(4, 8);
    nn::Sequential with_subclass(doubled, std::make_shared<nn::ReLU>());
    Tensor x = Tensor::randn({2, 8, 3, 3});
    kiln::testing::require_equal(with_subclass.forward(x), relu(doubled->forward(x)));
  }
}
