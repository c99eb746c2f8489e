#include <kiln/core/tensor.h>

#include <cmath>
#include <cstring>
#include <limits>

#include <kiln/core/elementwise.h>
#include <kiln/core/generator.h>
#include <kiln/core/parallel.h>
#include <kiln/core/views.h>

namespace kiln {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i64: return "i64";
  }
  return "unknown";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) {
    KILN_CHECK(s >= 0, "shape: sizes must be non-negative, got ", shape);
    KILN_CHECK(!__builtin_mul_overflow(n, s, &n), "shape: the element count of ", shape,
               " overflows int64");
  }
  return n;
}

int64_t TensorImpl::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    strides[d] = stride;
    stride *= std::max<int64_t>(shape[d], 1);
  }
  return strides;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  const int64_t lo = ndim == 0 ? -1 : -ndim, hi = ndim == 0 ? 0 : ndim - 1;
  KILN_CHECK(dim >= lo && dim <= hi, op, ": dim ", dim, " is out of range for a tensor with ",
             ndim, " dims (expected ", lo, " to ", hi, ")");
  return dim < 0 ? dim + (ndim == 0 ? 1 : ndim) : dim;
}

// ---- factories ---------------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  const int64_t n = shape_numel(shape);
  constexpr int64_t kMaxBytes = int64_t{1} << 46;  // 64 TiB: beyond any real machine
  KILN_CHECK(n <= kMaxBytes / static_cast<int64_t>(itemsize(dtype)), "empty: shape ", shape,
             " of ", dtype_name(dtype), " needs more memory than any machine has");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(n) * itemsize(dtype));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) { return full(shape, 0, dtype); }
Tensor Tensor::ones(const Shape& shape, DType dtype) { return full(shape, 1, dtype); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  if (value == 0) {
    if (t.numel() > 0) std::memset(t.raw_data_ptr(), 0, t.numel() * itemsize(dtype));
  } else {
    kernels::fill(t, value);
  }
  return t;
}

Tensor Tensor::scalar(double value, DType dtype) { return full({}, value, dtype); }

Tensor Tensor::arange(int64_t end, DType dtype) { return arange(0, static_cast<double>(end), 1, dtype); }

Tensor Tensor::arange(double start, double end, double step, DType dtype) {
  KILN_CHECK(step != 0, "arange: step must be non-zero");
  KILN_CHECK(std::isfinite(start) && std::isfinite(end), "arange: start ", start, " and end ",
             end, " must be finite");
  double count = std::ceil((end - start) / step);
  KILN_CHECK(count < 9e15, "arange: ", count, " elements is too many");
  int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
  Tensor t = empty({n}, dtype);
  dispatch(dtype, [&]<class T>() {
    T* p = t.data_ptr<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + static_cast<double>(i) * step);
  });
  return t;
}

namespace {
// Uniform [0, 1) from the top bits of a 32-bit word (f32) or two words (f64).
inline float uniform_f32(uint32_t bits) { return static_cast<float>(bits >> 8) * 0x1.0p-24f; }
inline double uniform_f64(uint32_t hi, uint32_t lo) {
  return static_cast<double>(((static_cast<uint64_t>(hi) << 32) | lo) >> 11) * 0x1.0p-53;
}

// Fills `n` values; element i uses block first_block + i / per_block of the stream, so the result
// depends on the generator state only, not on the chunking.
template <class T, class Fill>
void fill_random(T* out, int64_t n, int64_t per_block, uint64_t seed, uint64_t first_block,
                 Fill&& fill_block) {
  const int64_t blocks = (n + per_block - 1) / per_block;
  parallel_for(0, blocks, 4096, [&](int64_t b0, int64_t b1) {
    T tmp[4] = {};
    for (int64_t b = b0; b < b1; ++b) {
      PhiloxBlock block = philox(seed, first_block + static_cast<uint64_t>(b));
      fill_block(block, tmp);
      for (int64_t j = 0; j < per_block && b * per_block + j < n; ++j) out[b * per_block + j] = tmp[j];
    }
  });
}
}  // namespace

Tensor Tensor::rand(const Shape& shape, DType dtype, Generator* gen) {
  KILN_CHECK(is_floating(dtype), "rand: expected a floating dtype, got ", dtype_name(dtype));
  Generator& g = gen ? *gen : default_generator();
  Tensor t = empty(shape, dtype);
  const int64_t n = t.numel();
  if (dtype == DType::f32) {
    uint64_t first = g.reserve(static_cast<uint64_t>((n + 3) / 4));
    fill_random<float>(t.data_ptr<float>(), n, 4, g.seed(), first, [](const PhiloxBlock& b, float* o) {
      for (int j = 0; j < 4; ++j) o[j] = uniform_f32(b.v[j]);
    });
  } else {
    uint64_t first = g.reserve(static_cast<uint64_t>((n + 1) / 2));
    fill_random<double>(t.data_ptr<double>(), n, 2, g.seed(), first, [](const PhiloxBlock& b, double* o) {
      o[0] = uniform_f64(b.v[0], b.v[1]);
      o[1] = uniform_f64(b.v[2], b.v[3]);
    });
  }
  return t;
}

Tensor Tensor::randn(const Shape& shape, DType dtype, Generator* gen) {
  KILN_CHECK(is_floating(dtype), "randn: expected a floating dtype, got ", dtype_name(dtype));
  Generator& g = gen ? *gen : default_generator();
  Tensor t = empty(shape, dtype);
  const int64_t n = t.numel();
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  // Box-Muller: two uniforms u1 in (0, 1], u2 in [0, 1) give r cos(2 pi u2), r sin(2 pi u2) with
  // r = sqrt(-2 log u1).
  if (dtype == DType::f32) {
    uint64_t first = g.reserve(static_cast<uint64_t>((n + 3) / 4));
    fill_random<float>(t.data_ptr<float>(), n, 4, g.seed(), first, [&](const PhiloxBlock& b, float* o) {
      for (int j = 0; j < 4; j += 2) {
        double u1 = 1.0 - uniform_f32(b.v[j]), u2 = uniform_f32(b.v[j + 1]);
        double r = std::sqrt(-2.0 * std::log(u1));
        o[j] = static_cast<float>(r * std::cos(kTwoPi * u2));
        o[j + 1] = static_cast<float>(r * std::sin(kTwoPi * u2));
      }
    });
  } else {
    uint64_t first = g.reserve(static_cast<uint64_t>((n + 1) / 2));
    fill_random<double>(t.data_ptr<double>(), n, 2, g.seed(), first, [&](const PhiloxBlock& b, double* o) {
      double u1 = 1.0 - uniform_f64(b.v[0], b.v[1]), u2 = uniform_f64(b.v[2], b.v[3]);
      double r = std::sqrt(-2.0 * std::log(u1));
      o[0] = r * std::cos(kTwoPi * u2);
      o[1] = r * std::sin(kTwoPi * u2);
    });
  }
  return t;
}

namespace {
template <class T>
Tensor tensor_from_values(const std::vector<T>& values, const Shape& shape) {
  Shape s = shape.empty() ? Shape{static_cast<int64_t>(values.size())} : shape;
  const int64_t n = shape_numel(s);
  KILN_CHECK(n == static_cast<int64_t>(values.size()), "from_vector: shape ", s, " holds ", n,
             " elements, but ", values.size(), " values were given");
  Tensor t = Tensor::empty(s, dtype_of<T>());
  if (n > 0) std::memcpy(t.raw_data_ptr(), values.data(), values.size() * sizeof(T));
  return t;
}
}  // namespace

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape) {
  return tensor_from_values(values, shape);
}
Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape) {
  return tensor_from_values(values, shape);
}
Tensor Tensor::from_vector(const std::vector<int64_t>& values, const Shape& shape) {
  return tensor_from_values(values, shape);
}

// ---- metadata and access -----------------------------------------------------------------------

int64_t Tensor::size(int64_t d) const {
  KILN_CHECK(dim() > 0, "size: dim ", d, " is out of range for a tensor with 0 dims (shape [])");
  return shape()[wrap_dim(d, dim(), "size")];
}

bool Tensor::is_contiguous() const {
  const TensorImpl& t = impl();
  int64_t expected = 1;
  for (int64_t d = static_cast<int64_t>(t.shape.size()) - 1; d >= 0; --d) {
    if (t.shape[d] == 1) continue;
    if (t.strides[d] != expected) return false;
    expected *= t.shape[d];
  }
  return true;
}

void* Tensor::raw_data_ptr() const {
  const TensorImpl& t = impl();
  if (!t.storage || t.storage->data() == nullptr) return nullptr;
  return static_cast<char*>(t.storage->data()) + t.offset * static_cast<int64_t>(itemsize(t.dtype));
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = kernels::contiguous(*this);
  std::vector<T> out(static_cast<size_t>(c.numel()));
  dispatch(c.dtype(), [&]<class S>() {
    const S* p = c.data_ptr<S>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<T>(p[i]);
  });
  return out;
}

template <class T>
T Tensor::item() const {
  KILN_CHECK(numel() == 1, "item: expected a tensor with one element, got shape ", shape());
  return to_vector<T>()[0];
}

template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int64_t Tensor::item<int64_t>() const;

}  // namespace kiln
