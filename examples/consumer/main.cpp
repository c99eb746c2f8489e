// Uses an installed kiln: tensors, autograd, and a few steps of training a tiny model.
#include <iostream>

#include <kiln/kiln.h>

using namespace kiln;

// y = relu(x W1 + b1) W2: a composite module, registered by name.
struct TinyNet : nn::Module {
  Tensor w1, b1, w2;
  TinyNet() {
    w1 = register_parameter("w1", Tensor::randn({4, 8}) * 0.5);
    b1 = register_parameter("b1", Tensor::zeros({8}));
    w2 = register_parameter("w2", Tensor::randn({8, 1}) * 0.5);
  }
  Tensor forward(const Tensor& x) override { return matmul((matmul(x, w1) + b1).relu(), w2); }
};

int main() {
  manual_seed(0);
  set_num_threads(2);

  // The tensor and autograd part of the API sample in DESIGN.md.
  Tensor x = Tensor::randn({2, 8, 5, 5}).requires_grad_();
  Tensor v = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3});
  std::vector<float> back = v.to_vector<float>();
  Tensor y = ((x * 2.0f + 1.0f).relu()).sum();
  y.backward();
  std::cout << "d(sum relu(2x + 1))/dx has shape " << shape_str(x.grad().shape()) << "\n";
  Tensor a = Tensor::arange(24).to(DType::f32).reshape({2, 3, 4});
  Tensor s = a.permute({2, 0, 1}).slice(/*dim=*/0, /*start=*/1, /*end=*/3).sum({0, 2}, /*keepdim=*/true);
  // [2, 3, 3] + [2, 3, 1] - [2, 3, 1]
  Tensor m = matmul(a, a.transpose(1, 2)) + exp(a).mean({2}, true) -
             log_softmax(a, /*dim=*/1).sum({2}, true);
  std::cout << "s = " << s << "\nm has shape " << shape_str(m.shape()) << "\n";

  // Fit y = sum(x) on random points with plain gradient descent.
  TinyNet net;
  Tensor inputs = Tensor::randn({64, 4});
  Tensor targets = inputs.sum({1}, true);
  double first = 0, last = 0;
  for (int step = 0; step < 200; ++step) {
    net.zero_grad();
    Tensor loss = (net.forward(inputs) - targets).pow(2).mean();
    loss.backward();
    {
      NoGradGuard no_grad;
      for (Tensor& p : net.parameters()) p.add_(p.grad(), -0.05);
    }
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  std::cout << "loss " << first << " -> " << last << "\n";
  return last < first / 10 ? 0 : 1;
}
