// The graph. Every tensor made by a recorded op points (grad_fn) at the Node that made it; each
// Node points (next_edges) at the Nodes that made its inputs, and leaves end in AccumulateGrad.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <kiln/core/tensor.h>

namespace kiln::autograd {

class Node;

/// Input `input_nr` of `node`; an edge with no node means "this input needs no gradient".
struct Edge {
  std::shared_ptr<Node> node;  ///< the node that takes the gradient, or null
  uint32_t input_nr = 0;       ///< which of its gradient inputs (the output number of the tensor)
  /// True when the edge leads somewhere.
  bool valid() const { return node != nullptr; }
};

/// A backward step of the graph: one recorded op, or a leaf's AccumulateGrad.
class Node {
 public:
  /// Takes the next sequence number (later nodes run first in backward).
  Node();
  virtual ~Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  /// Given d(loss)/d(output k) for each output (zeros where no gradient arrived), returns
  /// d(loss)/d(input i) for each next edge i (undefined where an input needs none).
  virtual std::vector<Tensor> apply(std::vector<Tensor>&& grad_outputs) = 0;
  /// The op's name in messages, e.g. "MulBackward".
  virtual std::string name() const = 0;
  /// Frees what forward saved; a later apply() throws. Called after backward without retain_graph.
  virtual void release() {}

  /// One edge per input of the forward op, in argument order.
  const std::vector<Edge>& next_edges() const { return next_edges_; }
  /// The order of creation; the engine runs ready nodes latest first.
  uint64_t sequence_nr() const { return sequence_nr_; }
  /// Shape and dtype of each output, to materialize zero gradients.
  struct OutputInfo {
    Shape shape;  ///< the output's shape
    DType dtype;  ///< the output's dtype
  };
  /// One entry per output of the forward op.
  const std::vector<OutputInfo>& outputs() const { return outputs_; }

 protected:
  std::vector<Edge> next_edges_;     ///< see next_edges()
  std::vector<OutputInfo> outputs_;  ///< see outputs()

 private:
  uint64_t sequence_nr_;
};

/// The sink of a leaf tensor: adds the incoming gradient into the leaf's .grad().
class AccumulateGrad final : public Node {
 public:
  /// The accumulator of the leaf `variable`.
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> variable);
  std::vector<Tensor> apply(std::vector<Tensor>&& grad_outputs) override;
  std::string name() const override { return "AccumulateGrad"; }

 private:
  std::shared_ptr<TensorImpl> variable_;
};

/// Where a gradient for `t` must go: its grad_fn's output, or its leaf accumulator, or nowhere.
Edge gradient_edge(const Tensor& t);

/// Runs backward from `roots` seeded with `grads` (undefined: ones, for one-element roots).
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
                  bool retain_graph);

/// Throws kiln::Error when `t` holds a NaN or Inf; `what` names the op and the tensor.
void check_finite(const Tensor& t, const std::string& what);

}  // namespace kiln::autograd
