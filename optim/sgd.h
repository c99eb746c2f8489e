// Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay,
// exactly as torch.optim.SGD updates. For each parameter p with gradient g:
//
//   g = maximize ? -g : g
//   d = g + weight_decay * p                                   (when weight_decay != 0)
//   when momentum != 0:
//     b = d                                   on the first step
//     b = momentum * b + (1 - dampening) * d  afterwards      (b: state "momentum_buffer")
//     d = nesterov ? d + momentum * b : b
//   p = p - lr * d
#pragma once

#include <vector>

#include <kiln/optim/optimizer.h>

namespace kiln::optim {

/// torch.optim.SGD's arguments, in its order (lr defaults to 1e-3, as PyTorch 2 does).
struct SGDOptions {
  double lr = 1e-3;          ///< learning rate
  double momentum = 0;       ///< momentum factor (0: plain SGD)
  double dampening = 0;      ///< dampening of the momentum's new term
  double weight_decay = 0;   ///< L2 penalty, added to the gradient
  bool nesterov = false;     ///< Nesterov momentum (needs momentum > 0 and dampening 0)
  bool maximize = false;     ///< ascend instead of descend
};

/// torch.optim.SGD: `optim::SGD opt(net->parameters(), {.lr = 0.1, .momentum = 0.9})`.
class SGD : public Optimizer {
 public:
  /// A group of parameters with optional SGDOptions.
  using ParamGroup = optim::ParamGroup<SGDOptions>;

  /// One group of parameters with these options.
  explicit SGD(std::vector<Tensor> params, SGDOptions options = {});
  /// Groups given without options take `defaults`.
  explicit SGD(std::vector<ParamGroup> groups, SGDOptions defaults = {});

  /// Adds a group (one without options takes the defaults).
  void add_param_group(ParamGroup group);
  /// A group's options. Changes take effect at the next step (PyTorch's param_groups[g][...]).
  SGDOptions& options(size_t group);
  /// A group's options, read-only.
  const SGDOptions& options(size_t group) const;
  /// The options groups without their own take.
  const SGDOptions& defaults() const { return defaults_; }

  void step() override;
  double lr(size_t group) const override { return options(group).lr; }
  /// Sets options(group).lr.
  void set_lr(size_t group, double lr) override { options(group).lr = lr; }

 protected:
  Metadata group_options(size_t group) const override;
  void validate_group_options(const Metadata& options, const std::string& where) const override;
  void set_group_options(size_t group, const Metadata& options, const std::string& where) override;
  std::vector<std::string> state_keys() const override { return {"momentum_buffer"}; }

 private:
  SGDOptions defaults_;
  std::vector<SGDOptions> options_;
};

}  // namespace kiln::optim
