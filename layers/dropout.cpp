// Dropout (Srivastava et al., 2014), in its "inverted" form, as PyTorch:
//
// 1. The math. In training, for each element i independently:
//      m_i ~ Bernoulli(1 - p),   y_i = x_i m_i / (1 - p)         so E[y_i] = x_i
//    and in eval mode y = x. Backward, with the same mask:
//      dL/dx_i = dL/dy_i m_i / (1 - p)
//    The mask is drawn from Philox counters, one 32-bit word per element: element i reads word
//    i % 4 of block first + i / 4, where `first` is reserved from the generator. So the mask
//    depends only on the generator's seed and offset, never on how the work is split.
#include <kiln/layers/dropout.h>

#include <kiln/autograd/function.h>
#include <kiln/core/elementwise.h>
#include <kiln/core/parallel.h>
#include <kiln/core/views.h>
#include <kiln/layers/repr.h>

namespace kiln::kernels {

// 2. Forward kernel: the mask and the output in one pass.
DropoutResult dropout_forward(const Tensor& x_in, double p, uint64_t seed, uint64_t first_block) {
  Tensor x = kernels::contiguous(x_in);
  DropoutResult r{Tensor::empty(x.shape(), x.dtype()), Tensor::empty(x.shape(), x.dtype())};
  const int64_t n = x.numel();
  const int64_t blocks = (n + 3) / 4;
  // keep when u >= p;  scale = 1 / (1 - p)  (p == 1 drops everything: scale 0, not inf)
  const double scale_value = p < 1 ? 1.0 / (1.0 - p) : 0.0;
  dispatch_floating(x.dtype(), "dropout", [&]<class T>() {
    const T* px = x.data_ptr<T>();
    T* py = r.y.data_ptr<T>();
    T* pm = r.mask.data_ptr<T>();
    const T scale = static_cast<T>(scale_value);
    parallel_for(0, blocks, 4096, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        PhiloxBlock block = philox(seed, first_block + static_cast<uint64_t>(b));
        for (int64_t j = 0; j < 4 && b * 4 + j < n; ++j) {
          const int64_t i = b * 4 + j;
          // u_i = w / 2^32 in [0, 1)
          const double u = static_cast<double>(block.v[j]) * 0x1.0p-32;
          pm[i] = u >= p ? scale : T(0);
          py[i] = px[i] * pm[i];
        }
      }
    });
  });
  return r;
}

// 3. Backward kernel.
Tensor dropout_backward(const Tensor& grad_y, const Tensor& mask) {
  // dL/dx = dL/dy * m / (1 - p), with the scale folded into the mask
  return binary(Binary::mul, grad_y, mask);
}

}  // namespace kiln::kernels

namespace kiln::nn {

namespace functional {

namespace {

// 4. The differentiable function (grad_fn: DropoutBackward).
struct Dropout : autograd::Function<Dropout> {
  static Tensor forward(autograd::Context& ctx, const Tensor& x, double p, Generator* gen) {
    Generator& g = gen ? *gen : default_generator();
    const uint64_t first = g.reserve(static_cast<uint64_t>((x.numel() + 3) / 4));
    kernels::DropoutResult r = kernels::dropout_forward(x, p, g.seed(), first);
    ctx.save_for_backward({r.mask});
    return r.y;
  }
  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& g) {
    return {kernels::dropout_backward(g[0], ctx.saved()[0])};
  }
};

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  KILN_CHECK(x.defined(), "dropout: the input is undefined");
  KILN_CHECK(p >= 0 && p <= 1, "dropout: p is the probability of dropping an element and must be"
             " in [0, 1], got ", p);
  KILN_CHECK(is_floating(x.dtype()), "dropout: expected a floating input (f32 or f64), got ",
             dtype_name(x.dtype()), " of shape ", x.shape());
  // As PyTorch: identity (and no random draw) in eval mode, for p == 0 and for empty inputs.
  if (!training || p == 0 || x.numel() == 0) return x;
  return Dropout::apply(x, p, gen);
}

}  // namespace functional

// 5. The Module.
Dropout::Dropout(double p, Generator* generator) : p(p), generator(generator) {
  KILN_CHECK(p >= 0 && p <= 1, "Dropout: p is the probability of dropping an element and must be"
             " in [0, 1], got ", p);
}

Tensor Dropout::forward(const Tensor& x) {
  return functional::dropout(x, p, is_training(), generator);
}

std::string Dropout::extra_repr() const { return "p=" + repr_float(p) + ", inplace=False"; }

}  // namespace kiln::nn
