// Mish (Misra 2019, arXiv 1908.08681): a new primitive, one Function with forward and backward.
//
//   y     = x tanh(sp),                        sp = softplus(x) = log(1 + e^x)
//   dy/dx = tanh(sp) + x (1 - tanh(sp)^2) sigmoid(x),              since d sp/dx = sigmoid(x)
//
// The same layer could be written from existing ops, x * tanh(log(1 + exp(x))), and autograd
// would derive its gradient. As a primitive it makes one pass each way and keeps only x for
// backward, where the composite runs five ops and keeps their intermediate results.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include <kiln/kiln.h>

// softplus(x) without overflow: max(x, 0) + log(1 + e^-|x|).
template <class T>
T softplus(T x) {
  return std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x)));
}

struct MishFunction : kiln::autograd::Function<MishFunction> {
  // x: any shape, f32 or f64 -> y: the same shape and dtype.
  static kiln::Tensor forward(kiln::autograd::Context& ctx, const kiln::Tensor& x_in) {
    kiln::Tensor x = x_in.contiguous();  // the loops below read a plain row-major array
    kiln::Tensor y = kiln::Tensor::empty(x.shape(), x.dtype());
    kiln::dispatch_floating(x.dtype(), "mish", [&]<class T>() {
      const T* px = x.data_ptr<T>();
      T* py = y.data_ptr<T>();
      kiln::parallel_for(0, x.numel(), kiln::grain_for(1), [&](int64_t begin, int64_t end) {
        // y = x tanh(softplus(x))
        for (int64_t i = begin; i < end; ++i) py[i] = px[i] * std::tanh(softplus(px[i]));
      });
    });
    ctx.save_for_backward({x});
    return y;
  }

  // grad[0] = dL/dy, the shape of y -> {dL/dx}.
  static std::vector<kiln::Tensor> backward(kiln::autograd::Context& ctx,
                                            const std::vector<kiln::Tensor>& grad) {
    kiln::Tensor x = ctx.saved()[0];
    kiln::Tensor grad_y = grad[0].contiguous();
    kiln::Tensor grad_x = kiln::Tensor::empty(x.shape(), x.dtype());
    kiln::dispatch_floating(x.dtype(), "mish", [&]<class T>() {
      const T* px = x.data_ptr<T>();
      const T* pg = grad_y.data_ptr<T>();
      T* pdx = grad_x.data_ptr<T>();
      kiln::parallel_for(0, x.numel(), kiln::grain_for(1), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const T t = std::tanh(softplus(px[i]));
          const T sigmoid = T(1) / (T(1) + std::exp(-px[i]));
          // dL/dx = dL/dy (tanh(sp) + x (1 - tanh(sp)^2) sigmoid(x))
          pdx[i] = pg[i] * (t + px[i] * (T(1) - t * t) * sigmoid);
        }
      });
    });
    return {grad_x};
  }
};

// The Module that puts MishFunction in a model: auto act = std::make_shared<Mish>();
class Mish : public kiln::nn::Module {
 public:
  kiln::Tensor forward(const kiln::Tensor& x) override { return MishFunction::apply(x); }
};
