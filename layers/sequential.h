// nn::Sequential: children applied in order, named "0", "1", ... as in PyTorch.
//
//   auto net = std::make_shared<nn::Sequential>(conv, gn, std::make_shared<nn::ReLU>());
//   net->push_back(std::make_shared<nn::Flatten>());
//   Tensor y = net->forward(x);   (*net)[0] is conv
#pragma once

#include <memory>

#include <kiln/layers/module.h>

namespace kiln::nn {

/// Children applied in order, named "0", "1", ... as in torch.nn.Sequential.
class Sequential : public Module {
 public:
  /// An empty sequence; push_back() adds to it.
  Sequential() = default;
  /// The modules in order: `nn::Sequential(conv, gn, std::make_shared<nn::ReLU>())`.
  template <class... Modules>
  explicit Sequential(std::shared_ptr<Modules>... modules) {
    (push_back(std::move(modules)), ...);
  }

  /// Appends a module under the next index.
  void push_back(std::shared_ptr<Module> module);
  /// The i-th module (negative counts from the end).
  std::shared_ptr<Module> operator[](int64_t index) const;
  /// The number of modules.
  size_t size() const { return named_children().size(); }

  Tensor forward(const Tensor& input) override;
};

}  // namespace kiln::nn
