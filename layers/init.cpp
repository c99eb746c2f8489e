// Weight initializations. Each draws a fresh tensor of U[0, 1) or N(0, 1) samples from the
// generator (Tensor::rand / Tensor::randn, counter-based, so thread-count independent), maps it to
// the target distribution, and copies it into the weight with graph recording off.
#include <kiln/layers/init.h>

#include <cmath>

#include <kiln/autograd/grad_mode.h>

namespace kiln::nn::init {

namespace {

// values = scale * samples + shift, copied into t.
void fill_affine(const Tensor& t, Tensor samples, double scale, double shift) {
  dispatch_floating(samples.dtype(), "init", [&]<class T>() {
    T* p = samples.data_ptr<T>();
    const int64_t n = samples.numel();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(scale * static_cast<double>(p[i]) + shift);
  });
  NoGradGuard no_grad;
  Tensor(t).copy_(samples);
}

void check_floating(const Tensor& t, const char* op) {
  KILN_CHECK(t.defined(), op, ": the tensor is undefined");
  KILN_CHECK(is_floating(t.dtype()), op, ": expected a floating tensor (f32 or f64), got ",
             dtype_name(t.dtype()), " of shape ", t.shape());
}

int64_t fan_for(const Tensor& t, FanMode mode, const char* op) {
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  const int64_t fan = mode == FanMode::fan_in ? fan_in : fan_out;
  KILN_CHECK(fan > 0, op, ": the ", mode == FanMode::fan_in ? "fan_in" : "fan_out",
             " of a tensor of shape ", t.shape(), " is 0; cannot scale by 1 / sqrt(fan)");
  return fan;
}

}  // namespace

double calculate_gain(Nonlinearity nonlinearity, double param) {
  switch (nonlinearity) {
    case Nonlinearity::linear:
    case Nonlinearity::conv1d:
    case Nonlinearity::conv2d:
    case Nonlinearity::conv3d:
    case Nonlinearity::sigmoid: return 1.0;
    case Nonlinearity::tanh: return 5.0 / 3.0;
    case Nonlinearity::relu: return std::sqrt(2.0);
    // gain = sqrt(2 / (1 + slope^2))
    case Nonlinearity::leaky_relu: return std::sqrt(2.0 / (1.0 + param * param));
    case Nonlinearity::selu: return 3.0 / 4.0;
  }
  KILN_FAIL("calculate_gain: unknown nonlinearity ", static_cast<int>(nonlinearity));
}

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& weight) {
  KILN_CHECK(weight.defined(), "calculate_fan_in_and_fan_out: the tensor is undefined");
  KILN_CHECK(weight.dim() >= 2, "calculate_fan_in_and_fan_out: expected a weight with at least 2"
             " dims [out, in, ...], got shape ", weight.shape());
  // receptive field = prod(k...) for [out, in, k...]
  int64_t receptive = 1;
  for (int64_t d = 2; d < weight.dim(); ++d) receptive *= weight.shape()[d];
  return {weight.shape()[1] * receptive, weight.shape()[0] * receptive};
}

Tensor uniform_(const Tensor& t, double low, double high, Generator* gen) {
  check_floating(t, "uniform_");
  KILN_CHECK(low <= high, "uniform_: expected low <= high, got low ", low, " and high ", high);
  // u ~ U[0, 1)  ->  low + (high - low) u
  fill_affine(t, Tensor::rand(t.shape(), t.dtype(), gen), high - low, low);
  return t;
}

Tensor normal_(const Tensor& t, double mean, double std, Generator* gen) {
  check_floating(t, "normal_");
  KILN_CHECK(std >= 0, "normal_: expected std >= 0, got ", std);
  // z ~ N(0, 1)  ->  mean + std z
  fill_affine(t, Tensor::randn(t.shape(), t.dtype(), gen), std, mean);
  return t;
}

Tensor constant_(const Tensor& t, double value) {
  check_floating(t, "constant_");
  NoGradGuard no_grad;
  Tensor(t).fill_(value);
  return t;
}

Tensor zeros_(const Tensor& t) { return constant_(t, 0); }
Tensor ones_(const Tensor& t) { return constant_(t, 1); }

Tensor xavier_uniform_(const Tensor& t, double gain, Generator* gen) {
  check_floating(t, "xavier_uniform_");
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  KILN_CHECK(fan_in + fan_out > 0, "xavier_uniform_: fan_in + fan_out is 0 for shape ", t.shape());
  // b = gain sqrt(6 / (fan_in + fan_out))
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  return uniform_(t, -bound, bound, gen);
}

Tensor xavier_normal_(const Tensor& t, double gain, Generator* gen) {
  check_floating(t, "xavier_normal_");
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  KILN_CHECK(fan_in + fan_out > 0, "xavier_normal_: fan_in + fan_out is 0 for shape ", t.shape());
  // std = gain sqrt(2 / (fan_in + fan_out))
  const double std = gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
  return normal_(t, 0, std, gen);
}

Tensor kaiming_uniform_(const Tensor& t, double a, FanMode mode, Nonlinearity nonlinearity,
                        Generator* gen) {
  check_floating(t, "kaiming_uniform_");
  if (t.numel() == 0) return t;  // nothing to fill, as PyTorch
  const int64_t fan = fan_for(t, mode, "kaiming_uniform_");
  // std = gain / sqrt(fan);  b = sqrt(3) std, the bound of a uniform with that std
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan));
  const double bound = std::sqrt(3.0) * std;
  return uniform_(t, -bound, bound, gen);
}

Tensor kaiming_normal_(const Tensor& t, double a, FanMode mode, Nonlinearity nonlinearity,
                       Generator* gen) {
  check_floating(t, "kaiming_normal_");
  if (t.numel() == 0) return t;  // nothing to fill, as PyTorch
  const int64_t fan = fan_for(t, mode, "kaiming_normal_");
  // std = gain / sqrt(fan)
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan));
  return normal_(t, 0, std, gen);
}

}  // namespace kiln::nn::init
