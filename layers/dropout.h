// Dropout: in training, zeroes each element with probability p and scales the rest by 1 / (1 - p);
// in eval mode, the identity.
//
//   auto dp = std::make_shared<nn::Dropout>(0.5);             // draws from default_generator()
//   Generator gen(42);
//   auto seeded = std::make_shared<nn::Dropout>(0.1, &gen);   // draws from gen (kept by pointer)
#pragma once

#include <cstdint>
#include <string>

#include <kiln/core/generator.h>
#include <kiln/core/tensor.h>
#include <kiln/layers/module.h>

namespace kiln::kernels {

/// What dropout_forward() returns.
struct DropoutResult {
  Tensor y;     ///< x * mask
  Tensor mask;  ///< 1 / (1 - p) where kept, 0 where dropped; x's shape and dtype
};
/// Element i (row-major) is kept when u_i >= p, with u_i = w / 2^32 and w word i % 4 of Philox
/// block first_block + i / 4 under `seed`. The mask depends on (seed, first_block, i) only: the
/// same at any thread count, and the same for f32 and f64.
DropoutResult dropout_forward(const Tensor& x, double p, uint64_t seed, uint64_t first_block);
/// grad_x = grad_y * mask
Tensor dropout_backward(const Tensor& grad_y, const Tensor& mask);

}  // namespace kiln::kernels

namespace kiln::nn {

namespace functional {
/// In training, x * mask with mask_i = Bernoulli(1 - p) / (1 - p), drawn from `gen` (the default
/// generator when null); otherwise, and when p == 0, x itself. Draws ceil(numel / 4) Philox blocks.
Tensor dropout(const Tensor& x, double p = 0.5, bool training = true, Generator* gen = nullptr);
}  // namespace functional

/// torch.nn.Dropout: zeroes elements with probability p in training, the identity in eval mode.
class Dropout : public Module {
 public:
  /// p in [0, 1]. `generator` (not owned; must outlive the module) defaults to default_generator().
  explicit Dropout(double p = 0.5, Generator* generator = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  const double p;        ///< the probability of zeroing an element
  Generator* generator;  ///< where the masks are drawn from (not owned)
};

}  // namespace kiln::nn
