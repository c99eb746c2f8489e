#include <kiln/layers/module.h>

#include <cxxabi.h>
#include <map>
#include <ostream>
#include <set>
#include <sstream>

#include <kiln/autograd/grad_mode.h>

namespace kiln::nn {

namespace {
void check_name(const std::string& name, const char* what) {
  KILN_CHECK(!name.empty() && name.find('.') == std::string::npos, "register_", what,
             ": the name '", name, "' must be non-empty and contain no '.'");
}
}  // namespace

Tensor Module::forward(const Tensor&) {
  KILN_FAIL(type_name(), ": this module does not define forward(input)");
}

Tensor Module::register_parameter(const std::string& name, Tensor tensor, bool requires_grad) {
  check_name(name, "parameter");
  for (const auto& [n, t] : parameters_)
    KILN_CHECK(n != name, "register_parameter: '", name, "' is already registered");
  if (tensor.defined() && requires_grad) tensor.requires_grad_(true);
  parameters_.emplace_back(name, tensor);
  return tensor;
}

Tensor Module::register_buffer(const std::string& name, Tensor tensor) {
  check_name(name, "buffer");
  for (const auto& [n, t] : buffers_)
    KILN_CHECK(n != name, "register_buffer: '", name, "' is already registered");
  buffers_.emplace_back(name, tensor);
  return tensor;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_name(name, "module");
  KILN_CHECK(module != nullptr, "register_module: '", name, "' is null");
  for (const auto& [n, m] : children_)
    KILN_CHECK(n != name, "register_module: '", name, "' is already registered");
  children_.emplace_back(name, std::move(module));
}

void Module::collect(const std::string& prefix, bool recurse, bool params, NamedTensors& out) const {
  for (const auto& [name, t] : params ? parameters_ : buffers_)
    if (t.defined()) out.emplace_back(prefix + name, t);
  if (!recurse) return;
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", true, params, out);
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  collect("", recurse, true, out);
  // A tensor shared by two modules is one parameter, listed under its first name.
  std::set<const TensorImpl*> seen;
  NamedTensors unique;
  for (auto& [name, t] : out)
    if (seen.insert(t.unsafe_impl()).second) unique.emplace_back(name, t);
  return unique;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  collect("", recurse, false, out);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_buffers(recurse)) out.push_back(t);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [name, child] : children_) out.push_back(child);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (const auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad(bool set_to_none) {
  for (Tensor& p : parameters()) {
    if (!p.grad().defined()) continue;
    if (set_to_none) {
      p.set_grad(Tensor());
    } else {
      NoGradGuard no_grad;
      p.grad().zero_();
    }
  }
}

void Module::collect_state(const std::string& prefix, NamedTensors& out) const {
  for (const auto& [name, t] : parameters_)
    if (t.defined()) out.emplace_back(prefix + name, t);
  for (const auto& [name, t] : buffers_)
    if (t.defined()) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect_state(prefix + name + ".", out);
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  collect_state("", out);
  return out;
}

void Module::load_state_dict(const NamedTensors& state, bool strict) {
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, t] : state) {
    KILN_CHECK(given.emplace(name, &t).second, "load_state_dict: the key '", name,
               "' appears more than once");
  }
  NamedTensors own = state_dict();
  std::vector<std::string> missing;
  // Check everything before copying anything, so a failed load leaves the module unchanged.
  for (const auto& [name, t] : own) {
    auto it = given.find(name);
    if (it == given.end()) {
      missing.push_back(name);
      continue;
    }
    KILN_CHECK(it->second->defined(), "load_state_dict: the value for '", name, "' is undefined");
    KILN_CHECK(it->second->shape() == t.shape(), "load_state_dict: '", name, "' has shape ",
               it->second->shape(), " in the state dict, but the module's is ", t.shape());
  }
  if (strict) {
    KILN_CHECK(missing.empty(), "load_state_dict: missing key '", missing.empty() ? "" : missing[0],
               "' (", missing.size(), " missing in all) for ", type_name());
    std::set<std::string> own_names;
    for (const auto& [name, t] : own) own_names.insert(name);
    for (const auto& [name, t] : state)
      KILN_CHECK(own_names.count(name), "load_state_dict: unexpected key '", name, "' for ",
                 type_name());
  }
  NoGradGuard no_grad;
  for (auto& [name, t] : own) {
    auto it = given.find(name);
    if (it != given.end()) t.copy_(*it->second);
  }
}

std::string Module::type_name() const {
  int status = 0;
  char* demangled = abi::__cxa_demangle(typeid(*this).name(), nullptr, nullptr, &status);
  std::string name = status == 0 && demangled ? demangled : typeid(*this).name();
  std::free(demangled);
  size_t cut = name.rfind("::");
  return cut == std::string::npos ? name : name.substr(cut + 2);
}

std::string Module::repr() const {
  std::ostringstream out;
  out << type_name() << '(' << extra_repr();
  if (!children_.empty()) {
    out << '\n';
    for (const auto& [name, child] : children_) {
      std::string inner = child->repr();
      // Indent the child's continuation lines by two spaces.
      std::string indented;
      for (char c : inner) {
        indented += c;
        if (c == '\n') indented += "  ";
      }
      out << "  (" << name << "): " << indented << '\n';
    }
  }
  out << ')';
  return out.str();
}

std::ostream& operator<<(std::ostream& out, const Module& module) { return out << module.repr(); }

}  // namespace kiln::nn
