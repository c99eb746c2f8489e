// nn::init: PyTorch's weight initializations (torch.nn.init), drawn from kiln's Generator.
//
// Every function fills its tensor in place without recording a graph (as under torch.no_grad),
// returns the same tensor, and draws from `gen`, or from default_generator() when it is null, so
// a seeded generator gives the same values on every machine and at any thread count.
//
// Fans are counted as PyTorch counts them, for any weight of shape [out, in, k...]:
//   fan_in = in * prod(k),  fan_out = out * prod(k)
// so Linear [out, in] and Conv2d [out, in / groups, kh, kw] weights both work.
#pragma once

#include <cstdint>
#include <utility>

#include <kiln/core/generator.h>
#include <kiln/core/tensor.h>

namespace kiln::nn::init {

/// Which fan kaiming_uniform_() and kaiming_normal_() scale by.
enum class FanMode { fan_in, fan_out };
/// The nonlinearity whose gain calculate_gain() returns.
enum class Nonlinearity { linear, conv1d, conv2d, conv3d, sigmoid, tanh, relu, leaky_relu, selu };

/// The recommended gain for a nonlinearity (torch.nn.init.calculate_gain): 1 for linear, conv and
/// sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + param^2)) for leaky_relu (param is the
/// negative slope), 3/4 for selu.
double calculate_gain(Nonlinearity nonlinearity, double param = 0.01);

/// {fan_in, fan_out} of a weight with at least 2 dims.
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& weight);

/// U(low, high).
Tensor uniform_(const Tensor& t, double low = 0, double high = 1, Generator* gen = nullptr);
/// N(mean, std^2).
Tensor normal_(const Tensor& t, double mean = 0, double std = 1, Generator* gen = nullptr);
/// Every element `value`.
Tensor constant_(const Tensor& t, double value);
/// Every element 0.
Tensor zeros_(const Tensor& t);
/// Every element 1.
Tensor ones_(const Tensor& t);

/// U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))   (Glorot & Bengio, 2010).
Tensor xavier_uniform_(const Tensor& t, double gain = 1, Generator* gen = nullptr);
/// N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)).
Tensor xavier_normal_(const Tensor& t, double gain = 1, Generator* gen = nullptr);

/// U(-b, b) with b = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a)   (He et al.,
/// 2015). With a = sqrt(5) and the defaults this is nn.Linear's and nn.Conv2d's weight init,
/// b = 1 / sqrt(fan_in).
Tensor kaiming_uniform_(const Tensor& t, double a = 0, FanMode mode = FanMode::fan_in,
                        Nonlinearity nonlinearity = Nonlinearity::leaky_relu,
                        Generator* gen = nullptr);
/// N(0, std^2) with std = gain / sqrt(fan).
Tensor kaiming_normal_(const Tensor& t, double a = 0, FanMode mode = FanMode::fan_in,
                       Nonlinearity nonlinearity = Nonlinearity::leaky_relu,
                       Generator* gen = nullptr);

}  // namespace kiln::nn::init
