#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include "../test_helpers.h"

using namespace kiln;
using kiln::testing::error_text;
using kiln::testing::load_fixture;
using kiln::testing::require_equal;

namespace {

struct ConvCase {
  int64_t N, C, H, W, C_out, k, stride, padding, dilation, groups;
  bool bias;
};

std::string describe(const ConvCase& c) {
  std::ostringstream out;
  out << "x [" << c.N << ", " << c.C << ", " << c.H << ", " << c.W << "], C_out " << c.C_out
      << ", k " << c.k << ", stride " << c.stride << ", padding " << c.padding << ", dilation "
      << c.dilation << ", groups " << c.groups << (c.bias ? ", bias" : ", no bias");
  return out.str();
}

kernels::Conv2dParams params_of(const ConvCase& c) {
  return {c.stride, c.padding, c.dilation, c.groups};
}

// |a - b| <= tol (1 + max |b|) everywhere: a tolerance relative to the tensor's scale, since
// the sums behind each element round with the size of their largest terms.
void require_close_scaled(const Tensor& a, const Tensor& b, double tol) {
  double scale = 0;
  for (double v : b.to_vector<double>()) scale = std::max(scale, std::fabs(v));
  KILN_REQUIRE_CLOSE(a, b, tol * (1 + scale), 0.0);
}

// Whether conv2d takes Winograd F(4x4, 3x3) for c (the rule in check_conv2d): 3x3, stride 1,
// padding 1, maps of at least 8x8, at least 64 channels per group each way, and at least 16384
// tiles of 4x4 times those channels. Its f32 rounding error is about ten times F(2x2, 3x3)'s.
bool takes_winograd_4x4(const ConvCase& c) {
  const int64_t narrow = std::min(c.C, c.C_out) / c.groups;
  const int64_t tiles = c.N * ((c.H + 3) / 4) * ((c.W + 3) / 4);
  return c.k == 3 && c.stride == 1 && c.padding == 1 && c.dilation == 1 && c.H >= 8 &&
         c.W >= 8 && narrow >= 64 && tiles * narrow >= 16384;
}

}  // namespace

TEST_CASE("conv2d: the fast kernels equal the reference loops on odd sizes") {
  // Odd channel counts and sizes, non-square images, batch 1 and 3, every option; cases that make
  // several row tiles per image (17 or 32 channels of 3x3 on about 33x31), tiles of several whole
  // images (many 3x4 or 2x2 images), and the Winograd path.
  const std::vector<ConvCase> cases = {
      {1, 1, 1, 1, 1, 1, 1, 0, 1, 1, true},    {3, 3, 7, 5, 4, 3, 1, 1, 1, 1, true},
      {1, 7, 17, 9, 3, 3, 2, 1, 1, 1, false},  {3, 6, 9, 13, 9, 3, 2, 1, 1, 3, true},
      {1, 4, 9, 13, 8, 1, 1, 0, 1, 2, true},   {3, 7, 17, 17, 5, 3, 1, 2, 2, 1, true},
      {3, 17, 3, 7, 17, 3, 1, 1, 1, 17, true}, {1, 3, 33, 31, 7, 5, 3, 2, 1, 1, true},
      {1, 1, 5, 3, 1, 3, 1, 0, 1, 1, false},   {3, 3, 4, 6, 7, 1, 2, 1, 1, 1, true},
      {1, 17, 33, 31, 7, 3, 1, 1, 1, 1, true}, {1, 32, 35, 29, 5, 3, 1, 1, 1, 1, true},
      {33, 8, 3, 4, 16, 3, 1, 1, 1, 1, true},
      {17, 16, 2, 2, 32, 1, 1, 0, 1, 1, true}, {3, 34, 7, 5, 17, 3, 1, 1, 1, 1, false},
      // Few tiles and many output channels, so the forward lowers each tile once for several
      // channel blocks: two groups over one tile of two images, and stride 2 on short rows.
      {2, 64, 4, 4, 64, 3, 1, 1, 1, 2, true},  {3, 40, 7, 5, 48, 3, 2, 1, 1, 1, true},
      // Stride-1 "same" convolutions that are not the Winograd kind: dilation, a 5x5 kernel.
      {3, 16, 17, 16, 18, 3, 1, 2, 2, 1, false}, {1, 32, 17, 16, 33, 5, 1, 2, 1, 1, true},
      // Winograd F(2x2, 3x3): odd heights and widths (half-empty edge tiles), one tile row, a
      // 1x1 image, groups, many tile blocks, and a batch split into grad_weight ranges.
      {1, 17, 37, 23, 17, 3, 1, 1, 1, 1, true},  {2, 34, 16, 21, 34, 3, 1, 1, 1, 2, true},
      {3, 16, 2, 33, 16, 3, 1, 1, 1, 1, false},  {17, 16, 1, 1, 16, 3, 1, 1, 1, 1, true},
      {1, 16, 64, 17, 20, 3, 1, 1, 1, 1, true},  {5, 16, 13, 11, 16, 3, 1, 1, 1, 1, true},
      // Blocks of 8 tiles over 64 input channels, as vgg8's 8x8 layers at batch 2: with AVX-512,
      // f32 grad_weight sums them in gemm_nt_short_k (4 blocks added in turn; rows left over).
      {2, 64, 8, 8, 70, 3, 1, 1, 1, 1, true},
      // At most 16 pixels in the batch, so grad_weight runs its short-K kernel (blocks of 4 rows
      // and 4 vectors, with rows and columns left over, groups, whole blocks only) and the forward
      // its short-N kernel on 8 or 16 pixels (blocks of 8 rows and rows left over, no bias, and
      // K = 720 summed in blocks of 320, 208 and 192).
      {1, 9, 3, 3, 6, 3, 1, 1, 1, 1, true},      {2, 14, 2, 2, 10, 3, 1, 1, 1, 2, true},
      {2, 64, 2, 2, 8, 3, 1, 1, 1, 1, false},    {4, 16, 2, 2, 20, 3, 1, 1, 1, 1, true},
      {2, 80, 2, 2, 12, 3, 1, 1, 1, 1, true},
      // Its short-N kernel on 24 and 32 pixels, forward and (A transposed) grad_input: blocks of 6
      // and 8 rows (4 without AVX-512) with rows left over, and K = 648, 720 and (grad_input) 330
      // summed in a block of 320 and the rest in two. With AVX-512, f32 grad_weight runs its
      // short-K kernel here too, in 512-bit vectors.
      {6, 72, 2, 2, 15, 3, 1, 1, 1, 1, false},   {2, 80, 4, 4, 13, 3, 1, 1, 1, 1, true},
      {2, 16, 4, 4, 330, 3, 1, 1, 1, 1, false},
      // Winograd F(4x4, 3x3): odd heights and widths (edge tiles of 1 to 3 pixels), long tile
      // rows and short ones (at most 4 tiles, gathered), and more output channels than input.
      {3, 64, 41, 29, 72, 3, 1, 1, 1, 1, true},  {8, 64, 31, 15, 64, 3, 1, 1, 1, 1, false},
  };
  REQUIRE(std::count_if(cases.begin(), cases.end(), takes_winograd_4x4) == 2);
  for (DType dtype : {DType::f64, DType::f32}) {
    manual_seed(1);
    for (const ConvCase& c : cases) {
      INFO(describe(c) << ", " << dtype_name(dtype));
      Tensor x = Tensor::randn({c.N, c.C, c.H, c.W}, dtype);
      Tensor w = Tensor::randn({c.C_out, c.C / c.groups, c.k, c.k}, dtype);
      Tensor b = c.bias ? Tensor::randn({c.C_out}, dtype) : Tensor();
      const auto p = params_of(c);
      Tensor y = kernels::conv2d_forward(x, w, b, p);
      Tensor y_ref = kernels::conv2d_forward_reference(x, w, b, p);
      Tensor gy = Tensor::randn(y.shape(), dtype);
      auto g = kernels::conv2d_backward(gy, x, w, p, true, true, c.bias);
      auto g_ref = kernels::conv2d_backward_reference(gy, x, w, p, true, true, c.bias);
      const double tol = dtype == DType::f64 ? 1e-13 : takes_winograd_4x4(c) ? 3e-5 : 2e-6;
      require_close_scaled(y, y_ref, tol);
      require_close_scaled(g.grad_x, g_ref.grad_x, tol);
      require_close_scaled(g.grad_weight, g_ref.grad_weight, tol);
      if (c.bias) require_close_scaled(g.grad_bias, g_ref.grad_bias, tol);
      else REQUIRE_FALSE(g.grad_bias.defined());
    }
  }
}

TEST_CASE("conv2d: backward computes only the gradients asked for") {
  Tensor x = Tensor::randn({2, 4, 6, 5}, DType::f64), w = Tensor::randn({6, 2, 3, 3}, DType::f64);
  const kernels::Conv2dParams p{1, 1, 1, 2};
  Tensor gy = Tensor::randn({2, 6, 6, 5}, DType::f64);
  auto all = kernels::conv2d_backward(gy, x, w, p, true, true, true);
  auto only_x = kernels::conv2d_backward(gy, x, w, p, true, false, false);
  auto only_w = kernels::conv2d_backward(gy, x, w, p, false, true, false);
  REQUIRE_FALSE(only_x.grad_weight.defined());
  REQUIRE_FALSE(only_w.grad_x.defined());
  require_equal(only_x.grad_x, all.grad_x);
  require_equal(only_w.grad_weight, all.grad_weight);
}

TEST_CASE("conv2d: gradcheck over stride, padding, dilation, groups and bias") {
  const std::vector<ConvCase> cases = {
      {2, 3, 5, 4, 2, 3, 1, 0, 1, 1, true},  {1, 3, 7, 6, 2, 3, 2, 1, 1, 1, true},
      {1, 2, 7, 5, 3, 3, 1, 2, 2, 1, false}, {2, 4, 5, 5, 6, 3, 2, 1, 1, 2, true},
      {1, 3, 4, 5, 3, 1, 1, 0, 1, 3, true},  {1, 2, 6, 7, 2, 2, 3, 1, 2, 1, false},
  };
  manual_seed(2);
  for (const ConvCase& c : cases) {
    INFO(describe(c));
    Tensor x = Tensor::randn({c.N, c.C, c.H, c.W}, DType::f64).requires_grad_();
    Tensor w = Tensor::randn({c.C_out, c.C / c.groups, c.k, c.k}, DType::f64).requires_grad_();
    std::vector<Tensor> inputs{x, w};
    if (c.bias) inputs.push_back(Tensor::randn({c.C_out}, DType::f64).requires_grad_());
    REQUIRE(autograd::gradcheck(
        [&](const std::vector<Tensor>& in) {
          return nn::functional::conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), c.stride,
                                        c.padding, c.dilation, c.groups);
        },
        inputs));
  }
}

TEST_CASE("conv2d: matches PyTorch (tests/data/conv2d.safetensors)") {
  auto data = load_fixture("conv2d.safetensors");
  const std::vector<std::string> configs = {
      "basic",        "strided_groups", "dilated_no_bias", "pointwise",      "depthwise_k5_s3",
      "single_pixel", "tiny_images",    "winograd",        "winograd_4x4"};
  for (const std::string& name : configs) {
    INFO(name);
    auto at = [&](const std::string& key) { return data.at(name + "." + key); };
    const std::vector<int64_t> p = at("params").to_vector<int64_t>();
    const bool has_bias = data.count(name + ".bias") > 0;
    Tensor x = at("x").clone().requires_grad_();
    Tensor w = at("weight").clone().requires_grad_();
    Tensor b = has_bias ? at("bias").clone().requires_grad_() : Tensor();
    Tensor y = nn::functional::conv2d(x, w, b, p[0], p[1], p[2], p[3]);
    y.backward(at("grad_y"));
    require_close_scaled(y, at("y"), 1e-5);
    require_close_scaled(x.grad(), at("grad_x"), 1e-5);
    require_close_scaled(w.grad(), at("grad_weight"), 1e-5);
    if (has_bias) require_close_scaled(b.grad(), at("grad_bias"), 1e-5);
  }
}

TEST_CASE("conv2d: forward and backward are bit-identical at 1 and 2 threads") {
  // Sizes that split into many chunks of every kind, on both paths: Winograd (3x3, stride 1,
  // padding 1, 16+ channels) and im2col (stride 2); grad_weight split into batch ranges whose
  // partial sums are added at the end, and batches that do not divide evenly among the chunks.
  const std::vector<ConvCase> cases = {{3, 32, 37, 29, 40, 3, 1, 1, 1, 2, true},
                                       {3, 64, 41, 29, 64, 3, 1, 1, 1, 1, true},
                                       {3, 16, 37, 29, 24, 3, 2, 1, 1, 1, true}};
  REQUIRE_FALSE(takes_winograd_4x4(cases[0]));
  REQUIRE(takes_winograd_4x4(cases[1]));
  auto run = [](const ConvCase& c, int threads) {
    set_num_threads(threads);
    Generator gen(7);
    Tensor x = Tensor::randn({c.N, c.C, c.H, c.W}, DType::f32, &gen).requires_grad_();
    Tensor w = Tensor::randn({c.C_out, c.C / c.groups, c.k, c.k}, DType::f32, &gen);
    w.requires_grad_();
    Tensor b = Tensor::randn({c.C_out}, DType::f32, &gen).requires_grad_();
    Tensor y = nn::functional::conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups);
    Tensor gy = Tensor::randn(y.shape(), DType::f32, &gen);
    y.backward(gy);
    return std::vector<Tensor>{y.detach(), x.grad(), w.grad(), b.grad()};
  };
  const int before = num_threads();
  for (const ConvCase& c : cases) {
    INFO(describe(c));
    auto one = run(c, 1);
    auto two = run(c, 2);
    for (size_t i = 0; i < one.size(); ++i) require_equal(one[i], two[i]);
  }
  set_num_threads(before);
}

TEST_CASE("conv2d: gradients from the forward's kept transforms have the same bits") {
  // Winograd layers small enough for the forward to keep V = B^T x B for grad_weight, and for
  // F(2x2, 3x3) U = G w G^T for grad_input: F(2x2, 3x3) with few tiles; two groups on odd sizes;
  // F(4x4, 3x3), which keeps only V; 272 input channels, which grad_weight splits into two
  // blocks, each reading its part of V; U alone (V too large); V alone (U too large); and in f64.
  struct KeptCase {
    ConvCase c;
    DType dtype;
  };
  const std::vector<KeptCase> kept = {{{2, 32, 8, 8, 32, 3, 1, 1, 1, 1, true}, DType::f32},
                                      {{3, 32, 37, 29, 40, 3, 1, 1, 1, 2, true}, DType::f32},
                                      {{4, 64, 32, 32, 64, 3, 1, 1, 1, 1, false}, DType::f32},
                                      {{3, 272, 16, 16, 16, 3, 1, 1, 1, 1, true}, DType::f32},
                                      {{16, 32, 32, 32, 32, 3, 1, 1, 1, 1, false}, DType::f32},
                                      {{2, 288, 16, 16, 288, 3, 1, 1, 1, 1, true}, DType::f32},
                                      {{2, 32, 8, 8, 32, 3, 1, 1, 1, 1, true}, DType::f64}};
  REQUIRE(takes_winograd_4x4(kept[2].c));
  for (const auto& [c, dtype] : kept) {
    INFO(describe(c) << ", " << dtype_name(dtype));
    Generator gen(11);
    Tensor x = Tensor::randn({c.N, c.C, c.H, c.W}, dtype, &gen);
    Tensor w = Tensor::randn({c.C_out, c.C / c.groups, c.k, c.k}, dtype, &gen);
    Tensor b = c.bias ? Tensor::randn({c.C_out}, dtype, &gen) : Tensor();
    const kernels::Conv2dParams params = params_of(c);
    Tensor saved;
    Tensor y = kernels::conv2d_forward(x, w, b, params, &saved);
    REQUIRE(saved.defined());
    require_equal(y, kernels::conv2d_forward(x, w, b, params));
    Tensor gy = Tensor::randn(y.shape(), dtype, &gen);
    const auto with = kernels::conv2d_backward(gy, x, w, params, true, true, c.bias, saved);
    const auto without = kernels::conv2d_backward(gy, x, w, params, true, true, c.bias);
    require_equal(with.grad_weight, without.grad_weight);
    require_equal(with.grad_x, without.grad_x);
    if (c.bias) require_equal(with.grad_bias, without.grad_bias);
  }

  // Not kept: a Winograd layer whose V would be large, and an im2col layer.
  for (const ConvCase& c : {ConvCase{16, 64, 32, 32, 64, 3, 1, 1, 1, 1, true},
                            ConvCase{2, 16, 15, 15, 24, 3, 2, 1, 1, 1, true}}) {
    INFO(describe(c));
    Tensor saved = Tensor::ones({1});
    kernels::conv2d_forward(Tensor::randn({c.N, c.C, c.H, c.W}),
                            Tensor::randn({c.C_out, c.C / c.groups, c.k, c.k}),
                            Tensor::randn({c.C_out}), params_of(c), &saved);
    CHECK_FALSE(saved.defined());
  }

  // A kept transform from another layer is refused, naming both sizes.
  const ConvCase c{2, 32, 8, 8, 32, 3, 1, 1, 1, 1, true};
  Tensor x = Tensor::randn({c.N, c.C, c.H, c.W}), w = Tensor::randn({c.C_out, c.C, 3, 3});
  Tensor saved;
  Tensor y = kernels::conv2d_forward(x, w, Tensor(), params_of(c), &saved);
  const std::string message = error_text([&] {
    kernels::conv2d_backward(y, x, w, params_of(c), true, true, false, Tensor::zeros({7}));
  });
  CHECK_THAT(message, Catch::Contains("expected the saved transforms of this forward (" +
                                      std::to_string(saved.numel()) + " elements of f32), got [7]"));
}

TEST_CASE("conv2d: repeated forward and backward take no fresh large blocks") {
#ifdef KILN_EXACT_ALLOCATIONS
  SUCCEED("sanitizer builds have no block cache");
#else
  // Winograd F(2x2, 3x3) (its filter buffers are 16 x 64 x 64 floats, 256 KiB, for each
  // direction), F(4x4, 3x3) (36 x 64 x 64), and an im2col stride-2 layer whose grad_weight sums
  // partial copies of dW over batch ranges.
  const std::vector<ConvCase> cases = {{2, 64, 16, 16, 64, 3, 1, 1, 1, 1, true},
                                       {4, 64, 32, 32, 64, 3, 1, 1, 1, 1, true},
                                       {2, 64, 31, 31, 128, 3, 2, 1, 1, 1, true}};
  // One thread: each thread's scratch grows to the largest chunk it has run, and with two, which
  // thread runs which chunk changes from call to call, so a later call may grow the other one's.
  const int threads = num_threads();
  set_num_threads(1);
  for (const ConvCase& c : cases) {
    INFO(describe(c));
    Tensor x = Tensor::randn({c.N, c.C, c.H, c.W}).requires_grad_();
    Tensor w = Tensor::randn({c.C_out, c.C / c.groups, c.k, c.k}).requires_grad_();
    Tensor b = Tensor::randn({c.C_out}).requires_grad_();
    auto step = [&] {
      x.set_grad(Tensor());
      w.set_grad(Tensor());
      b.set_grad(Tensor());
      Tensor y = nn::functional::conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups);
      y.backward(Tensor::ones(y.shape()));
    };
    step();
    const size_t before = allocator_stats().fresh_allocations;
    for (int i = 0; i < 3; ++i) step();
    CHECK(allocator_stats().fresh_allocations == before);
  }
  set_num_threads(threads);
#endif
}

TEST_CASE("Conv2d: shapes, parameters, state_dict and repr") {
  manual_seed(4);
  auto conv = std::make_shared<nn::Conv2d>(3, 8, 3, nn::Conv2dOptions{.stride = 1, .padding = 1});
  REQUIRE(conv->weight.shape() == Shape{8, 3, 3, 3});
  REQUIRE(conv->bias.shape() == Shape{8});
  REQUIRE(conv->repr() == "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))");

  NamedTensors state = conv->state_dict();
  REQUIRE(state.size() == 2);
  REQUIRE(state[0].first == "weight");
  REQUIRE(state[1].first == "bias");

  Tensor x = Tensor::randn({2, 3, 7, 5}).requires_grad_();
  Tensor y = conv->forward(x);
  REQUIRE(y.shape() == Shape{2, 8, 7, 5});
  y.sum().backward();
  REQUIRE(x.grad().defined());
  for (auto& [name, p] : conv->named_parameters()) {
    INFO(name);
    REQUIRE(p.grad().defined());
    REQUIRE(p.grad().shape() == p.shape());
  }

  nn::Conv2d strided(4, 6, 5,
                     {.stride = 2, .padding = 0, .dilation = 2, .groups = 2, .bias = false});
  REQUIRE(strided.repr() ==
          "Conv2d(4, 6, kernel_size=(5, 5), stride=(2, 2), dilation=(2, 2), groups=2, bias=False)");
  REQUIRE(strided.state_dict().size() == 1);
  REQUIRE(strided.forward(Tensor::randn({1, 4, 13, 12})).shape() == Shape{1, 6, 3, 2});
}

TEST_CASE("Conv2d: default init is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as PyTorch's") {
  manual_seed(5);
  nn::Conv2d conv(16, 32, 3, {.groups = 2});
  const double bound = 1.0 / std::sqrt(8.0 * 9.0);  // fan_in = in/groups * k * k
  for (const Tensor& t : {conv.weight, conv.bias}) {
    std::vector<double> v = t.to_vector<double>();
    double lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
    REQUIRE(lo >= -bound);
    REQUIRE(hi <= bound);
    REQUIRE(hi - lo > bound);  // spread over the range, not a constant
  }
}

TEST_CASE("Conv2d: errors name what was expected and what was got") {
  auto conv = std::make_shared<nn::Conv2d>(3, 8, 3);
  REQUIRE_THAT(error_text([&] { conv->forward(Tensor::randn({2, 4, 5, 5})); }),
               Catch::Contains("conv2d: expected input with 3 channels (weight [8, 3, 3, 3], "
                               "groups 1), got input [2, 4, 5, 5]"));
  REQUIRE_THAT(error_text([&] { conv->forward(Tensor::randn({3, 5, 5})); }),
               Catch::Contains("expected a 4-D input [N, C, H, W], got input [3, 5, 5]"));
  REQUIRE_THAT(error_text([] { nn::Conv2d(4, 8, 3, {.groups = 3}); }),
               Catch::Contains("Conv2d: in_channels 4 is not divisible by groups 3"));
  REQUIRE_THAT(error_text([] {
                 nn::functional::conv2d(Tensor::randn({1, 1, 2, 2}), Tensor::randn({1, 1, 5, 5}),
                                        Tensor(), 1, 1);
               }),
               Catch::Contains("conv2d: kernel 5x5 is larger than the padded input 4x4 (input "
                               "[1, 1, 2, 2], padding 1)"));
  REQUIRE_THAT(error_text([] {
                 nn::functional::conv2d(Tensor::randn({1, 6, 8, 8}), Tensor::randn({8, 2, 3, 3}),
                                        Tensor(), 1, 0, 1, 3);
               }),
               Catch::Contains("out channels 8 (weight [8, 2, 3, 3]) are not divisible by "
                               "groups 3"));
  REQUIRE_THAT(error_text([] {
                 nn::functional::conv2d(Tensor::randn({1, 3, 8, 8}), Tensor::randn({4, 3, 3, 3}),
                                        Tensor::randn({5}));
               }),
               Catch::Contains("expected bias [4]"));
  REQUIRE_THAT(error_text([] {
                 nn::functional::conv2d(Tensor::randn({1, 3, 8, 8}, DType::f64),
                                        Tensor::randn({4, 3, 3, 3}));
               }),
               Catch::Contains("got input f64 and weight f32"));
}
