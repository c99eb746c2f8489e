// Differentiable matmul.
#include <kiln/autograd/function.h>
#include <kiln/autograd/ops.h>
#include <kiln/core/linalg.h>
#include <kiln/core/reduce.h>
#include <kiln/core/views.h>

namespace kiln {

namespace autograd::ops {

struct Matmul : Function<Matmul> {
  static Tensor forward(Context& ctx, const Tensor& a, const Tensor& b) {
    ctx.save_for_backward({a, b});
    return kernels::matmul(a, b);
  }
  // Y = A B:  dA = G B^T,  dB = A^T G  (batch dims broadcast, so each gradient is summed back to
  // its operand's shape; 1-D operands are treated as [1, K] and [K, 1]).
  static std::vector<Tensor> backward(Context& ctx, const std::vector<Tensor>& grads) {
    auto s = ctx.saved();
    Tensor a = s[0], b = s[1], g = grads[0];
    const bool a_vec = a.dim() == 1, b_vec = b.dim() == 1;
    Tensor a2 = a_vec ? kernels::unsqueeze(a, 0) : a;
    Tensor b2 = b_vec ? kernels::unsqueeze(b, -1) : b;
    if (a_vec) g = kernels::unsqueeze(g, g.dim() - 1);  // restore the M = 1 dim
    if (b_vec) g = kernels::unsqueeze(g, g.dim());      // restore the N = 1 dim
    auto t = [](const Tensor& x) {
      std::vector<int64_t> dims(static_cast<size_t>(x.dim()));
      for (int64_t i = 0; i < x.dim(); ++i) dims[i] = i;
      std::swap(dims[x.dim() - 1], dims[x.dim() - 2]);
      return kernels::permute(x, dims);
    };
    Tensor ga, gb;
    if (ctx.needs_input_grad(0)) {
      ga = kernels::sum_to(kernels::matmul(g, t(b2)), a2.shape());
      if (a_vec) ga = kernels::view(kernels::contiguous(ga), a.shape());
    }
    if (ctx.needs_input_grad(1)) {
      gb = kernels::sum_to(kernels::matmul(t(a2), g), b2.shape());
      if (b_vec) gb = kernels::view(kernels::contiguous(gb), b.shape());
    }
    return {ga, gb};
  }
};

}  // namespace autograd::ops

Tensor matmul(const Tensor& a, const Tensor& b) { return autograd::ops::Matmul::apply(a, b); }

}  // namespace kiln
