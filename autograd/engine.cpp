// The backward engine: a topological walk of the graph from the roots, accumulating gradients.
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cxxabi.h>
#include <queue>
#include <unordered_map>

#include <kiln/autograd/function.h>
#include <kiln/autograd/grad_mode.h>
#include <kiln/autograd/node.h>
#include <kiln/core/elementwise.h>
#include <kiln/core/parallel.h>
#include <kiln/core/reduce.h>
#include <kiln/core/views.h>

namespace kiln::autograd {

namespace {
std::atomic<uint64_t> next_sequence_nr{0};
}

Node::Node() : sequence_nr_(next_sequence_nr.fetch_add(1, std::memory_order_relaxed)) {}

// ---- Context -----------------------------------------------------------------------------------

void Context::save_for_backward(std::vector<Tensor> tensors) {
  saved_.clear();
  saved_.reserve(tensors.size());
  for (const Tensor& t : tensors) {
    if (!t.defined()) {
      saved_.push_back({Tensor(), 0});
      continue;
    }
    saved_.push_back({alias(t), t.unsafe_impl()->storage->version()});
  }
}

std::vector<Tensor> Context::saved() const {
  KILN_CHECK(!released_, op_name, ": its saved tensors were freed by an earlier backward; pass"
             " retain_graph=true to the first backward() to backpropagate through it again");
  std::vector<Tensor> out;
  out.reserve(saved_.size());
  for (size_t i = 0; i < saved_.size(); ++i) {
    const Saved& s = saved_[i];
    if (s.tensor.defined()) {
      const uint64_t now = s.tensor.unsafe_impl()->storage->version();
      KILN_CHECK(now == s.version, op_name, ": saved tensor ", i, " of shape ", s.tensor.shape(),
                 " was modified in place after it was saved (version ", s.version, ", now ", now,
                 "); clone() it before the in-place write");
    }
    out.push_back(s.tensor);
  }
  return out;
}

void Context::release() {
  saved_.clear();
  saved_.shrink_to_fit();
  saved_data.clear();
  released_ = true;
}

// ---- helpers -----------------------------------------------------------------------------------

std::string op_name(const std::type_info& type) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(type.name(), nullptr, nullptr, &status);
  std::string name = status == 0 && demangled ? demangled : type.name();
  std::free(demangled);
  size_t cut = name.rfind("::");
  if (cut != std::string::npos) name = name.substr(cut + 2);
  return name;
}

std::string backward_name(const std::type_info& type) { return op_name(type) + "Backward"; }

std::string node_name(const Node& node) { return node.name(); }

Tensor alias(const Tensor& t) {
  return kernels::as_strided(t, t.shape(), t.strides(), t.offset());
}

void set_history(Tensor& output, const std::shared_ptr<Node>& node, uint32_t index) {
  TensorImpl* impl = output.unsafe_impl();
  impl->requires_grad = true;
  impl->grad_fn = node;
  impl->output_nr = index;
}

void check_finite(const Tensor& t, const std::string& what) {
  if (!is_floating(t.dtype())) return;
  Tensor c = kernels::contiguous(t);
  bool bad = false;
  dispatch_floating(c.dtype(), "check_finite", [&]<class T>() {
    const T* p = c.data_ptr<T>();
    for (int64_t i = 0; i < c.numel() && !bad; ++i) bad = !std::isfinite(p[i]);
  });
  KILN_CHECK(!bad, "anomaly detected: ", what, " produced NaN or Inf (shape ", t.shape(), ")");
}

// ---- AccumulateGrad ----------------------------------------------------------------------------

AccumulateGrad::AccumulateGrad(std::shared_ptr<TensorImpl> variable)
    : variable_(std::move(variable)) {
  outputs_.push_back({variable_->shape, variable_->dtype});
}

std::vector<Tensor> AccumulateGrad::apply(std::vector<Tensor>&& grad_outputs) {
  Tensor& incoming = grad_outputs[0];
  if (!incoming.defined()) return {};
  KILN_CHECK(incoming.shape() == variable_->shape, "AccumulateGrad: a gradient of shape ",
             incoming.shape(), " arrived for a leaf of shape ", variable_->shape);
  if (!variable_->grad) {
    // Keep the incoming tensor when nothing else can see it, else a private contiguous copy.
    const bool unique = incoming.impl_ptr().use_count() == 1 &&
                        incoming.unsafe_impl()->storage.use_count() == 1 &&
                        incoming.is_contiguous() && incoming.dtype() == variable_->dtype;
    Tensor g = unique ? incoming : kernels::to_dtype(incoming, variable_->dtype, /*copy=*/true);
    variable_->grad = g.impl_ptr();
  } else {
    kernels::add_into(Tensor(variable_->grad), incoming, 1.0);
  }
  return {};
}

Edge gradient_edge(const Tensor& t) {
  TensorImpl* impl = t.unsafe_impl();
  if (impl->grad_fn) return Edge{impl->grad_fn, impl->output_nr};
  if (!impl->requires_grad) return Edge{};
  std::shared_ptr<Node> acc = impl->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    impl->grad_accumulator = acc;
  }
  return Edge{acc, 0};
}

// ---- the engine --------------------------------------------------------------------------------

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
                  bool retain_graph) {
  wake_pool();
  struct Pending {
    std::vector<Tensor> grads;  // one slot per output of the node
    int dependencies = 0;
  };
  std::unordered_map<Node*, Pending> pending;
  std::unordered_map<Node*, std::shared_ptr<Node>> keep_alive;

  auto accumulate = [](Tensor& slot, Tensor g) {
    if (!g.defined()) return;
    if (!slot.defined()) slot = std::move(g);
    else slot = kernels::binary(kernels::Binary::add, slot, g);
  };

  // Count, for every node reachable from the roots, how many edges lead into it.
  std::vector<Node*> stack;
  std::vector<Edge> root_edges;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& root = roots[i];
    KILN_CHECK(root.requires_grad(), "backward: the tensor of shape ", root.shape(),
               " does not require grad and has no grad_fn; did you forget requires_grad_() on an"
               " input, or compute it under NoGradGuard?");
    Edge e = gradient_edge(root);
    root_edges.push_back(e);
    if (!keep_alive.count(e.node.get())) {
      keep_alive[e.node.get()] = e.node;
      pending[e.node.get()];
      stack.push_back(e.node.get());
    }
  }
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const Edge& next : node->next_edges()) {
      if (!next.valid()) continue;
      Node* n = next.node.get();
      auto [it, fresh] = pending.try_emplace(n);
      it->second.dependencies++;
      if (fresh) {
        keep_alive[n] = next.node;
        stack.push_back(n);
      }
    }
  }

  // Seed the roots.
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& root = roots[i];
    Tensor g = i < grads.size() ? grads[i] : Tensor();
    if (!g.defined()) {
      KILN_CHECK(root.numel() == 1, "backward: a gradient can be created implicitly only for a"
                 " one-element output, got shape ", root.shape(),
                 "; pass backward(grad) with d(loss)/d(output)");
      g = Tensor::ones(root.shape(), root.dtype());
    } else {
      KILN_CHECK(g.shape() == root.shape(), "backward: the gradient has shape ", g.shape(),
                 " but the output has shape ", root.shape());
    }
    Pending& p = pending[root_edges[i].node.get()];
    if (p.grads.empty()) p.grads.resize(root_edges[i].node->outputs().size());
    accumulate(p.grads[root_edges[i].input_nr], g);
  }

  // Ready nodes run latest-created first, which is a topological order for ties as well.
  auto later_first = [](Node* a, Node* b) { return a->sequence_nr() < b->sequence_nr(); };
  std::priority_queue<Node*, std::vector<Node*>, decltype(later_first)> ready(later_first);
  for (auto& [node, p] : pending)
    if (p.dependencies == 0) ready.push(node);

  const bool anomaly = is_anomaly_enabled();
  NoGradGuard no_grad;
  while (!ready.empty()) {
    Node* node = ready.top();
    ready.pop();
    Pending& p = pending[node];
    std::vector<Tensor> inputs = std::move(p.grads);
    inputs.resize(node->outputs().size());
    bool any_gradient = false;
    for (const Tensor& g : inputs) any_gradient |= g.defined();
    // A node that no gradient reached is skipped: its inputs get none either (a leaf's grad stays
    // undefined, as in PyTorch). Otherwise outputs that got no gradient get zeros.
    std::vector<Tensor> outputs;
    if (any_gradient) {
      for (size_t k = 0; k < inputs.size(); ++k) {
        if (!inputs[k].defined())
          inputs[k] = Tensor::zeros(node->outputs()[k].shape, node->outputs()[k].dtype);
      }
      outputs = node->apply(std::move(inputs));
    } else {
      outputs.resize(node->next_edges().size());
    }
    if (!retain_graph) node->release();
    const auto& edges = node->next_edges();
    if (!edges.empty()) {
      KILN_CHECK(outputs.size() == edges.size(), node->name(), " returned ", outputs.size(),
                 " gradients for ", edges.size(), " inputs");
    }
    for (size_t i = 0; i < edges.size(); ++i) {
      const Edge& e = edges[i];
      if (!e.valid()) continue;
      Pending& next = pending[e.node.get()];
      if (outputs[i].defined()) {
        const auto& info = e.node->outputs()[e.input_nr];
        KILN_CHECK(outputs[i].shape() == info.shape, node->name(), " returned a gradient of shape ",
                   outputs[i].shape(), " for input ", i, ", whose shape is ", info.shape);
        if (outputs[i].dtype() != info.dtype) outputs[i] = kernels::to_dtype(outputs[i], info.dtype);
        if (anomaly) check_finite(outputs[i], "backward of " + node->name());
        if (next.grads.empty()) next.grads.resize(e.node->outputs().size());
        accumulate(next.grads[e.input_nr], std::move(outputs[i]));
      }
      if (--next.dependencies == 0) ready.push(e.node.get());
    }
  }
}

}  // namespace kiln::autograd

// ---- Tensor's autograd methods -----------------------------------------------------------------

namespace kiln {

Tensor& Tensor::requires_grad_(bool requires_grad) {
  KILN_CHECK(is_leaf() || requires_grad, "requires_grad_: cannot turn off requires_grad on a"
             " non-leaf tensor; use detach()");
  KILN_CHECK(!requires_grad || is_floating(dtype()), "requires_grad_: only floating tensors can"
             " require gradients, got ", dtype_name(dtype()));
  impl().requires_grad = requires_grad;
  return *this;
}

Tensor Tensor::grad() const { return Tensor(impl().grad); }

void Tensor::set_grad(const Tensor& grad) {
  if (grad.defined()) {
    KILN_CHECK(grad.shape() == shape(), "set_grad: the gradient has shape ", grad.shape(),
               " but the tensor has shape ", shape());
    KILN_CHECK(grad.dtype() == dtype(), "set_grad: the gradient is ", dtype_name(grad.dtype()),
               " but the tensor is ", dtype_name(dtype()));
  }
  impl().grad = grad.impl_ptr();
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  autograd::run_backward({*this}, {grad}, retain_graph);
}

Tensor Tensor::detach() const { return autograd::alias(*this); }

}  // namespace kiln
