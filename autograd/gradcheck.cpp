#include <kiln/autograd/gradcheck.h>

#include <cmath>
#include <sstream>

#include <kiln/autograd/grad_mode.h>
#include <kiln/autograd/node.h>
#include <kiln/core/generator.h>
#include <kiln/core/views.h>

namespace kiln::autograd {

namespace {

// Storage offset of flat (row-major) element i of t.
int64_t element_offset(const Tensor& t, int64_t i) {
  int64_t off = t.offset();
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    off += (i % t.shape()[d]) * t.strides()[d];
    i /= t.shape()[d];
  }
  return off;
}

double* element_ptr(const Tensor& t, int64_t i) {
  return static_cast<double*>(t.unsafe_impl()->storage->data()) + element_offset(t, i);
}

std::string index_str(const Shape& shape, int64_t flat) {
  Shape idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return shape_str(idx);
}

}  // namespace

bool gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
               const std::vector<Tensor>& inputs, const GradcheckOptions& options) {
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (inputs[k].defined() && inputs[k].requires_grad())
      KILN_CHECK(inputs[k].dtype() == DType::f64, "gradcheck: input ", k, " is ",
                 dtype_name(inputs[k].dtype()), "; central differences need f64 inputs");
  }
  Tensor probe;
  {
    NoGradGuard no_grad;
    probe = fn(inputs);
  }
  KILN_CHECK(probe.dtype() == DType::f64, "gradcheck: the function returned ",
             dtype_name(probe.dtype()), "; expected f64");
  const int64_t n_out = probe.numel();
  // Projections v of the output: one-hot rows of the Jacobian, or random directions.
  std::vector<Tensor> projections;
  if (n_out <= 256) {
    for (int64_t j = 0; j < n_out; ++j) {
      Tensor v = Tensor::zeros(probe.shape(), DType::f64);
      v.data_ptr<double>()[j] = 1;
      projections.push_back(v);
    }
  } else {
    Generator gen(12345);
    for (int r = 0; r < 4; ++r) projections.push_back(Tensor::randn(probe.shape(), DType::f64, &gen));
  }

  auto evaluate = [&]() {
    NoGradGuard no_grad;
    return kernels::contiguous(fn(inputs)).to_vector<double>();
  };

  // Numerical Jacobian columns: J[:, i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps).
  std::vector<std::vector<double>> numerical(inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& in = inputs[k];
    if (!in.defined() || !in.requires_grad()) continue;
    numerical[k].resize(static_cast<size_t>(in.numel() * n_out));
    for (int64_t i = 0; i < in.numel(); ++i) {
      double* x = element_ptr(in, i);
      const double x0 = *x;
      *x = x0 + options.eps;
      std::vector<double> plus = evaluate();
      *x = x0 - options.eps;
      std::vector<double> minus = evaluate();
      *x = x0;
      for (int64_t j = 0; j < n_out; ++j)
        numerical[k][i * n_out + j] = (plus[j] - minus[j]) / (2 * options.eps);
    }
  }

  for (size_t p = 0; p < projections.size(); ++p) {
    const Tensor& v = projections[p];
    const double* pv = v.data_ptr<double>();
    // Analytical: backward with grad_output = v gives v^T J for each input.
    std::vector<Tensor> analytical(inputs.size());
    {
      std::vector<Tensor> saved_grads;
      for (const Tensor& in : inputs) saved_grads.push_back(in.defined() ? in.grad() : Tensor());
      for (const Tensor& in : inputs) if (in.defined()) const_cast<Tensor&>(in).set_grad(Tensor());
      Tensor out = fn(inputs);
      KILN_CHECK(out.requires_grad(), "gradcheck: the output does not require grad; no input"
                 " reaches it through differentiable ops");
      out.backward(v);
      for (size_t k = 0; k < inputs.size(); ++k) {
        if (!inputs[k].defined() || !inputs[k].requires_grad()) continue;
        analytical[k] = inputs[k].grad();
        const_cast<Tensor&>(inputs[k]).set_grad(saved_grads[k]);
      }
    }
    for (size_t k = 0; k < inputs.size(); ++k) {
      const Tensor& in = inputs[k];
      if (!in.defined() || !in.requires_grad()) continue;
      Tensor a = analytical[k].defined() ? kernels::contiguous(analytical[k])
                                         : Tensor::zeros(in.shape(), DType::f64);
      const double* pa = a.data_ptr<double>();
      double worst_excess = 0;
      int64_t worst = -1;
      double worst_a = 0, worst_n = 0;
      for (int64_t i = 0; i < in.numel(); ++i) {
        double num = 0;
        for (int64_t j = 0; j < n_out; ++j) num += pv[j] * numerical[k][i * n_out + j];
        const double diff = std::fabs(pa[i] - num);
        const double excess = diff - (options.atol + options.rtol * std::fabs(num));
        if (excess > worst_excess || (!(diff == diff) && worst < 0)) {
          worst_excess = diff == diff ? excess : INFINITY;
          worst = i;
          worst_a = pa[i];
          worst_n = num;
        }
      }
      if (worst >= 0) {
        std::ostringstream msg;
        msg << "gradcheck: input " << k << " of shape " << shape_str(in.shape()) << ", element "
            << index_str(in.shape(), worst) << ": analytical " << worst_a << " vs numerical "
            << worst_n << " (";
        if (n_out <= 256) msg << "output element " << index_str(probe.shape(), static_cast<int64_t>(p));
        else msg << "random projection " << p;
        msg << "; atol " << options.atol << ", rtol " << options.rtol << ")";
        throw Error(msg.str());
      }
    }
  }
  return true;
}

}  // namespace kiln::autograd
