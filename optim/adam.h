// Adam (Kingma and Ba, arXiv 1412.6980) and AdamW (Loshchilov and Hutter, arXiv 1711.05101), as
// torch.optim.Adam and torch.optim.AdamW update. For each parameter p with gradient g, at step t:
//
//   g = maximize ? -g : g
//   Adam:  g = g + weight_decay * p                  (L2 penalty, folded into the gradient)
//   AdamW: p = p * (1 - lr * weight_decay)           (decoupled decay, before the step)
//   m = beta1 * m + (1 - beta1) * g                  (state "exp_avg")
//   v = beta2 * v + (1 - beta2) * g * g              (state "exp_avg_sq")
//   v_max = max(v_max, v)                            (amsgrad only; state "max_exp_avg_sq")
//   denom = sqrt(amsgrad ? v_max : v) / sqrt(1 - beta2^t) + eps
//   p = p - (lr / (1 - beta1^t)) * m / denom
//
// t counts this parameter's steps (state "step", an i64 scalar). The update is one fused pass per
// parameter, in PyTorch's order of operations, so f32 trajectories track PyTorch's closely.
#pragma once

#include <array>
#include <optional>
#include <vector>

#include <kiln/optim/optimizer.h>

namespace kiln::optim {

/// torch.optim.Adam's arguments, in its order. AdamW takes the same options.
struct AdamOptions {
  double lr = 1e-3;                            ///< learning rate
  std::array<double, 2> betas = {0.9, 0.999};  ///< decay rates of the two moment averages
  double eps = 1e-8;                           ///< added to the denominator
  /// Unset means the optimizer's PyTorch default: 0 for Adam, 1e-2 for AdamW. An explicit value,
  /// 0 included, is always used as given.
  std::optional<double> weight_decay = std::nullopt;
  bool amsgrad = false;   ///< divide by the running maximum of v (AMSGrad)
  bool maximize = false;  ///< ascend instead of descend
};

/// torch.optim.Adam: `optim::Adam opt(net->parameters(), {.lr = 2.5e-4})`.
class Adam : public Optimizer {
 public:
  /// A group of parameters with optional AdamOptions.
  using ParamGroup = optim::ParamGroup<AdamOptions>;

  /// One group of parameters with these options.
  explicit Adam(std::vector<Tensor> params, AdamOptions options = {});
  /// Groups given without options take `defaults`.
  explicit Adam(std::vector<ParamGroup> groups, AdamOptions defaults = {});

  /// Adds a group (one without options takes the defaults).
  void add_param_group(ParamGroup group);
  /// A group's options (weight_decay always set). Changes take effect at the next step.
  AdamOptions& options(size_t group);
  /// A group's options, read-only.
  const AdamOptions& options(size_t group) const;
  /// The defaults, with weight_decay resolved.
  const AdamOptions& defaults() const { return defaults_; }

  void step() override;
  double lr(size_t group) const override { return options(group).lr; }
  /// Sets options(group).lr.
  void set_lr(size_t group, double lr) override { options(group).lr = lr; }

 protected:
  /// For AdamW: the name, whether decay is decoupled, and the default weight decay.
  Adam(std::vector<ParamGroup> groups, AdamOptions defaults, const char* type_name,
       bool decoupled_weight_decay, double default_weight_decay);

  Metadata group_options(size_t group) const override;
  void validate_group_options(const Metadata& options, const std::string& where) const override;
  void set_group_options(size_t group, const Metadata& options, const std::string& where) override;
  std::vector<std::string> state_keys() const override {
    return {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  }

 private:
  AdamOptions resolve(AdamOptions options) const;
  AdamOptions parse_options(const Metadata& m, const std::string& where) const;

  bool decoupled_weight_decay_;
  double default_weight_decay_;
  AdamOptions defaults_;
  std::vector<AdamOptions> options_;
};

/// Adam with decoupled weight decay. weight_decay defaults to 1e-2 when left unset, as in PyTorch:
/// `AdamW(params, {.lr = 1e-3})` decays by 1e-2; `{.weight_decay = 0}` turns decay off.
class AdamW : public Adam {
 public:
  /// One group of parameters with these options.
  explicit AdamW(std::vector<Tensor> params, AdamOptions options = {});
  /// Groups given without options take `defaults`.
  explicit AdamW(std::vector<ParamGroup> groups, AdamOptions defaults = {});
};

}  // namespace kiln::optim
