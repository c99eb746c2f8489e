#include <kiln/layers/sequential.h>

#include <string>

namespace kiln::nn {

void Sequential::push_back(std::shared_ptr<Module> module) {
  add_child(std::to_string(size()), std::move(module));
}

std::shared_ptr<Module> Sequential::operator[](int64_t index) const {
  const int64_t n = static_cast<int64_t>(size());
  KILN_CHECK(index >= -n && index < n, "Sequential: index ", index, " is out of range for ", n,
             " modules");
  return named_children()[static_cast<size_t>(index < 0 ? index + n : index)].second;
}

Tensor Sequential::forward(const Tensor& input) {
  Tensor x = input;
  for (const auto& [name, module] : named_children()) x = module->forward(x);
  return x;
}

}  // namespace kiln::nn
