// Small models for the optimizer and checkpoint tests, built only from nn::Module and autograd
// ops. Parameter names match PyTorch's nn.Linear, so PyTorch fixtures load into them.
#pragma once

#include <memory>

#include <kiln/kiln.h>

namespace kiln::testing {

/// y = x W^T + b, with weight [out, in] and bias [out], as torch.nn.Linear.
struct TinyLinear : nn::Module {
  Tensor weight, bias;
  TinyLinear(int64_t in, int64_t out, DType dtype = DType::f32) {
    weight = register_parameter("weight", Tensor::randn({out, in}, dtype) * (1.0 / std::sqrt(in)));
    bias = register_parameter("bias", Tensor::randn({out}, dtype) * 0.1);
  }
  Tensor forward(const Tensor& x) override { return matmul(x, weight.transpose(0, 1)) + bias; }
};

/// fc1 -> tanh -> fc2: the MLP of tests/tools/optim_fixtures.py.
struct TinyMLP : nn::Module {
  std::shared_ptr<TinyLinear> fc1, fc2;
  TinyMLP(int64_t in, int64_t hidden, int64_t out, DType dtype = DType::f32) {
    fc1 = register_module("fc1", std::make_shared<TinyLinear>(in, hidden, dtype));
    fc2 = register_module("fc2", std::make_shared<TinyLinear>(hidden, out, dtype));
  }
  Tensor forward(const Tensor& x) override { return fc2->forward(fc1->forward(x).tanh()); }
};

/// mean((prediction - target)^2)
inline Tensor mse(const Tensor& prediction, const Tensor& target) {
  Tensor diff = prediction - target;
  return (diff * diff).mean();
}

}  // namespace kiln::testing
