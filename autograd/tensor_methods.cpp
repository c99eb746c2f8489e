// Tensor's op methods: each forwards to the differentiable free function of the same name.
// In-place writes check that autograd is not watching the tensor.
#include <kiln/autograd/grad_mode.h>
#include <kiln/autograd/ops.h>
#include <kiln/core/elementwise.h>
#include <kiln/core/tensor.h>

namespace kiln {

Tensor Tensor::to(DType dtype) const { return kiln::to(*this, dtype); }
Tensor Tensor::contiguous() const { return kiln::contiguous(*this); }
Tensor Tensor::clone() const { return kiln::clone(*this); }
Tensor Tensor::view(const Shape& shape) const { return kiln::view(*this, shape); }
Tensor Tensor::reshape(const Shape& shape) const { return kiln::reshape(*this, shape); }
Tensor Tensor::permute(const std::vector<int64_t>& dims) const { return kiln::permute(*this, dims); }
Tensor Tensor::transpose(int64_t d0, int64_t d1) const { return kiln::transpose(*this, d0, d1); }
Tensor Tensor::slice(int64_t dim, int64_t start, int64_t end, int64_t step) const {
  return kiln::slice(*this, dim, start, end, step);
}
Tensor Tensor::expand(const Shape& shape) const { return kiln::expand(*this, shape); }
Tensor Tensor::squeeze() const { return kiln::squeeze(*this); }
Tensor Tensor::squeeze(int64_t dim) const { return kiln::squeeze(*this, dim); }
Tensor Tensor::unsqueeze(int64_t dim) const { return kiln::unsqueeze(*this, dim); }
Tensor Tensor::flatten(int64_t s, int64_t e) const { return kiln::flatten(*this, s, e); }

Tensor Tensor::sum(const std::vector<int64_t>& dims, bool keepdim) const { return kiln::sum(*this, dims, keepdim); }
Tensor Tensor::mean(const std::vector<int64_t>& dims, bool keepdim) const { return kiln::mean(*this, dims, keepdim); }
Tensor Tensor::max(const std::vector<int64_t>& dims, bool keepdim) const { return kiln::max(*this, dims, keepdim); }
Tensor Tensor::min(const std::vector<int64_t>& dims, bool keepdim) const { return kiln::min(*this, dims, keepdim); }
Tensor Tensor::var(const std::vector<int64_t>& dims, int64_t correction, bool keepdim) const {
  return kiln::var(*this, dims, correction, keepdim);
}
Tensor Tensor::argmax(int64_t dim, bool keepdim) const { return kiln::argmax(*this, dim, keepdim); }
Tensor Tensor::neg() const { return kiln::neg(*this); }
Tensor Tensor::exp() const { return kiln::exp(*this); }
Tensor Tensor::log() const { return kiln::log(*this); }
Tensor Tensor::sqrt() const { return kiln::sqrt(*this); }
Tensor Tensor::rsqrt() const { return kiln::rsqrt(*this); }
Tensor Tensor::abs() const { return kiln::abs(*this); }
Tensor Tensor::pow(double exponent) const { return kiln::pow(*this, exponent); }
Tensor Tensor::relu() const { return kiln::relu(*this); }
Tensor Tensor::sigmoid() const { return kiln::sigmoid(*this); }
Tensor Tensor::tanh() const { return kiln::tanh(*this); }
Tensor Tensor::clamp(double lo, double hi) const { return kiln::clamp(*this, lo, hi); }
Tensor Tensor::matmul(const Tensor& other) const { return kiln::matmul(*this, other); }

namespace {
// In-place writes are not recorded, so they are refused where autograd would need them.
void check_inplace(const Tensor& t, const char* op) {
  if (!GradMode::is_enabled()) return;
  KILN_CHECK(!t.requires_grad(), op, ": a tensor of shape ", t.shape(),
             " that requires grad cannot be modified in place while autograd records; wrap the"
             " update in NoGradGuard (as optimizers do), or use the out-of-place op");
}

// A destination whose elements share memory (an expanded tensor) would be read and written by
// several chunks at once; refused as PyTorch does (fill_ writes one value and is allowed).
void check_no_overlap(const Tensor& t, const char* op) {
  for (int64_t d = 0; d < t.dim(); ++d)
    KILN_CHECK(t.strides()[d] != 0 || t.shape()[d] <= 1, op, ": the destination of shape ",
               t.shape(), " and strides ", t.strides(), " has elements that share memory (it is"
               " expanded); clone() it before writing in place");
}
}  // namespace

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace(*this, "copy_");
  check_no_overlap(*this, "copy_");
  kernels::copy(*this, src);
  impl().storage->bump_version();
  return *this;
}

Tensor& Tensor::fill_(double value) {
  check_inplace(*this, "fill_");
  kernels::fill(*this, value);
  impl().storage->bump_version();
  return *this;
}

Tensor& Tensor::zero_() { return fill_(0); }

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_inplace(*this, "add_");
  check_no_overlap(*this, "add_");
  kernels::add_into(*this, other, alpha);
  impl().storage->bump_version();
  return *this;
}

Tensor& Tensor::mul_(double value) {
  check_inplace(*this, "mul_");
  check_no_overlap(*this, "mul_");
  kernels::scale_into(*this, value);
  impl().storage->bump_version();
  return *this;
}

Tensor& Tensor::mul_(const Tensor& other) {
  check_inplace(*this, "mul_");
  check_no_overlap(*this, "mul_");
  kernels::mul_into(*this, other);
  impl().storage->bump_version();
  return *this;
}

}  // namespace kiln
