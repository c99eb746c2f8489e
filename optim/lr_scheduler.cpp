#include <kiln/optim/lr_scheduler.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include <kiln/optim/state_format.h>

namespace kiln::optim {

using namespace state_format;

// ---- LRScheduler -----------------------------------------------------------------------------------

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer) {
  for (size_t g = 0; g < optimizer.num_param_groups(); ++g) {
    if (!optimizer.initial_lr(g)) optimizer.set_initial_lr(g, optimizer.lr(g));
    base_lrs_.push_back(*optimizer.initial_lr(g));
  }
}

void LRScheduler::start() {
  last_lr_.clear();
  for (size_t g = 0; g < base_lrs_.size(); ++g) {
    last_lr_.push_back(lr_at(last_epoch_, base_lrs_[g]));
    optimizer_.set_lr(g, last_lr_.back());
  }
}

void LRScheduler::step() {
  KILN_CHECK(owner_.empty(), type_name(), ": this scheduler is a part of a ", owner_,
             "; step the ", owner_, " instead");
  KILN_CHECK(base_lrs_.size() == optimizer_.num_param_groups(), type_name(), ": the optimizer has ",
             optimizer_.num_param_groups(), " parameter groups, but the scheduler was made for ",
             base_lrs_.size(), "; make the scheduler after adding every group");
  ++last_epoch_;
  start();
}

void LRScheduler::adopt(LRScheduler& part, const std::string& owner) {
  KILN_CHECK(&part.optimizer_ == &optimizer_, owner, ": every scheduler must drive the same optimizer");
  KILN_CHECK(part.owner_.empty(), owner, ": a ", part.type_name(), " is already part of a ",
             part.owner_);
  part.owner_ = owner;
}

Metadata LRScheduler::state_dict() const {
  Metadata out = settings();
  out["type"] = type_name();
  out["last_epoch"] = format_int(last_epoch_);
  out["base_lrs"] = format_doubles(base_lrs_);
  const auto children = parts();
  if (!children.empty()) {
    out["schedulers"] = format_uint(children.size());
    for (size_t i = 0; i < children.size(); ++i)
      add_prefix(out, children[i]->state_dict(), "schedulers." + std::to_string(i) + ".");
  }
  return out;
}

void LRScheduler::validate(const Metadata& state, const std::string& where) const {
  const std::string& type = read_text(state, "type", where);
  KILN_CHECK(type == type_name(), where, "type: the state is a ", type, "'s, but this is a ",
             type_name());
  for (const auto& [key, value] : settings()) {
    const std::string& saved = read_text(state, key, where);
    KILN_CHECK(saved == value, where, key, ": the saved ", type_name(), " has ", key, " ", saved,
               ", but this one has ", value, "; build the scheduler as the saved run did");
  }
  KILN_CHECK(read_int(state, "last_epoch", where) >= 0, where, "last_epoch: must be >= 0");
  const std::vector<double> base = read_doubles(state, "base_lrs", where);
  KILN_CHECK(base.size() == base_lrs_.size(), where, "base_lrs: the state has ", base.size(),
             " parameter groups, but this scheduler's optimizer has ", base_lrs_.size());
  const auto children = parts();
  if (!children.empty()) {
    const uint64_t n = read_uint(state, "schedulers", where);
    KILN_CHECK(n == children.size(), where, "schedulers: the state has ", n,
               " schedulers, but this ", type_name(), " has ", children.size());
    for (size_t i = 0; i < children.size(); ++i) {
      const std::string prefix = "schedulers." + std::to_string(i) + ".";
      children[i]->validate(strip_prefix(state, prefix), where + prefix);
    }
  }
}

void LRScheduler::apply(const Metadata& state) {
  last_epoch_ = read_int(state, "last_epoch", "");
  base_lrs_ = read_doubles(state, "base_lrs", "");
  last_lr_.clear();
  for (double base : base_lrs_) last_lr_.push_back(lr_at(last_epoch_, base));
  const auto children = parts();
  for (size_t i = 0; i < children.size(); ++i)
    children[i]->apply(strip_prefix(state, "schedulers." + std::to_string(i) + "."));
}

void LRScheduler::validate_state_dict(const Metadata& state) const {
  validate(state, "scheduler state: ");
}

void LRScheduler::load_state_dict(const Metadata& state) {
  validate_state_dict(state);
  apply(state);
}

// ---- the schedules ---------------------------------------------------------------------------------

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  KILN_CHECK(step_size >= 1, "StepLR: step_size must be >= 1, got ", step_size);
  start();
}

double StepLR::lr_at(int64_t t, double base_lr) const {
  // base * gamma^floor(t / step_size)
  return base_lr * std::pow(gamma_, static_cast<double>(t / step_size_));
}

Metadata StepLR::settings() const {
  return {{"step_size", format_int(step_size_)}, {"gamma", format_double(gamma_)}};
}

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma)
    : LRScheduler(optimizer), milestones_(std::move(milestones)), gamma_(gamma) {
  std::sort(milestones_.begin(), milestones_.end());
  start();
}

double MultiStepLR::lr_at(int64_t t, double base_lr) const {
  // base * gamma^(number of milestones <= t)
  const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), t) - milestones_.begin();
  return base_lr * std::pow(gamma_, static_cast<double>(passed));
}

Metadata MultiStepLR::settings() const {
  return {{"milestones", format_ints(milestones_)}, {"gamma", format_double(gamma_)}};
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min)
    : LRScheduler(optimizer), T_max_(T_max), eta_min_(eta_min) {
  KILN_CHECK(T_max >= 1, "CosineAnnealingLR: T_max must be >= 1, got ", T_max);
  start();
}

double CosineAnnealingLR::lr_at(int64_t t, double base_lr) const {
  // eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2
  return eta_min_ + (base_lr - eta_min_) *
                        (1 + std::cos(std::numbers::pi * static_cast<double>(t) /
                                      static_cast<double>(T_max_))) / 2;
}

Metadata CosineAnnealingLR::settings() const {
  return {{"T_max", format_int(T_max_)}, {"eta_min", format_double(eta_min_)}};
}

LinearLR::LinearLR(Optimizer& optimizer, double start_factor, double end_factor, int64_t total_iters)
    : LRScheduler(optimizer),
      start_factor_(start_factor),
      end_factor_(end_factor),
      total_iters_(total_iters) {
  KILN_CHECK(start_factor > 0 && start_factor <= 1, "LinearLR: start_factor must be in (0, 1], got ",
             start_factor);
  KILN_CHECK(end_factor >= 0 && end_factor <= 1, "LinearLR: end_factor must be in [0, 1], got ",
             end_factor);
  KILN_CHECK(total_iters >= 1, "LinearLR: total_iters must be >= 1, got ", total_iters);
  start();
}

double LinearLR::lr_at(int64_t t, double base_lr) const {
  // base * (start + (end - start) * min(t, total_iters) / total_iters)
  return base_lr * (start_factor_ + (end_factor_ - start_factor_) *
                                        static_cast<double>(std::min(total_iters_, t)) /
                                        static_cast<double>(total_iters_));
}

Metadata LinearLR::settings() const {
  return {{"start_factor", format_double(start_factor_)},
          {"end_factor", format_double(end_factor_)},
          {"total_iters", format_int(total_iters_)}};
}

// ---- composition -----------------------------------------------------------------------------------

SequentialLR::SequentialLR(Optimizer& optimizer, std::vector<std::shared_ptr<LRScheduler>> schedulers,
                           std::vector<int64_t> milestones)
    : LRScheduler(optimizer), schedulers_(std::move(schedulers)), milestones_(std::move(milestones)) {
  KILN_CHECK(!schedulers_.empty(), "SequentialLR: expected at least one scheduler");
  KILN_CHECK(milestones_.size() + 1 == schedulers_.size(), "SequentialLR: expected ",
             schedulers_.size() - 1, " milestones for ", schedulers_.size(), " schedulers, got ",
             milestones_.size());
  for (size_t i = 0; i < milestones_.size(); ++i)
    KILN_CHECK(milestones_[i] > (i ? milestones_[i - 1] : 0), "SequentialLR: milestones must be "
               "positive and increasing, got ", format_ints(milestones_));
  for (const auto& s : schedulers_) {
    KILN_CHECK(s != nullptr, "SequentialLR: a scheduler is null");
    adopt(*s, "SequentialLR");
  }
  start();
}

double SequentialLR::lr_at(int64_t t, double base_lr) const {
  // The scheduler whose interval holds t, at its own step count t - (its milestone).
  const size_t i = std::upper_bound(milestones_.begin(), milestones_.end(), t) - milestones_.begin();
  return schedulers_[i]->lr_at(t - (i ? milestones_[i - 1] : 0), base_lr);
}

Metadata SequentialLR::settings() const { return {{"milestones", format_ints(milestones_)}}; }

ChainedScheduler::ChainedScheduler(Optimizer& optimizer,
                                   std::vector<std::shared_ptr<LRScheduler>> schedulers)
    : LRScheduler(optimizer), schedulers_(std::move(schedulers)) {
  KILN_CHECK(!schedulers_.empty(), "ChainedScheduler: expected at least one scheduler");
  for (const auto& s : schedulers_) {
    KILN_CHECK(s != nullptr, "ChainedScheduler: a scheduler is null");
    adopt(*s, "ChainedScheduler");
  }
  start();
}

double ChainedScheduler::lr_at(int64_t t, double base_lr) const {
  double lr = base_lr;
  for (const auto& s : schedulers_) lr = s->lr_at(t, lr);
  return lr;
}

Metadata ChainedScheduler::settings() const { return {}; }

}  // namespace kiln::optim
