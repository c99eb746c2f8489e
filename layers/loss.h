// Losses: cross entropy (fused with log_softmax), negative log likelihood, mean squared error.
//
//   Tensor loss = nn::functional::cross_entropy(logits, labels);          // logits [N, C], labels i64 [N]
//   Tensor ce = nn::functional::cross_entropy(logits, labels, {.label_smoothing = 0.1});
//   nn::CrossEntropyLoss criterion({.reduction = nn::Reduction::sum, .ignore_index = 0});
//   Tensor l = criterion.forward(logits, labels);
//
// Class-index losses also take a K-dimensional case, as PyTorch: logits [N, C, d1, ..., dK] with
// labels [N, d1, ..., dK] (per-pixel classification). Class weights are not supported.
#pragma once

#include <cstdint>
#include <string>

#include <kiln/core/tensor.h>
#include <kiln/layers/module.h>

namespace kiln::nn {

/// How per-element losses combine: kept as they are, averaged, or summed.
enum class Reduction { none, mean, sum };

/// cross_entropy()'s options, in PyTorch's argument order: `{.label_smoothing = 0.1}`.
struct CrossEntropyOptions {
  Reduction reduction = Reduction::mean;  ///< none, mean (over counted positions) or sum
  /// eps in [0, 1]: the target becomes (1 - eps) one_hot(label) + eps / C.
  double label_smoothing = 0.0;
  /// Positions with this label contribute no loss and no gradient, and are not counted by mean.
  int64_t ignore_index = -100;
};

/// nll_loss()'s options, in PyTorch's argument order.
struct NLLLossOptions {
  Reduction reduction = Reduction::mean;  ///< none, mean (over counted positions) or sum
  int64_t ignore_index = -100;  ///< positions with this label contribute nothing
};

}  // namespace kiln::nn

namespace kiln::kernels {

// Shapes: x (logits or log-probabilities) is [N, C, S] contiguous, S = d1 * ... * dK (1 for
// [N, C]); labels are i64 [N, S] contiguous, each in [0, C) or equal to ignore_index (checked by
// the callers). The loss has x's dtype: [N, S] for Reduction::none, else a scalar.

/// What cross_entropy_forward() returns.
struct CrossEntropyResult {
  Tensor loss;       ///< [N, S] for Reduction::none, else a scalar
  Tensor logsumexp;  ///< f64 [N, S]: log sum_c exp(x[n, c, s]), for backward
  int64_t count;     ///< positions whose label is not ignore_index
};
/// loss = logsumexp(x) - sum_c q_c x_c with q = (1 - eps) one_hot(label) + eps / C.
CrossEntropyResult cross_entropy_forward(const Tensor& logits, const Tensor& labels,
                                         const nn::CrossEntropyOptions& options);
/// grad_x[n, c, s] = scale (softmax(x)[n, c, s] - q_c), with scale from grad_loss and the
/// reduction (1 / count for mean); 0 at ignored positions.
Tensor cross_entropy_backward(const Tensor& grad_loss, const Tensor& logits, const Tensor& labels,
                              const Tensor& logsumexp, int64_t count,
                              const nn::CrossEntropyOptions& options);

/// loss = -x[n, label, s]. Returns the loss and sets count.
Tensor nll_loss_forward(const Tensor& log_probs, const Tensor& labels,
                        const nn::NLLLossOptions& options, int64_t& count);
/// grad_x[n, label, s] = -scale; 0 elsewhere.
Tensor nll_loss_backward(const Tensor& grad_loss, const Shape& x_shape, const Tensor& labels,
                         int64_t count, const nn::NLLLossOptions& options);

}  // namespace kiln::kernels

namespace kiln::nn {

namespace functional {
/// Cross entropy of logits [N, C] (or [N, C, d1, ...]) against i64 labels [N] (or [N, d1, ...]),
/// computed from log_softmax(logits) in one fused kernel.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels,
                     const CrossEntropyOptions& options = {});
/// Negative log likelihood of log-probabilities [N, C] (or [N, C, d1, ...]).
Tensor nll_loss(const Tensor& log_probs, const Tensor& labels, const NLLLossOptions& options = {});
/// (input - target)^2, reduced. input and target have the same shape.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
}  // namespace functional

/// torch.nn.CrossEntropyLoss as a module: `criterion(logits, labels)`.
class CrossEntropyLoss : public Module {
 public:
  /// `nn::CrossEntropyLoss({.label_smoothing = 0.1})`.
  explicit CrossEntropyLoss(CrossEntropyOptions options = {}) : options(options) {}
  using Module::forward;
  using Module::operator();
  /// functional::cross_entropy(logits, labels, options).
  Tensor forward(const Tensor& logits, const Tensor& labels);
  /// The same as forward().
  Tensor operator()(const Tensor& logits, const Tensor& labels) { return forward(logits, labels); }
  CrossEntropyOptions options;  ///< reduction, label smoothing, ignored label
};

/// torch.nn.NLLLoss as a module: `criterion(log_probs, labels)`.
class NLLLoss : public Module {
 public:
  /// `nn::NLLLoss({.ignore_index = 0})`.
  explicit NLLLoss(NLLLossOptions options = {}) : options(options) {}
  using Module::forward;
  using Module::operator();
  /// functional::nll_loss(log_probs, labels, options).
  Tensor forward(const Tensor& log_probs, const Tensor& labels);
  /// The same as forward().
  Tensor operator()(const Tensor& log_probs, const Tensor& labels) { return forward(log_probs, labels); }
  NLLLossOptions options;  ///< reduction and ignored label
};

/// torch.nn.MSELoss as a module: `criterion(input, target)`.
class MSELoss : public Module {
 public:
  /// `nn::MSELoss(nn::Reduction::sum)`.
  explicit MSELoss(Reduction reduction = Reduction::mean) : reduction(reduction) {}
  using Module::forward;
  using Module::operator();
  /// functional::mse_loss(input, target, reduction).
  Tensor forward(const Tensor& input, const Tensor& target);
  /// The same as forward().
  Tensor operator()(const Tensor& input, const Tensor& target) { return forward(input, target); }
  Reduction reduction;  ///< none, mean or sum
};

}  // namespace kiln::nn
