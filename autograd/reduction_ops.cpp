// Differentiable reductions, and log_softmax / softmax.
#include <algorithm>
#include <cmath>

#include <kiln/autograd/function.h>
#include <kiln/autograd/ops.h>
#include <kiln/core/elementwise.h>
#include <kiln/core/reduce.h>
#include <kiln/core/views.h>

namespace kiln {

namespace autograd::ops {

using kernels::Binary;
using Grads = std::vector<Tensor>;

// A reduced gradient g (reduced over `mask`, keepdim or not) reshaped so it broadcasts against the
// input: the reduced dims come back as size 1.
Tensor unreduce(const Tensor& g, const Shape& input_shape, const std::vector<bool>& mask) {
  Shape keep = kernels::reduced_shape(input_shape, mask, /*keepdim=*/true);
  return kernels::view(kernels::contiguous(g), keep);
}

struct Sum : Function<Sum> {
  static Tensor forward(Context& ctx, const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
    ctx.saved_data["shape"] = a.shape();
    ctx.saved_data["mask"] = kernels::reduction_mask(dims, a.dim(), "sum");
    return kernels::reduce(kernels::Reduce::sum, a, dims, keepdim);
  }
  // y = sum_S x:  dy/dx_i = 1 for i in S
  static Grads backward(Context& ctx, const Grads& g) {
    auto shape = std::any_cast<Shape>(ctx.saved_data["shape"]);
    auto mask = std::any_cast<std::vector<bool>>(ctx.saved_data["mask"]);
    return {kernels::contiguous(kernels::expand(unreduce(g[0], shape, mask), shape))};
  }
};

struct Mean : Function<Mean> {
  static Tensor forward(Context& ctx, const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
    auto mask = kernels::reduction_mask(dims, a.dim(), "mean");
    int64_t count = 1;
    for (int64_t d = 0; d < a.dim(); ++d) if (mask[d]) count *= a.shape()[d];
    ctx.saved_data["shape"] = a.shape();
    ctx.saved_data["mask"] = mask;
    ctx.saved_data["count"] = count;
    return kernels::reduce(kernels::Reduce::mean, a, dims, keepdim);
  }
  // y = (1/n) sum_S x:  dy/dx_i = 1/n
  static Grads backward(Context& ctx, const Grads& g) {
    auto shape = std::any_cast<Shape>(ctx.saved_data["shape"]);
    auto mask = std::any_cast<std::vector<bool>>(ctx.saved_data["mask"]);
    auto count = std::any_cast<int64_t>(ctx.saved_data["count"]);
    Tensor scaled = kernels::binary_scalar(Binary::div, g[0], static_cast<double>(count));
    return {kernels::contiguous(kernels::expand(unreduce(scaled, shape, mask), shape))};
  }
};

// max/min over dims: the gradient is shared evenly by the elements equal to the result.
template <kernels::Reduce kOp>
struct ExtremeReduce {
  static Tensor forward(Context& ctx, const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
    Tensor y = kernels::reduce(kOp, a, dims, keepdim);
    ctx.save_for_backward({a, y});
    ctx.saved_data["mask"] = kernels::reduction_mask(dims, a.dim(), "max");
    return y;
  }
  static Grads backward(Context& ctx, const Grads& g) {
    auto s = ctx.saved();
    auto mask = std::any_cast<std::vector<bool>>(ctx.saved_data["mask"]);
    const Shape& shape = s[0].shape();
    Tensor y = unreduce(s[1], shape, mask);
    // hit = [x == y];  dx = g * hit / count(hit)
    Tensor hit = kernels::binary(Binary::eq, s[0], y);
    Tensor count = kernels::reduce(kernels::Reduce::sum, hit, dims_of(mask), /*keepdim=*/true);
    Tensor share = kernels::binary(Binary::div, unreduce(g[0], shape, mask), count);
    return {kernels::binary(Binary::mul, hit, share)};
  }
  static std::vector<int64_t> dims_of(const std::vector<bool>& mask) {
    std::vector<int64_t> dims;
    for (size_t d = 0; d < mask.size(); ++d) if (mask[d]) dims.push_back(static_cast<int64_t>(d));
    if (dims.empty()) dims.push_back(0);  // a 0-dim input: nothing to reduce
    return dims;
  }
};
struct Max : ExtremeReduce<kernels::Reduce::max>, Function<Max> {};
struct Min : ExtremeReduce<kernels::Reduce::min>, Function<Min> {};

struct Var : Function<Var> {
  static Tensor forward(Context& ctx, const Tensor& a, const std::vector<int64_t>& dims,
                        int64_t correction, bool keepdim) {
    auto mask = kernels::reduction_mask(dims, a.dim(), "var");
    int64_t count = 1;
    for (int64_t d = 0; d < a.dim(); ++d) if (mask[d]) count *= a.shape()[d];
    ctx.save_for_backward({a});
    ctx.saved_data["mask"] = mask;
    ctx.saved_data["dims"] = dims;
    ctx.saved_data["denominator"] = static_cast<double>(std::max<int64_t>(count - correction, 0));
    return kernels::var(a, dims, correction, keepdim);
  }
  // y = sum_S (x - mean)^2 / max(n - c, 0):  dy/dx_i = 2 (x_i - mean) / max(n - c, 0)
  static Grads backward(Context& ctx, const Grads& g) {
    Tensor a = ctx.saved()[0];
    auto mask = std::any_cast<std::vector<bool>>(ctx.saved_data["mask"]);
    auto dims = std::any_cast<std::vector<int64_t>>(ctx.saved_data["dims"]);
    double denominator = std::any_cast<double>(ctx.saved_data["denominator"]);
    Tensor mean = kernels::reduce(kernels::Reduce::mean, a, dims, /*keepdim=*/true);
    Tensor centered = kernels::binary(Binary::sub, a, mean);
    Tensor scale = kernels::binary_scalar(Binary::mul, unreduce(g[0], a.shape(), mask), 2.0 / denominator);
    return {kernels::binary(Binary::mul, centered, scale)};
  }
};

struct LogSoftmax : Function<LogSoftmax> {
  static Tensor forward(Context& ctx, const Tensor& a, int64_t dim) {
    dim = wrap_dim(dim, a.dim(), "log_softmax");
    // y = x - max - log(sum(exp(x - max)))
    Tensor m = kernels::reduce(kernels::Reduce::max, a, {dim}, true);
    Tensor shifted = kernels::binary(Binary::sub, a, m);
    Tensor lse = kernels::unary(kernels::Unary::log,
                                kernels::reduce(kernels::Reduce::sum, kernels::unary(kernels::Unary::exp, shifted), {dim}, true));
    Tensor y = kernels::binary(Binary::sub, shifted, lse);
    ctx.save_for_backward({y});
    ctx.saved_data["dim"] = dim;
    return y;
  }
  // dx = g - softmax(x) * sum(g)  with softmax(x) = exp(y)
  static Grads backward(Context& ctx, const Grads& g) {
    Tensor y = ctx.saved()[0];
    int64_t dim = std::any_cast<int64_t>(ctx.saved_data["dim"]);
    Tensor gsum = kernels::reduce(kernels::Reduce::sum, g[0], {dim}, true);
    Tensor p = kernels::unary(kernels::Unary::exp, y);
    return {kernels::binary(Binary::sub, g[0], kernels::binary(Binary::mul, p, gsum))};
  }
};

struct Softmax : Function<Softmax> {
  static Tensor forward(Context& ctx, const Tensor& a, int64_t dim) {
    dim = wrap_dim(dim, a.dim(), "softmax");
    Tensor m = kernels::reduce(kernels::Reduce::max, a, {dim}, true);
    Tensor e = kernels::unary(kernels::Unary::exp, kernels::binary(Binary::sub, a, m));
    Tensor y = kernels::binary(Binary::div, e, kernels::reduce(kernels::Reduce::sum, e, {dim}, true));
    ctx.save_for_backward({y});
    ctx.saved_data["dim"] = dim;
    return y;
  }
  // dx = y * (g - sum(g * y))
  static Grads backward(Context& ctx, const Grads& g) {
    Tensor y = ctx.saved()[0];
    int64_t dim = std::any_cast<int64_t>(ctx.saved_data["dim"]);
    Tensor gy = kernels::reduce(kernels::Reduce::sum, kernels::binary(Binary::mul, g[0], y), {dim}, true);
    return {kernels::binary(Binary::mul, y, kernels::binary(Binary::sub, g[0], gy))};
  }
};

}  // namespace autograd::ops

using namespace autograd::ops;

Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) { return Sum::apply(a, dims, keepdim); }
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) { return Mean::apply(a, dims, keepdim); }
Tensor max(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) { return Max::apply(a, dims, keepdim); }
Tensor min(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) { return Min::apply(a, dims, keepdim); }
Tensor var(const Tensor& a, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  return Var::apply(a, dims, correction, keepdim);
}
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim) { return kernels::argmax(a, dim, keepdim); }
Tensor argmin(const Tensor& a, int64_t dim, bool keepdim) { return kernels::argmin(a, dim, keepdim); }
Tensor log_softmax(const Tensor& a, int64_t dim) { return LogSoftmax::apply(a, dim); }
Tensor softmax(const Tensor& a, int64_t dim) { return Softmax::apply(a, dim); }

}  // namespace kiln
