// autograd::Function<T>: the way to add a differentiable primitive, used by kiln's own ops too.
//
//   struct Square : autograd::Function<Square> {
//     // y = x^2
//     static Tensor forward(autograd::Context& ctx, const Tensor& x) {
//       ctx.save_for_backward({x});
//       return x * x;
//     }
//     // dL/dx = dL/dy * 2x
//     static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& grad) {
//       return {grad[0] * ctx.saved()[0] * 2.0};
//     }
//   };
//   Tensor y = Square::apply(x);
//
// forward runs with graph recording off and may take non-tensor arguments after or between the
// tensors. It returns a Tensor or a std::vector<Tensor>. backward gets one gradient per output
// (zeros where none arrived) and returns one gradient per Tensor argument, or one per argument
// (an undefined Tensor for the others), as PyTorch does; an undefined gradient means none.
#pragma once

#include <any>
#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include <kiln/autograd/grad_mode.h>
#include <kiln/autograd/node.h>
#include <kiln/core/tensor.h>

namespace kiln::autograd {

/// What forward leaves for backward.
class Context {
 public:
  /// Keeps tensors for backward. They are freed after backward (unless retain_graph), and
  /// modifying one in place before backward is an error.
  void save_for_backward(std::vector<Tensor> tensors);
  /// The saved tensors, in the order given. Throws after the graph has been freed.
  std::vector<Tensor> saved() const;
  /// Whether forward argument `index` (counting every argument) needs a gradient.
  bool needs_input_grad(size_t index) const {
    return index < needs_input_grad_.size() && needs_input_grad_[index];
  }
  /// Non-tensor values for backward (sizes, options): ctx.saved_data["eps"] = 1e-5.
  std::unordered_map<std::string, std::any> saved_data;

  // Used by Function<T>; not part of the custom-op API.
  std::string op_name;                  ///< the node's name, "SquareBackward" (internal)
  std::vector<bool> needs_input_grad_;  ///< per forward argument (internal)
  /// Frees the saved tensors (internal; the engine calls it after backward).
  void release();
  /// True once release() ran (internal).
  bool released() const { return released_; }

 private:
  struct Saved {
    Tensor tensor;    // an alias without autograd state (no reference cycle through grad_fn)
    uint64_t version;
  };
  std::vector<Saved> saved_;
  bool released_ = false;
};

/// "kiln::autograd::ops::Mul" -> "Mul".
std::string op_name(const std::type_info& type);
/// "kiln::autograd::ops::Mul" -> "MulBackward".
std::string backward_name(const std::type_info& type);
/// A tensor sharing t's storage and geometry, with no autograd state.
Tensor alias(const Tensor& t);
/// Marks `output` as made by output `index` of `node`.
void set_history(Tensor& output, const std::shared_ptr<Node>& node, uint32_t index);

/// The graph node Function<T>::apply records: it holds the Context and calls T::backward.
template <class T>
class FunctionNode final : public Node {
 public:
  Context ctx;                           ///< what forward saved
  std::vector<size_t> tensor_positions;  ///< which forward arguments were tensors

  /// Sets the edges to the inputs' nodes, one per tensor argument.
  void set_edges(std::vector<Edge> edges) { next_edges_ = std::move(edges); }
  /// Records the shape and dtype of the next output.
  void add_output(const Tensor& t) { outputs_.push_back({t.shape(), t.dtype()}); }

  std::string name() const override { return ctx.op_name; }
  void release() override { ctx.release(); }

  std::vector<Tensor> apply(std::vector<Tensor>&& grad_outputs) override {
    KILN_CHECK(!ctx.released(), "backward: ", name(),
               " was reached a second time after its graph was freed; pass retain_graph=true to"
               " the first backward() to backpropagate through a graph more than once");
    std::vector<Tensor> grads;
    {
      NoGradGuard no_grad;
      grads = T::backward(ctx, grad_outputs);
    }
    const size_t n_tensors = tensor_positions.size();
    const size_t n_args = tensor_positions.empty() ? 0 : ctx.needs_input_grad_.size();
    if (grads.size() != n_tensors) {
      KILN_CHECK(grads.size() == n_args, name(), ": backward returned ", grads.size(),
                 " gradients, expected one per Tensor argument (", n_tensors,
                 ") or one per argument (", n_args, ")");
      std::vector<Tensor> picked;
      for (size_t pos : tensor_positions) picked.push_back(grads[pos]);
      grads = std::move(picked);
    }
    return grads;
  }
};

namespace detail {

template <class A>
constexpr bool is_tensor_arg = std::is_same_v<std::remove_cvref_t<A>, Tensor>;

template <class Out>
void for_each_output(Out& out, auto&& fn) {
  if constexpr (std::is_same_v<Out, Tensor>) {
    fn(out);
  } else {
    static_assert(std::is_same_v<Out, std::vector<Tensor>>,
                  "Function::forward must return Tensor or std::vector<Tensor>");
    for (Tensor& t : out) fn(t);
  }
}

}  // namespace detail

/// The base of a new differentiable primitive, which derives from it as `struct Op : Function<Op>`
/// and defines `static forward(Context&, args...)` and
/// `static std::vector<Tensor> backward(Context&, const std::vector<Tensor>& grads)`:
///
///     struct Square : autograd::Function<Square> {
///       static Tensor forward(autograd::Context& ctx, const Tensor& x) {
///         ctx.save_for_backward({x});
///         return x * x;                                    // y = x^2
///       }
///       static std::vector<Tensor> backward(autograd::Context& ctx,
///                                           const std::vector<Tensor>& grad) {
///         return {grad[0] * ctx.saved()[0] * 2.0};         // dL/dx = dL/dy 2x
///       }
///     };
///     Tensor y = Square::apply(x);
///
/// docs/custom-layers.md walks through a complete one.
template <class T>
struct Function {
  /// Runs T::forward with recording off and, when a tensor argument requires grad (and GradMode
  /// is on), records a FunctionNode so that backward reaches T::backward.
  template <class... Args>
  static auto apply(Args&&... args) {
    using Out = decltype(T::forward(std::declval<Context&>(), std::forward<Args>(args)...));
    std::vector<const Tensor*> tensors;
    std::vector<size_t> positions;
    std::vector<bool> needs(sizeof...(Args), false);
    bool any_requires_grad = false;
    size_t position = 0;
    auto collect = [&](const auto& arg) {
      if constexpr (detail::is_tensor_arg<decltype(arg)>) {
        tensors.push_back(&arg);
        positions.push_back(position);
        bool r = arg.defined() && arg.requires_grad();
        needs[position] = r;
        any_requires_grad |= r;
      }
      ++position;
    };
    (collect(args), ...);

    const bool record = any_requires_grad && GradMode::is_enabled();
    if (!record) {
      Context ctx;
      Out out;
      {
        NoGradGuard no_grad;
        out = T::forward(ctx, std::forward<Args>(args)...);
      }
      if (is_anomaly_enabled()) {
        detail::for_each_output(out, [&](Tensor& t) {
          if (t.defined()) check_finite(t, "forward of " + op_name(typeid(T)));
        });
      }
      return out;
    }

    auto node = std::make_shared<FunctionNode<T>>();
    node->ctx.op_name = backward_name(typeid(T));
    node->ctx.needs_input_grad_ = needs;
    node->tensor_positions = positions;
    std::vector<Edge> edges;
    edges.reserve(tensors.size());
    for (const Tensor* t : tensors) edges.push_back(t->defined() ? gradient_edge(*t) : Edge{});
    node->set_edges(std::move(edges));

    Out out;
    {
      NoGradGuard no_grad;
      out = T::forward(node->ctx, std::forward<Args>(args)...);
    }
    uint32_t index = 0;
    detail::for_each_output(out, [&](Tensor& t) {
      KILN_CHECK(t.defined(), node->ctx.op_name, ": forward returned an undefined tensor");
      // An output that is an existing tensor (an input passed through, or any tensor with
      // history) gets a fresh handle, so that tensor's own autograd state is left alone.
      bool is_input = false;
      for (const Tensor* in : tensors) is_input |= in->defined() && in->is_same(t);
      if (is_input || t.requires_grad() || t.grad_fn()) t = alias(t);
      if (is_anomaly_enabled()) check_finite(t, "forward of " + op_name(typeid(T)));
      node->add_output(t);
      // Integer outputs (indices, counts) are not differentiable, as in PyTorch.
      if (is_floating(t.dtype())) set_history(t, node, index);
      ++index;
    });
    return out;
  }
};

}  // namespace kiln::autograd
