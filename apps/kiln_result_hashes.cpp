// kiln-result-hashes: prints a hash of the bits of results that the convolution kernels and a few
// training steps produce, so that a change meant to be bit-identical can be checked as such:
//
//   kiln-result-hashes [--threads N]
//   conv 2x32x32x32->32 f32 1d08992878493b33 6ebf9644fe8c0d7c de0f472b8fc3d57f adbdd8045b9f12df
//   step vgg8:gn:2 d97b0c1aab28009f
//
// Build it before and after a change, run both, and compare the outputs; run it at --threads 1 and
// 2 to see determinism across thread counts. A conv line hashes y, grad_x, grad_weight and
// grad_bias of one forward and backward; a step line hashes the losses of three Adam steps and
// the parameters after them. The hash is 64-bit FNV-1a over the little-endian bytes.
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <kiln/kiln.h>

#include "models.h"

using namespace kiln;

namespace {

constexpr uint64_t kFnvOffset = 1469598103934665603ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

// Folds the bytes of t (f32 or f64) into the running FNV-1a hash.
void mix(uint64_t& hash, const Tensor& t) {
  const Tensor c = t.contiguous();
  const size_t bytes = static_cast<size_t>(c.numel()) * itemsize(c.dtype());
  const auto* p = static_cast<const unsigned char*>(c.raw_data_ptr());
  for (size_t i = 0; i < bytes; ++i) {
    hash ^= p[i];
    hash *= kFnvPrime;
  }
}

// Shapes that reach every path of conv2d: Winograd F(2x2, 3x3) at batch 2, F(4x4, 3x3) at batch 8
// and 32, im2col on small and on odd images, groups, and the deep layers' few-tile case.
struct ConvShape {
  int64_t N, C, H, W, C_out, groups;
};
const std::vector<ConvShape> kConvShapes = {
    {2, 32, 32, 32, 32, 1}, {2, 64, 16, 16, 64, 1},   {2, 128, 8, 8, 128, 1},
    {3, 17, 9, 7, 19, 1},   {1, 16, 5, 5, 16, 1},     {4, 24, 11, 13, 40, 2},
    {32, 256, 8, 8, 256, 1}, {2, 256, 4, 4, 256, 1},  {2, 3, 32, 32, 32, 1},
    {5, 20, 6, 6, 33, 1},   {2, 512, 2, 2, 512, 1},   {8, 64, 32, 32, 64, 1},
    {32, 512, 2, 2, 512, 1},
};

void print_conv_hashes() {
  for (DType dtype : {DType::f32, DType::f64}) {
    manual_seed(7);
    for (const ConvShape& s : kConvShapes) {
      const Tensor x = Tensor::randn({s.N, s.C, s.H, s.W}, dtype);
      const Tensor w = Tensor::randn({s.C_out, s.C / s.groups, 3, 3}, dtype);
      const Tensor b = Tensor::randn({s.C_out}, dtype);
      const kernels::Conv2dParams params{.stride = 1, .padding = 1, .dilation = 1,
                                         .groups = s.groups};
      const Tensor y = kernels::conv2d_forward(x, w, b, params);
      const Tensor gy = Tensor::randn(y.shape(), dtype);
      const auto grads = kernels::conv2d_backward(gy, x, w, params, true, true, true);
      std::printf("conv %ldx%ldx%ldx%ld->%ld %s", static_cast<long>(s.N), static_cast<long>(s.C),
                  static_cast<long>(s.H), static_cast<long>(s.W), static_cast<long>(s.C_out),
                  dtype_name(dtype));
      for (const Tensor* t : {&y, &grads.grad_x, &grads.grad_weight, &grads.grad_bias}) {
        uint64_t hash = kFnvOffset;
        mix(hash, *t);
        std::printf(" %016llx", static_cast<unsigned long long>(hash));
      }
      std::printf("\n");
    }
  }
}

// Three Adam steps of a VGG on random images and labels.
void print_step_hashes() {
  const std::vector<std::pair<std::string, int64_t>> runs = {
      {"vgg8", 2}, {"vgg8", 8}, {"vgg8", 32}, {"vgg16", 2}};
  for (const auto& [model, B] : runs) {
    for (const std::string norm : {"gn", "bn"}) {
      manual_seed(11);
      auto net = apps::make_vgg(apps::vgg_blocks(model), norm);
      net->train();
      optim::Adam opt(net->parameters(), optim::AdamOptions{.lr = 1e-3});
      uint64_t hash = kFnvOffset;
      for (int step = 0; step < 3; ++step) {
        const Tensor x = Tensor::randn({B, 3, 32, 32});
        Tensor labels = Tensor::empty({B}, DType::i64);
        for (int64_t i = 0; i < B; ++i)
          labels.data_ptr<int64_t>()[i] = static_cast<int64_t>(default_generator().next_below(10));
        opt.zero_grad(/*set_to_none=*/true);
        Tensor loss = nn::functional::cross_entropy(net->forward(x), labels);
        loss.backward();
        opt.step();
        mix(hash, loss);
      }
      for (const Tensor& p : net->parameters()) mix(hash, p);
      std::printf("step %s:%s:%ld %016llx\n", model.c_str(), norm.c_str(), static_cast<long>(B),
                  static_cast<unsigned long long>(hash));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Prints hashes of conv2d results and of a few training steps, to compare builds."};
  int threads = 2;
  app.add_option("--threads", threads, "Threads in kiln's pool (default 2)")
      ->check(CLI::Range(1, 4096));
  CLI11_PARSE(app, argc, argv);
  try {
    set_num_threads(threads);
    // Hashes match only between runs on the same OpenBLAS kernels (see kiln::blas_kernels).
    std::printf("blas %s\n", blas_kernels().c_str());
    print_conv_hashes();
    print_step_hashes();
  } catch (const Error& e) {
    std::fprintf(stderr, "kiln-result-hashes: %s\n", e.what());
    return 1;
  }
  return 0;
}
