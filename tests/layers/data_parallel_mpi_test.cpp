// Data-parallel training on 2 ranks (kiln_mpi_tests, under mpirun): with GroupNorm, 2 ranks of
// batch B, each loading its DistributedSampler shard, take the same steps as one process of batch
// 2B on the same images; the same holds for SyncBatchNorm; gradients travel in a few buckets;
// the initial weights come from rank 0.
//
// Every rank computes the one-process reference itself, from the same seeds.
#include <catch2/catch.hpp>
#include <kiln/kiln.h>

#include <cstdio>

#include "../test_helpers.h"
#include "models.h"

using namespace kiln;
using kiln::testing::relative_error;

namespace {

// Every parameter's gradient, one after the other.
Tensor flat_gradient(const nn::Module& net) {
  std::vector<double> all;
  for (const Tensor& p : net.parameters()) {
    const std::vector<double> g = p.grad().to_vector<double>();
    all.insert(all.end(), g.begin(), g.end());
  }
  return Tensor::from_vector(all);
}

// conv 3x3 -> GroupNorm -> ReLU -> max pool -> conv 3x3 -> GroupNorm -> ReLU -> global average
// pool -> linear, all in float64, from the functional ops: [N, 3, 8, 8] -> [N, 10].
struct SmallGroupNormNet : nn::Module {
  Tensor conv1_w, conv1_b, gn1_w, gn1_b, conv2_w, conv2_b, gn2_w, gn2_b, fc_w, fc_b;
  explicit SmallGroupNormNet(uint64_t seed) {
    Generator gen(seed);
    auto randn = [&](const Shape& shape, double scale) {
      return Tensor::randn(shape, DType::f64, &gen) * scale;
    };
    conv1_w = register_parameter("conv1_w", randn({8, 3, 3, 3}, 0.3));
    conv1_b = register_parameter("conv1_b", randn({8}, 0.1));
    gn1_w = register_parameter("gn1_w", randn({8}, 0.1) + 1.0);
    gn1_b = register_parameter("gn1_b", randn({8}, 0.1));
    conv2_w = register_parameter("conv2_w", randn({8, 8, 3, 3}, 0.2));
    conv2_b = register_parameter("conv2_b", randn({8}, 0.1));
    gn2_w = register_parameter("gn2_w", randn({8}, 0.1) + 1.0);
    gn2_b = register_parameter("gn2_b", randn({8}, 0.1));
    fc_w = register_parameter("fc_w", randn({10, 8}, 0.3));
    fc_b = register_parameter("fc_b", randn({10}, 0.1));
  }
  Tensor forward(const Tensor& x) override {
    namespace F = nn::functional;
    Tensor h = F::group_norm(F::conv2d(x, conv1_w, conv1_b, 1, 1), 4, gn1_w, gn1_b).relu();
    h = F::max_pool2d(h, 2);
    h = F::group_norm(F::conv2d(h, conv2_w, conv2_b, 1, 1), 4, gn2_w, gn2_b).relu();
    return F::linear(F::adaptive_avg_pool2d(h, 1).flatten(1), fc_w, fc_b);
  }
};

struct Trajectory {
  std::vector<std::vector<Tensor>> grads;  // per step, per parameter (after averaging)
  std::vector<Tensor> weights;             // after the last step
};

// `steps` SGD steps of `net` at `batch` images per rank, on the loader's images (flipped at
// random, so the augmentation is part of what must match). With `averager`, gradients are
// averaged over the ranks before each step.
Trajectory train(nn::Module& net, data::DataLoader& loader, int steps,
                 dist::GradientAverager* averager) {
  optim::SGD opt(net.parameters(), optim::SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-3});
  Trajectory out;
  for (int step = 0; step < steps; ++step) {
    std::optional<data::Batch> b = loader.next();
    if (!b) b = loader.next();  // the next epoch
    REQUIRE(b.has_value());
    opt.zero_grad();
    nn::functional::cross_entropy(net.forward(b->images.to(DType::f64)), b->labels).backward();
    if (averager) averager->average();
    std::vector<Tensor> grads;
    for (const Tensor& p : net.parameters()) grads.push_back(p.grad().clone());
    out.grads.push_back(grads);
    opt.step();
  }
  for (const Tensor& p : net.parameters()) out.weights.push_back(p.detach().clone());
  return out;
}

}  // namespace

TEST_CASE("GroupNorm: 2 ranks of batch B take the steps of 1 process of batch 2B, float64",
          "[mpi][data_parallel]") {
  // 20 images, batch 2 per rank: 5 steps per epoch, 7 steps cross an epoch boundary (reshuffle).
  const data::InMemoryImages images = data::random_images(20, {3, 8, 8}, 10, /*seed=*/11);
  const auto flip = std::make_shared<data::RandomHorizontalFlip>();
  const int64_t B = 2;
  const int steps = 7;

  // One process, batch 2B, the loader's own shuffle.
  SmallGroupNormNet single(1);
  data::DataLoader single_loader(images, {.batch_size = 2 * B, .shuffle = true, .drop_last = true,
                                          .seed = 5, .transform = flip});
  const Trajectory expected = train(single, single_loader, steps, nullptr);

  // 2 ranks, batch B each. Rank 1 starts from other weights: rank 0's reach it.
  SmallGroupNormNet net(dist::rank() == 0 ? 1 : 99);
  dist::GradientAverager averager(net);
  auto sampler = std::make_shared<data::DistributedSampler>(
      images, data::DistributedSamplerOptions{.num_replicas = 2, .rank = dist::rank(), .seed = 5});
  data::DataLoader loader(images, {.batch_size = B, .sampler = sampler, .drop_last = true,
                                   .seed = 5, .transform = flip});
  REQUIRE(loader.num_batches() == single_loader.num_batches());
  const Trajectory got = train(net, loader, steps, &averager);

  double worst_grad = 0, worst_weight = 0;
  for (int step = 0; step < steps; ++step)
    for (size_t i = 0; i < expected.grads[step].size(); ++i)
      worst_grad = std::max(worst_grad, relative_error(got.grads[step][i], expected.grads[step][i]));
  for (size_t i = 0; i < expected.weights.size(); ++i)
    worst_weight = std::max(worst_weight, relative_error(got.weights[i], expected.weights[i]));
  if (dist::rank() == 0)
    std::printf("GroupNorm net (float64), 2 ranks x batch %lld against 1 process x batch %lld, %d "
                "SGD steps: max relative difference of gradients %.3g, of weights %.3g\n",
                static_cast<long long>(B), static_cast<long long>(2 * B), steps, worst_grad, worst_weight);
  REQUIRE(worst_grad < 1e-6);
  REQUIRE(worst_weight < 1e-6);
  // And the ranks agree to the bit.
  for (const Tensor& w : got.weights) {
    Tensor low = w.clone(), high = w.clone();
    dist::all_reduce(low, dist::ReduceOp::min);
    dist::all_reduce(high, dist::ReduceOp::max);
    kiln::testing::require_equal(low, high);
  }
}

TEST_CASE("vgg8: 2 ranks of batch 2 against 1 process of batch 4, float32, gn, syncbn and bn",
          "[mpi][data_parallel]") {
  const int r = dist::rank();
  Generator gen(21);
  const Tensor x_all = Tensor::randn({4, 3, 32, 32}, DType::f32, &gen);
  const Tensor labels_all = Tensor::from_vector(std::vector<int64_t>{1, 7, 3, 3});
  const Tensor x = x_all.slice(0, 2 * r, 2 * r + 2).contiguous();
  const Tensor labels = labels_all.slice(0, 2 * r, 2 * r + 2).contiguous();
  double errors[3] = {0, 0, 0};
  const char* norms[3] = {"gn", "syncbn", "bn"};
  for (int k = 0; k < 3; ++k) {
    INFO("norm " << norms[k]);
    // The reference: BatchNorm2d for syncbn (they are the same on one process).
    manual_seed(4);
    auto single = apps::make_vgg(apps::vgg_blocks("vgg8"), k == 1 ? "bn" : norms[k]);
    manual_seed(4);
    auto net = apps::make_vgg(apps::vgg_blocks("vgg8"), norms[k]);
    dist::GradientAverager averager(*net);
    nn::functional::cross_entropy(single->forward(x_all), labels_all).backward();
    nn::functional::cross_entropy(net->forward(x), labels).backward();
    averager.average();
    // Over the whole gradient: some tensors' gradients are zero up to rounding (the bias of a
    // convolution followed by GroupNorm with one channel per group), so only the whole has a scale.
    errors[k] = relative_error(flat_gradient(*net), flat_gradient(*single));
    // BatchNorm's running statistics: rank 0's, on every rank (broadcast_buffers).
    for (const Tensor& b : net->buffers()) {
      Tensor low = b.to(DType::f64), high = b.to(DType::f64);
      dist::all_reduce(low, dist::ReduceOp::min);
      dist::all_reduce(high, dist::ReduceOp::max);
      kiln::testing::require_equal(low, high);
    }
  }
  if (r == 0)
    std::printf("vgg8 gradients, 2 ranks x batch 2 against 1 process x batch 4 (float32), "
                "max |difference| / max |reference| over all parameters' gradients:\n"
                "  gn %.3g, syncbn %.3g, bn (each rank normalizing its own 2 images) %.3g\n",
                errors[0], errors[1], errors[2]);
  REQUIRE(errors[0] < 1e-4);
  REQUIRE(errors[1] < 1e-4);
  REQUIRE(errors[2] > 1e-2);
}

TEST_CASE("GradientAverager: a few buckets, the same result at any bucket size",
          "[mpi][data_parallel]") {
  manual_seed(8);
  auto a = apps::make_vgg(apps::vgg_blocks("vgg8"), "gn");
  manual_seed(8);
  auto b = apps::make_vgg(apps::vgg_blocks("vgg8"), "gn");
  dist::GradientAverager by_default(*a);
  dist::GradientAverager per_tensor(*b, {.bucket_bytes = 1});
  const int64_t params = static_cast<int64_t>(a->parameters().size());
  // vgg8 holds 1.17M parameters (4.7 MB): 2 buckets of at most 4 MiB, instead of 18 tensors.
  REQUIRE(by_default.num_buckets() == 2);
  REQUIRE(per_tensor.num_buckets() == params);
  int64_t values = 0;
  for (int64_t n : by_default.bucket_numels()) values += n;
  int64_t expected_values = params;  // one presence flag per parameter
  for (const Tensor& p : a->parameters()) expected_values += p.numel();
  REQUIRE(values == expected_values);

  Generator gen(30 + static_cast<uint64_t>(dist::rank()));
  const Tensor x = Tensor::randn({2, 3, 32, 32}, DType::f32, &gen);
  const Tensor labels = Tensor::from_vector(std::vector<int64_t>{2, 9});
  nn::functional::cross_entropy(a->forward(x), labels).backward();
  nn::functional::cross_entropy(b->forward(x), labels).backward();
  const int64_t before = dist::collective_count();
  by_default.average();
  // One all-reduce per bucket; GroupNorm has no buffers to broadcast.
  REQUIRE(dist::collective_count() - before == 2);
  per_tensor.average();
  const auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) kiln::testing::require_equal(pa[i].grad(), pb[i].grad());
}

TEST_CASE("GradientAverager: a parameter without a gradient on a rank counts as zeros",
          "[mpi][data_parallel]") {
  auto used = std::make_shared<nn::Linear>(3, 2), unused = std::make_shared<nn::Linear>(3, 2);
  nn::Sequential both(used, unused);
  dist::GradientAverager averager(both);
  // Rank 0 has a gradient for used.weight only; rank 1 has none at all.
  if (dist::rank() == 0) used->weight.set_grad(Tensor::full({2, 3}, 4.0));
  averager.average();
  REQUIRE(used->weight.grad().defined());
  REQUIRE(used->weight.grad().to_vector<float>() == std::vector<float>(6, 2.0f));
  REQUIRE_FALSE(used->bias.grad().defined());
  REQUIRE_FALSE(unused->weight.grad().defined());
}

TEST_CASE("broadcast_module: rank 0's weights to all, and a clear error for different models",
          "[mpi][data_parallel]") {
  manual_seed(static_cast<uint64_t>(dist::rank()));
  nn::Conv2d conv(3, 4, 3);
  dist::broadcast_module(conv);
  Tensor low = conv.weight.detach().clone(), high = conv.weight.detach().clone();
  dist::all_reduce(low, dist::ReduceOp::min);
  dist::all_reduce(high, dist::ReduceOp::max);
  kiln::testing::require_equal(low, high);

  nn::Linear fc(3, dist::rank() == 0 ? 4 : 5);
  REQUIRE_THAT(kiln::testing::error_text([&] { dist::broadcast_module(fc); }),
               Catch::Contains("dist::broadcast_module: the ranks' Linear modules differ"));
}
