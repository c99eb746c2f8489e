#include <kiln/datasets/transforms.h>

#include <algorithm>
#include <cstring>

#include <kiln/core/error.h>

namespace kiln::data {

namespace {

void check_image_shape(const Shape& input, const char* op) {
  KILN_CHECK(input.size() == 3 && input[0] > 0 && input[1] > 0 && input[2] > 0, op,
             ": expected an image shape [C, H, W], got ", input);
}

}  // namespace

Tensor Transform::operator()(const Tensor& image, Generator& gen) const {
  KILN_CHECK(image.dtype() == DType::f32 && image.dim() == 3,
             "Transform: expected an f32 image [C, H, W], got ", dtype_name(image.dtype()), " ",
             image.shape());
  Tensor in = image.contiguous();
  Tensor out = Tensor::empty(output_shape(image.shape()), DType::f32);
  apply(in.data_ptr<float>(), image.shape(), out.data_ptr<float>(), gen);
  return out;
}

// ---- Normalize ---------------------------------------------------------------------------------

Normalize::Normalize(std::vector<float> mean, std::vector<float> std)
    : mean_(std::move(mean)), std_(std::move(std)) {
  KILN_CHECK(!mean_.empty() && mean_.size() == std_.size(),
             "Normalize: expected mean and std of the same non-zero length, got ", mean_.size(),
             " and ", std_.size());
  for (float s : std_) KILN_CHECK(s > 0, "Normalize: every std must be positive, got ", s);
}

Shape Normalize::output_shape(const Shape& input) const {
  check_image_shape(input, "Normalize");
  KILN_CHECK(mean_.size() == 1 || static_cast<int64_t>(mean_.size()) == input[0],
             "Normalize: ", mean_.size(), " channel statistics do not fit an image of ", input[0],
             " channels (shape ", input, ")");
  return input;
}

void Normalize::apply(const float* in, const Shape& input, float* out, Generator&) const {
  const int64_t plane = input[1] * input[2];
  for (int64_t c = 0; c < input[0]; ++c) {
    const size_t k = mean_.size() == 1 ? 0 : static_cast<size_t>(c);
    const float mean = mean_[k], std = std_[k];
    const float* src = in + c * plane;
    float* dst = out + c * plane;
    // out = (in - mean) / std, divided rather than multiplied by 1/std to match torchvision
    for (int64_t i = 0; i < plane; ++i) dst[i] = (src[i] - mean) / std;
  }
}

// ---- Pad ---------------------------------------------------------------------------------------

Pad::Pad(int64_t padding, float fill) : padding_(padding), fill_(fill) {
  KILN_CHECK(padding >= 0 && padding <= 4096, "Pad: padding must be in [0, 4096], got ", padding);
}

Shape Pad::output_shape(const Shape& input) const {
  check_image_shape(input, "Pad");
  return {input[0], input[1] + 2 * padding_, input[2] + 2 * padding_};
}

void Pad::apply(const float* in, const Shape& input, float* out, Generator&) const {
  const int64_t C = input[0], H = input[1], W = input[2];
  const int64_t p = padding_, H_out = H + 2 * p, W_out = W + 2 * p;
  std::fill(out, out + C * H_out * W_out, fill_);
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t y = 0; y < H; ++y) {
      std::memcpy(out + (c * H_out + y + p) * W_out + p, in + (c * H + y) * W, W * sizeof(float));
    }
  }
}

// ---- RandomCrop --------------------------------------------------------------------------------

RandomCrop::RandomCrop(int64_t size, int64_t padding) : size_(size), padding_(padding) {
  KILN_CHECK(size >= 1, "RandomCrop: size must be positive, got ", size);
  KILN_CHECK(padding >= 0 && padding <= 4096, "RandomCrop: padding must be in [0, 4096], got ",
             padding);
}

Shape RandomCrop::output_shape(const Shape& input) const {
  check_image_shape(input, "RandomCrop");
  KILN_CHECK(size_ <= input[1] + 2 * padding_ && size_ <= input[2] + 2 * padding_, "RandomCrop: a ",
             size_, "x", size_, " crop does not fit an image of shape ", input, " padded by ",
             padding_);
  return {input[0], size_, size_};
}

void RandomCrop::apply(const float* in, const Shape& input, float* out, Generator& gen) const {
  const int64_t C = input[0], H = input[1], W = input[2], S = size_, p = padding_;
  const int64_t top =
      static_cast<int64_t>(gen.next_below(static_cast<uint64_t>(H + 2 * p - S + 1)));
  const int64_t left =
      static_cast<int64_t>(gen.next_below(static_cast<uint64_t>(W + 2 * p - S + 1)));
  // out[c, y, x] = padded[c, top + y, left + x] = in[c, top + y - p, left + x - p], or 0 outside.
  const int64_t x_begin = std::clamp<int64_t>(p - left, 0, S);    // first x inside the image
  const int64_t x_end = std::clamp<int64_t>(W + p - left, 0, S);  // one past the last
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t y = 0; y < S; ++y) {
      float* row = out + (c * S + y) * S;
      const int64_t src_y = top + y - p;
      if (src_y < 0 || src_y >= H || x_begin >= x_end) {
        std::fill(row, row + S, 0.0f);
        continue;
      }
      std::fill(row, row + x_begin, 0.0f);
      std::memcpy(row + x_begin, in + (c * H + src_y) * W + (x_begin + left - p),
                  (x_end - x_begin) * sizeof(float));
      std::fill(row + x_end, row + S, 0.0f);
    }
  }
}

// ---- RandomHorizontalFlip ----------------------------------------------------------------------

RandomHorizontalFlip::RandomHorizontalFlip(double p) : p_(p) {
  KILN_CHECK(p >= 0 && p <= 1, "RandomHorizontalFlip: p must be in [0, 1], got ", p);
}

void RandomHorizontalFlip::apply(const float* in, const Shape& input, float* out,
                                 Generator& gen) const {
  const int64_t numel = input[0] * input[1] * input[2], W = input[2];
  if (!(gen.next_double() < p_)) {
    std::memcpy(out, in, numel * sizeof(float));
    return;
  }
  // out[c, y, x] = in[c, y, W - 1 - x]
  for (int64_t row = 0; row < numel; row += W) {
    for (int64_t x = 0; x < W; ++x) out[row + x] = in[row + W - 1 - x];
  }
}

// ---- Compose -----------------------------------------------------------------------------------

Compose::Compose(std::vector<std::shared_ptr<const Transform>> steps) : steps_(std::move(steps)) {
  for (const auto& step : steps_) KILN_CHECK(step != nullptr, "Compose: a step is null");
}

Shape Compose::output_shape(const Shape& input) const {
  Shape shape = input;
  for (const auto& step : steps_) shape = step->output_shape(shape);
  return shape;
}

void Compose::apply(const float* in, const Shape& input, float* out, Generator& gen) const {
  if (steps_.empty()) {
    std::memcpy(out, in, shape_numel(input) * sizeof(float));
    return;
  }
  // Intermediate images ping-pong between two buffers; the last step writes to `out`.
  std::vector<float> buffers[2];
  const float* src = in;
  Shape shape = input;
  for (size_t i = 0; i < steps_.size(); ++i) {
    const Shape next = steps_[i]->output_shape(shape);
    float* dst = out;
    if (i + 1 < steps_.size()) {
      buffers[i % 2].resize(static_cast<size_t>(shape_numel(next)));
      dst = buffers[i % 2].data();
    }
    steps_[i]->apply(src, shape, dst, gen);
    src = dst;
    shape = next;
  }
}

std::shared_ptr<const Transform> cifar10_train_transform() {
  return compose(RandomCrop(32, 4), RandomHorizontalFlip(0.5),
                 Normalize(kCifar10Mean, kCifar10Std));
}

std::shared_ptr<const Transform> cifar10_test_transform() {
  return std::make_shared<Normalize>(kCifar10Mean, kCifar10Std);
}

}  // namespace kiln::data
