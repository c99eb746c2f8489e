// optim::Optimizer: the base of every optimizer. It owns the parameter groups and the
// per-parameter state, and turns both into a state dict that saves as safetensors.
//
//   optim::Adam opt(net->parameters(), optim::AdamOptions{.lr = 2.5e-4});
//   opt.zero_grad(); loss.backward(); opt.step();
//
// Parameter groups share options, as PyTorch's param_groups do. A group given without options
// takes the optimizer's defaults:
//
//   optim::SGD opt({{body->parameters()}, {head->parameters(), optim::SGDOptions{.lr = 0.1}}},
//                  optim::SGDOptions{.lr = 0.01, .momentum = 0.9});
//
// State dict layout (the names a checkpoint file shows):
//   tensors   "state.<i>.<key>"          the state of parameter i, numbered across all groups
//                                        in order ("state.0.exp_avg", "state.0.step", ...)
//   metadata  "type"                     "SGD", "Adam", "AdamW"
//             "param_groups"             the number of groups
//             "param_groups.<g>.params"  the number of parameters in group g
//             "param_groups.<g>.<option>" each option ("lr", "momentum", "betas", ...)
//             "param_groups.<g>.initial_lr"  the base rate a scheduler took, once one attached
// Numbers are written in their shortest exact form, so a load restores every option bit for bit.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <kiln/core/safetensors.h>
#include <kiln/core/tensor.h>

namespace kiln::optim {

/// A saved state: tensors plus string metadata, the two halves of a safetensors file, so
/// `save_safetensors(path, s.tensors, s.metadata)` writes it.
using StateDict = SafetensorsContents;

/// Parameters that share options. Without options, the group takes the optimizer's defaults.
template <class Options>
struct ParamGroup {
  std::vector<Tensor> params;  ///< the group's parameters
  std::optional<Options> options = std::nullopt;  ///< the group's options, or the defaults
};

/// The base of every optimizer: parameter groups, per-parameter state, and their state dict.
/// `opt.zero_grad(); loss.backward(); opt.step();` is a training step.
class Optimizer {
 public:
  /// The state of one parameter, by name ("exp_avg", "step", "momentum_buffer", ...). Empty until
  /// the parameter's first update.
  using ParamState = std::map<std::string, Tensor>;

  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// One update of every parameter that has a gradient; parameters without one are skipped.
  virtual void step() = 0;
  /// Clears the gradients. set_to_none (the default, as in PyTorch 2) drops them; otherwise they
  /// are filled with zeros in place.
  void zero_grad(bool set_to_none = true);

  /// "SGD", "Adam", "AdamW": written to the state dict and checked on load.
  const std::string& type_name() const { return type_name_; }

  // ---- parameter groups ------------------------------------------------------------------------
  /// The number of parameter groups.
  size_t num_param_groups() const { return groups_.size(); }
  /// The parameters of one group.
  const std::vector<Tensor>& params(size_t group) const;
  /// Every parameter of every group, in order (the numbering of the state dict).
  std::vector<Tensor> parameters() const;
  /// A group's learning rate: what schedulers read and write.
  virtual double lr(size_t group) const = 0;
  /// Sets a group's learning rate (effective at the next step).
  virtual void set_lr(size_t group, double lr) = 0;
  /// The rate the first scheduler attached to this optimizer took as its base (PyTorch's
  /// group['initial_lr']); unset until then. Later schedulers start from it too.
  std::optional<double> initial_lr(size_t group) const;
  /// Records a group's base rate (schedulers call it when they attach).
  void set_initial_lr(size_t group, double lr);

  // ---- state -----------------------------------------------------------------------------------
  /// The per-parameter state of parameter `index` (numbered across groups).
  const ParamState& state(size_t index) const;
  /// The groups' options and every parameter's state. The tensors alias the live state; save or
  /// clone them before stepping again if you need a snapshot.
  StateDict state_dict() const;
  /// Restores options and state saved by the same kind of optimizer over parameters of the same
  /// shapes, grouped the same way. Tensors are copied (and cast to each parameter's dtype, as
  /// PyTorch does). Everything is checked before anything changes: on error, nothing has.
  void load_state_dict(const StateDict& state);
  /// The checks of load_state_dict without the load: throws kiln::Error naming the field.
  void validate_state_dict(const StateDict& state) const;

 protected:
  /// A concrete optimizer names itself ("SGD").
  explicit Optimizer(std::string type_name) : type_name_(std::move(type_name)) {}

  /// Appends a group; checks that each parameter is a defined floating leaf tensor and is in no
  /// other group. Returns the group's index.
  size_t add_group_params(std::vector<Tensor> params);
  /// The index of the first parameter of `group` in the across-groups numbering.
  size_t first_index(size_t group) const;
  /// The state of parameter `index`, for the optimizer's own update.
  ParamState& mutable_state(size_t index) { return state_[index]; }

  // Hooks the concrete optimizers implement.
  /// The options of a group, as metadata values ("lr" -> "0.001", "nesterov" -> "false", ...).
  virtual Metadata group_options(size_t group) const = 0;
  /// Parses options written by group_options; throws kiln::Error on a missing or invalid option,
  /// with `where` leading the message.
  virtual void validate_group_options(const Metadata& options, const std::string& where) const = 0;
  /// Parses them and sets them as the options of `group`.
  virtual void set_group_options(size_t group, const Metadata& options, const std::string& where) = 0;
  /// The state keys this optimizer keeps per parameter ("step" must be an i64 scalar; every other
  /// key a floating tensor of the parameter's shape).
  virtual std::vector<std::string> state_keys() const = 0;

 private:
  std::string type_name_;
  std::vector<std::vector<Tensor>> groups_;
  std::vector<std::optional<double>> initial_lr_;
  std::vector<ParamState> state_;  // one per parameter, across groups
};

}  // namespace kiln::optim
