// nn::Module: the base of every layer and model.
//
// A module registers its parameters, buffers and children by name, in order, the way PyTorch does,
// so named_parameters() gives dotted paths ("features.3.weight") and state_dict() keys equal
// PyTorch's for the same architecture.
//
//   struct TwoLayer : nn::Module {
//     std::shared_ptr<nn::Linear> fc1, fc2;
//     TwoLayer() {
//       fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 8));
//       fc2 = register_module("fc2", std::make_shared<nn::Linear>(8, 2));
//     }
//     Tensor forward(const Tensor& x) override { return fc2->forward(fc1->forward(x).relu()); }
//   };
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <kiln/core/safetensors.h>
#include <kiln/core/tensor.h>

namespace kiln::nn {

/// The base of every layer and model: parameters, buffers and children registered by name.
/// The file comment (layers/module.h) shows a complete two-layer module.
class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// The module's computation on one input. Modules with other signatures (losses) define their
  /// own forward and leave this one throwing.
  virtual Tensor forward(const Tensor& input);
  /// The same as forward(): `(*net)(x)`.
  Tensor operator()(const Tensor& input) { return forward(input); }

  // ---- registration (call from the constructor) ------------------------------------------------
  /// Registers a parameter (it gets requires_grad) and returns it, for the public member.
  Tensor register_parameter(const std::string& name, Tensor tensor, bool requires_grad = true);
  /// Registers a buffer (state that is saved but not trained, like running_mean). An undefined
  /// tensor registers the name with no value: it is left out of state_dict(), as in PyTorch.
  Tensor register_buffer(const std::string& name, Tensor tensor);
  /// Registers a child module and returns it.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

  // ---- traversal -------------------------------------------------------------------------------
  /// Every parameter, this module's then its children's, in registration order:
  /// `optim::SGD opt(net->parameters(), {.lr = 0.1})`.
  std::vector<Tensor> parameters(bool recurse = true) const;
  /// The parameters with dotted names, "features.3.weight".
  NamedTensors named_parameters(bool recurse = true) const;
  /// Every buffer (running statistics and other saved state), in registration order.
  std::vector<Tensor> buffers(bool recurse = true) const;
  /// The buffers with dotted names, "features.4.running_mean".
  NamedTensors named_buffers(bool recurse = true) const;
  /// The direct children, in registration order.
  std::vector<std::shared_ptr<Module>> children() const;
  /// The direct children with their names.
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const {
    return children_;
  }

  // ---- mode and gradients ----------------------------------------------------------------------
  /// Sets training mode here and in every descendant.
  virtual void train(bool on = true);
  /// train(false): BatchNorm uses its running statistics and Dropout passes its input through.
  void eval() { train(false); }
  /// True in training mode (the default).
  bool is_training() const { return training_; }
  /// Clears the gradients of every parameter (set_to_none drops them; else fills zeros).
  void zero_grad(bool set_to_none = true);

  // ---- state -----------------------------------------------------------------------------------
  /// Parameters and buffers with dotted names: each module's own parameters, then its buffers,
  /// then its children's, in registration order (PyTorch's order and keys).
  NamedTensors state_dict() const;
  /// Copies values into the registered tensors. With strict, a missing or unexpected key is an
  /// error naming it; a shape mismatch is always an error naming the key and both shapes.
  void load_state_dict(const NamedTensors& state, bool strict = true);

  // ---- printing --------------------------------------------------------------------------------
  /// The class name, as printed ("Conv2d"). Defaults to the C++ type's unqualified name.
  virtual std::string type_name() const;
  /// The arguments shown inside the parentheses ("3, 8, kernel_size=(3, 3)").
  virtual std::string extra_repr() const { return ""; }
  /// PyTorch's repr: the module and its children, indented.
  std::string repr() const;

 protected:
  /// Registers a child (register_module() without the type).
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  bool training_ = true;  ///< see is_training()

 private:
  void collect(const std::string& prefix, bool recurse, bool params, NamedTensors& out) const;
  void collect_state(const std::string& prefix, NamedTensors& out) const;

  NamedTensors parameters_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

/// Prints module.repr(): `std::cout << *net`.
std::ostream& operator<<(std::ostream& out, const Module& module);

}  // namespace kiln::nn
