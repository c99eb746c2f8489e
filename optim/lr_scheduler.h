// Learning-rate schedulers, as torch.optim.lr_scheduler defines them. Each is a closed form of
// the step count t (last_epoch) and a group's base rate, so a resumed run sets exactly the rates a
// straight run would:
//
//   StepLR             lr = base * gamma^floor(t / step_size)
//   MultiStepLR        lr = base * gamma^(number of milestones <= t)
//   CosineAnnealingLR  lr = eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2
//   LinearLR           lr = base * (start + (end - start) * min(t, total_iters) / total_iters)
//
// LinearLR with start_factor < 1 is the linear warm-up. It composes with the others the two ways
// PyTorch composes schedulers:
//
//   auto warmup = std::make_shared<optim::LinearLR>(opt, 0.01, 1.0, 5);
//   auto cosine = std::make_shared<optim::CosineAnnealingLR>(opt, 95);
//   optim::SequentialLR sched(opt, {warmup, cosine}, {5});   // warm up 5 steps, then cosine
//   optim::ChainedScheduler both(opt, {warmup, step_lr});     // lr = warm-up factor * step decay
//
// Step the outer scheduler only; the inner ones are its parts and refuse step() themselves.
//
// base_lrs come from each group's initial_lr (set by the first scheduler to attach, from the lr at
// that time), so every scheduler of an optimizer shares one base, as in PyTorch. A constructor
// sets the rates for t = 0; step() advances t and sets the rates for it. state_dict() holds t, the
// base rates and the settings; load_state_dict() restores t and the base rates and checks that the
// settings match this scheduler's (a resumed run must be built the same way). It does not touch
// the optimizer's rates: the optimizer's own state restores those.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <kiln/core/safetensors.h>
#include <kiln/optim/optimizer.h>

namespace kiln::optim {

/// The base of the schedulers: a closed-form rate of the step count t, set on the optimizer's
/// groups by step().
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  /// Advances t by one and sets every group's learning rate for it.
  void step();
  /// t: how many times step() has run.
  int64_t last_epoch() const { return last_epoch_; }
  /// Each group's base rate (its initial_lr).
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  /// The rates the last step (or the constructor) set, per group (PyTorch's get_last_lr()).
  const std::vector<double>& last_lr() const { return last_lr_; }

  /// The rate for a group with base rate `base_lr` after t steps: the schedule's closed form.
  virtual double lr_at(int64_t t, double base_lr) const = 0;
  /// "StepLR", "CosineAnnealingLR", ...
  virtual std::string type_name() const = 0;

  /// t, the base rates and the settings, as strings.
  Metadata state_dict() const;
  /// Restores t and the base rates; everything is checked first and nothing changes on error.
  void load_state_dict(const Metadata& state);
  /// The checks of load_state_dict without the load.
  void validate_state_dict(const Metadata& state) const;

 protected:
  /// Takes the base rates from the optimizer's groups (setting initial_lr if unset).
  explicit LRScheduler(Optimizer& optimizer);
  /// The constructor's last act in each concrete scheduler: sets the rates for t = 0.
  void start();
  /// The settings that define the schedule ("step_size", "gamma", ...), saved and checked on load.
  virtual Metadata settings() const = 0;
  /// Composite schedulers: their parts, whose own state is saved under "schedulers.<i>.".
  virtual std::vector<std::shared_ptr<LRScheduler>> parts() const { return {}; }
  /// Takes `part` into a composite: it stops accepting step() of its own.
  void adopt(LRScheduler& part, const std::string& owner);
  /// The optimizer whose rates this scheduler sets.
  Optimizer& optimizer() { return optimizer_; }

 private:
  void validate(const Metadata& state, const std::string& where) const;
  void apply(const Metadata& state);

  Optimizer& optimizer_;
  int64_t last_epoch_ = 0;
  std::vector<double> base_lrs_;
  std::vector<double> last_lr_;
  std::string owner_;  // the composite that drives this scheduler, if any
};

/// Decays by gamma every step_size steps.
class StepLR : public LRScheduler {
 public:
  /// `optim::StepLR sched(opt, 30, 0.1)`: a tenth of the rate every 30 steps.
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);
  double lr_at(int64_t t, double base_lr) const override;
  std::string type_name() const override { return "StepLR"; }

 protected:
  Metadata settings() const override;

 private:
  int64_t step_size_;
  double gamma_;
};

/// Decays by gamma at each milestone (a milestone listed twice decays twice, as in PyTorch).
class MultiStepLR : public LRScheduler {
 public:
  /// `optim::MultiStepLR sched(opt, {30, 80})`: a tenth at step 30, a hundredth from step 80.
  MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma = 0.1);
  double lr_at(int64_t t, double base_lr) const override;
  std::string type_name() const override { return "MultiStepLR"; }

 protected:
  Metadata settings() const override;

 private:
  std::vector<int64_t> milestones_;  // sorted
  double gamma_;
};

/// Half a cosine from base down to eta_min over T_max steps (and back up after, periodically).
class CosineAnnealingLR : public LRScheduler {
 public:
  /// `optim::CosineAnnealingLR sched(opt, total_steps)`.
  CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min = 0);
  double lr_at(int64_t t, double base_lr) const override;
  std::string type_name() const override { return "CosineAnnealingLR"; }

 protected:
  Metadata settings() const override;

 private:
  int64_t T_max_;
  double eta_min_;
};

/// Scales the rate by a factor going linearly from start_factor to end_factor over total_iters
/// steps, then holding. PyTorch's defaults: 1/3, 1, 5.
class LinearLR : public LRScheduler {
 public:
  /// `optim::LinearLR warmup(opt, 0.01, 1.0, 5)`: from 1% to the full rate over 5 steps.
  explicit LinearLR(Optimizer& optimizer, double start_factor = 1.0 / 3, double end_factor = 1.0,
                    int64_t total_iters = 5);
  double lr_at(int64_t t, double base_lr) const override;
  std::string type_name() const override { return "LinearLR"; }

 protected:
  Metadata settings() const override;

 private:
  double start_factor_, end_factor_;
  int64_t total_iters_;
};

/// Runs schedulers one after another: the i-th from milestone i-1 on, restarted at its own t = 0.
class SequentialLR : public LRScheduler {
 public:
  /// `optim::SequentialLR sched(opt, {warmup, cosine}, {5})`: milestones.size() must be one less
  /// than schedulers.size().
  SequentialLR(Optimizer& optimizer, std::vector<std::shared_ptr<LRScheduler>> schedulers,
               std::vector<int64_t> milestones);
  double lr_at(int64_t t, double base_lr) const override;
  std::string type_name() const override { return "SequentialLR"; }

 protected:
  Metadata settings() const override;
  std::vector<std::shared_ptr<LRScheduler>> parts() const override { return schedulers_; }

 private:
  std::vector<std::shared_ptr<LRScheduler>> schedulers_;
  std::vector<int64_t> milestones_;
};

/// Runs schedulers at the same time, each transforming the rate the previous one produced:
/// lr = s_n(t, ... s_2(t, s_1(t, base))). For the multiplicative schedules this is the product of
/// their factors, which is what torch.optim.lr_scheduler.ChainedScheduler computes.
class ChainedScheduler : public LRScheduler {
 public:
  /// `optim::ChainedScheduler sched(opt, {warmup, step_lr})`.
  ChainedScheduler(Optimizer& optimizer, std::vector<std::shared_ptr<LRScheduler>> schedulers);
  double lr_at(int64_t t, double base_lr) const override;
  std::string type_name() const override { return "ChainedScheduler"; }

 protected:
  Metadata settings() const override;
  std::vector<std::shared_ptr<LRScheduler>> parts() const override { return schedulers_; }

 private:
  std::vector<std::shared_ptr<LRScheduler>> schedulers_;
};

}  // namespace kiln::optim
