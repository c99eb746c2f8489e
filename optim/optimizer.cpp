#include <kiln/optim/optimizer.h>

#include <algorithm>
#include <charconv>
#include <set>

#include <kiln/autograd/grad_mode.h>
#include <kiln/core/views.h>
#include <kiln/optim/state_format.h>

namespace kiln::optim {

using namespace state_format;

namespace {
constexpr const char* kWhere = "optimizer state: ";

std::string group_prefix(size_t group) { return "param_groups." + std::to_string(group) + "."; }
}  // namespace

void Optimizer::zero_grad(bool set_to_none) {
  for (const auto& group : groups_) {
    for (const Tensor& p : group) {
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      if (set_to_none) {
        Tensor(p).set_grad(Tensor());
        continue;
      }
      NoGradGuard no_grad;
      // A gradient made with create_graph is itself in a graph: cut it loose before zeroing.
      if (grad.grad_fn()) {
        grad = grad.detach();
        Tensor(p).set_grad(grad);
      }
      grad.zero_();
    }
  }
}

const std::vector<Tensor>& Optimizer::params(size_t group) const {
  KILN_CHECK(group < groups_.size(), type_name_, ": parameter group ", group,
             " does not exist (there are ", groups_.size(), ")");
  return groups_[group];
}

std::vector<Tensor> Optimizer::parameters() const {
  std::vector<Tensor> out;
  for (const auto& group : groups_) out.insert(out.end(), group.begin(), group.end());
  return out;
}

std::optional<double> Optimizer::initial_lr(size_t group) const {
  params(group);  // bounds check
  return initial_lr_[group];
}

void Optimizer::set_initial_lr(size_t group, double lr) {
  params(group);
  initial_lr_[group] = lr;
}

const Optimizer::ParamState& Optimizer::state(size_t index) const {
  KILN_CHECK(index < state_.size(), type_name_, ": parameter ", index, " does not exist (there are ",
             state_.size(), ")");
  return state_[index];
}

size_t Optimizer::add_group_params(std::vector<Tensor> params) {
  std::set<const TensorImpl*> seen;
  for (const auto& group : groups_)
    for (const Tensor& p : group) seen.insert(p.unsafe_impl());
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i];
    const std::string which = detail::concat(type_name_, ": parameter ", i, " of group ", groups_.size());
    KILN_CHECK(p.defined(), which, " is an undefined tensor");
    KILN_CHECK(is_floating(p.dtype()), which, " has dtype ", dtype_name(p.dtype()),
               "; only f32 and f64 tensors can be optimized");
    KILN_CHECK(p.is_leaf(), which, " (shape ", p.shape(),
               ") is not a leaf: it was computed by an op; optimize the tensor it came from");
    KILN_CHECK(seen.insert(p.unsafe_impl()).second, which, " (shape ", p.shape(),
               ") appears twice: a parameter can be in only one group, once");
  }
  groups_.push_back(std::move(params));
  initial_lr_.emplace_back();
  state_.resize(state_.size() + groups_.back().size());
  return groups_.size() - 1;
}

size_t Optimizer::first_index(size_t group) const {
  size_t index = 0;
  for (size_t g = 0; g < group; ++g) index += groups_[g].size();
  return index;
}

StateDict Optimizer::state_dict() const {
  StateDict out;
  out.metadata["type"] = type_name_;
  out.metadata["param_groups"] = format_uint(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::string prefix = group_prefix(g);
    out.metadata[prefix + "params"] = format_uint(groups_[g].size());
    add_prefix(out.metadata, group_options(g), prefix);
    if (initial_lr_[g]) out.metadata[prefix + "initial_lr"] = format_double(*initial_lr_[g]);
  }
  for (size_t i = 0; i < state_.size(); ++i)
    for (const auto& [key, t] : state_[i])
      out.tensors.emplace_back("state." + std::to_string(i) + "." + key, t);
  return out;
}

void Optimizer::validate_state_dict(const StateDict& state) const {
  const Metadata& m = state.metadata;
  const std::string& type = read_text(m, "type", kWhere);
  KILN_CHECK(type == type_name_, kWhere, "type: the state was saved by ", type, ", but this is ",
             type_name_);
  const uint64_t groups = read_uint(m, "param_groups", kWhere);
  KILN_CHECK(groups == groups_.size(), kWhere, "param_groups: the state has ", groups,
             " parameter groups, but this optimizer has ", groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::string prefix = group_prefix(g);
    const uint64_t count = read_uint(m, prefix + "params", kWhere);
    KILN_CHECK(count == groups_[g].size(), kWhere, prefix, "params: the state's group ", g, " has ",
               count, " parameters, but this optimizer's has ", groups_[g].size());
    const Metadata options = strip_prefix(m, prefix);
    validate_group_options(options, kWhere + prefix);
    if (options.count("initial_lr")) read_double(options, "initial_lr", kWhere + prefix);
  }

  const std::vector<Tensor> all = parameters();
  const std::vector<std::string> keys = state_keys();
  std::set<std::string> names;
  for (const auto& [name, t] : state.tensors) {
    KILN_CHECK(names.insert(name).second, kWhere, "the tensor '", name, "' appears twice");
    // "state.<index>.<key>"
    const size_t dot = name.find('.', 6);
    uint64_t index = 0;
    const bool parsed = name.compare(0, 6, "state.") == 0 && dot != std::string::npos &&
                        std::from_chars(name.data() + 6, name.data() + dot, index).ptr == name.data() + dot &&
                        dot > 6;
    KILN_CHECK(parsed, kWhere, "the tensor '", name, "' is not named state.<index>.<key>");
    KILN_CHECK(index < all.size(), kWhere, name, ": parameter ", index, " does not exist (",
               type_name_, " has ", all.size(), " parameters)");
    const std::string key = name.substr(dot + 1);
    KILN_CHECK(std::find(keys.begin(), keys.end(), key) != keys.end(), kWhere, name, ": ",
               type_name_, " keeps no state named '", key, "'");
    KILN_CHECK(t.defined(), kWhere, name, ": the tensor is undefined");
    if (key == "step") {
      KILN_CHECK(t.dtype() == DType::i64 && t.dim() == 0, kWhere, name,
                 ": expected an i64 scalar, got ", dtype_name(t.dtype()), " of shape ", t.shape());
      KILN_CHECK(t.item<int64_t>() >= 0, kWhere, name, ": the step count is negative");
    } else {
      const Tensor& p = all[index];
      KILN_CHECK(is_floating(t.dtype()), kWhere, name, ": expected a floating tensor, got ",
                 dtype_name(t.dtype()));
      KILN_CHECK(t.shape() == p.shape(), kWhere, name, ": shape ", t.shape(),
                 " does not match parameter ", index, "'s shape ", p.shape());
    }
  }
}

void Optimizer::load_state_dict(const StateDict& state) {
  validate_state_dict(state);
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::string prefix = group_prefix(g);
    const Metadata options = strip_prefix(state.metadata, prefix);
    set_group_options(g, options, kWhere + prefix);
    initial_lr_[g].reset();
    if (options.count("initial_lr")) initial_lr_[g] = read_double(options, "initial_lr", kWhere);
  }
  const std::vector<Tensor> all = parameters();
  std::vector<ParamState> loaded(all.size());
  for (const auto& [name, t] : state.tensors) {
    const size_t dot = name.find('.', 6);
    const size_t index = std::stoul(name.substr(6, dot - 6));
    const std::string key = name.substr(dot + 1);
    // Copies, so the loaded state never aliases the caller's tensors.
    const DType dtype = key == "step" ? DType::i64 : all[index].dtype();
    loaded[index][key] = kernels::to_dtype(t, dtype, /*copy=*/true);
  }
  state_ = std::move(loaded);
}

}  // namespace kiln::optim
