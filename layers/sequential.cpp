#include <kiln/layers/sequential.h>

#include <string>
#include <typeinfo>

#include <kiln/layers/activation.h>
#include <kiln/layers/batch_norm.h>
#include <kiln/layers/group_norm.h>
#include <kiln/layers/pooling.h>

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

namespace {

// A norm followed by a ReLU runs as one op, the norm's forward_relu: the same bits, and one pass
// over the activations fewer each way. Only these classes themselves are fused, so a subclass that
// overrides forward() still has it called.
bool has_fused_relu(const Module& m) {
  const std::type_info& type = typeid(m);
  return type == typeid(GroupNorm) || type == typeid(BatchNorm2d) || type == typeid(BatchNorm1d) ||
         type == typeid(SyncBatchNorm);
}

Tensor forward_relu(Module& norm, const Tensor& x) {
  if (typeid(norm) == typeid(GroupNorm)) return static_cast<GroupNorm&>(norm).forward_relu(x);
  return static_cast<BatchNorm&>(norm).forward_relu(x);
}

// A GroupNorm, a ReLU and a MaxPool2d(2) (2x2 windows, stride 2, no padding) run as one op too,
// GroupNorm::forward_relu_max_pool2d, on [N, C, H, W] inputs the pooling accepts.
bool fuses_relu_max_pool(const Module& norm, const Module& relu, const Module& pool,
                         const Tensor& x) {
  if (typeid(norm) != typeid(GroupNorm) || typeid(relu) != typeid(ReLU) ||
      typeid(pool) != typeid(MaxPool2d))
    return false;
  const auto& p = static_cast<const MaxPool2d&>(pool);
  return p.kernel_size == 2 && p.stride == 2 && p.padding == 0 && x.dim() == 4 &&
         x.size(2) >= 2 && x.size(3) >= 2;
}

}  // namespace

Tensor Sequential::forward(const Tensor& input) {
  const auto& children = named_children();
  Tensor x = input;
  for (size_t i = 0; i < children.size(); ++i) {
    Module& module = *children[i].second;
    if (i + 2 < children.size() &&
        fuses_relu_max_pool(module, *children[i + 1].second, *children[i + 2].second, x)) {
      x = static_cast<GroupNorm&>(module).forward_relu_max_pool2d(x);
      i += 2;
      continue;
    }
    if (i + 1 < children.size() && has_fused_relu(module) &&
        typeid(*children[i + 1].second) == typeid(ReLU)) {
      x = forward_relu(module, x);
      ++i;
      continue;
    }
    x = module.forward(x);
  }
  return x;
}

}  // namespace kiln::nn
