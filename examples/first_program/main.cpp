// A first kiln program: tensors, one backward pass, and a tiny classifier trained with Adam.
#include <iostream>

#include <kiln/kiln.h>

using namespace kiln;

int main() {
  manual_seed(0);  // every random draw below is reproducible, at any thread count

  // ---- 1. Tensors: row-major, f32 unless asked otherwise, broadcasting like NumPy ----
  Tensor a = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector(std::vector<float>{10, 20, 30}, {3});
  std::cout << "a + b = " << a + b << "\n";                 // [2, 3] + [3] -> [2, 3]
  std::cout << "row sums = " << a.sum({1}) << "\n";         // [2]
  std::cout << "a a^T = " << matmul(a, a.transpose(0, 1)) << "\n";

  // ---- 2. Autograd: y = sum(3 x^2), so dy/dx = 6 x ----
  Tensor x = Tensor::from_vector(std::vector<float>{1, -2, 3}, {3}).requires_grad_();
  Tensor y = (x.pow(2) * 3.0).sum();
  y.backward();
  std::cout << "dy/dx = " << x.grad() << "\n";              // 6, -12, 18

  // ---- 3. A tiny model: is a point of the plane in the 1st/3rd quadrant (x0 x1 > 0)? ----
  Tensor points = Tensor::randn({256, 2});
  Tensor product = points.slice(1, 0, 1) * points.slice(1, 1, 2);          // [256, 1]
  Tensor labels = gt(product, Tensor::zeros({1})).reshape({256}).to(DType::i64);

  auto net = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(2, 16),
                                              std::make_shared<nn::ReLU>(),
                                              std::make_shared<nn::Linear>(16, 2));
  optim::Adam opt(net->parameters(), optim::AdamOptions{.lr = 0.05});

  double first_loss = 0, last_loss = 0;
  for (int step = 0; step < 200; ++step) {
    opt.zero_grad();
    Tensor loss = nn::functional::cross_entropy(net->forward(points), labels);
    loss.backward();
    opt.step();
    if (step == 0) first_loss = loss.item<double>();
    last_loss = loss.item<double>();
    if (step % 50 == 0) std::cout << "step " << step << "  loss " << last_loss << "\n";
  }

  NoGradGuard no_grad;  // evaluation records no graph
  Tensor predicted = net->forward(points).argmax(1);
  double accuracy = eq(predicted, labels).to(DType::f64).mean().item<double>();
  std::cout << "loss " << first_loss << " -> " << last_loss << ", training accuracy "
            << accuracy << "\n";
  return last_loss < first_loss / 2 ? 0 : 1;
}
