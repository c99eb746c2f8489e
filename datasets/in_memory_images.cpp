#include <kiln/datasets/in_memory_images.h>

#include <string>

#include <kiln/core/generator.h>

namespace kiln::data {

void bytes_to_unit_floats(const uint8_t* in, int64_t n, float* out) {
  // Division, not multiplication by 1/255, so the values equal torchvision's ToTensor() bit for
  // bit.
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(in[i]) / 255.0f;
}

InMemoryImages::InMemoryImages(ImageBytes contents) : contents_(std::move(contents)) {
  const std::string& name = contents_.name;
  const Shape& shape = contents_.image_shape;
  KILN_CHECK(shape.size() == 3 && shape[0] > 0 && shape[1] > 0 && shape[2] > 0, name,
             ": expected an image shape [C, H, W] of positive sizes, got ", shape);
  image_numel_ = shape_numel(shape);
  size_ = static_cast<int64_t>(contents_.labels.size());
  KILN_CHECK(size_ > 0, name, ": the dataset has no examples");
  int64_t pixel_bytes = 0;
  KILN_CHECK(!__builtin_mul_overflow(size_, image_numel_, &pixel_bytes) &&
                 static_cast<uint64_t>(pixel_bytes) == contents_.pixels.size(),
             name, ": ", size_, " labels need ", size_, " x ", shape, " pixel bytes, got ",
             contents_.pixels.size());
  const size_t num_classes = contents_.classes.size();
  KILN_CHECK(num_classes > 0 && num_classes <= 256, name, ": expected 1 to 256 class names, got ",
             num_classes);
  for (int64_t i = 0; i < size_; ++i) {
    KILN_CHECK(contents_.labels[i] < num_classes, name, ": example ", i, ": label ",
               static_cast<int>(contents_.labels[i]), " is out of range [0, ", num_classes, ")");
  }
}

void InMemoryImages::check_index(int64_t index) const {
  KILN_CHECK(index >= 0 && index < size_, name(), ": index ", index, " is out of range [0, ", size_,
             ")");
}

const uint8_t* InMemoryImages::pixels(int64_t index) const {
  check_index(index);
  return contents_.pixels.data() + index * image_numel_;
}

int64_t InMemoryImages::label(int64_t index) const {
  check_index(index);
  return contents_.labels[index];
}

Example InMemoryImages::get(int64_t index) const {
  Example e;
  e.image = Tensor::empty(contents_.image_shape, DType::f32);
  e.label = get_into(index, e.image.data_ptr<float>());
  return e;
}

int64_t InMemoryImages::get_into(int64_t index, float* image) const {
  bytes_to_unit_floats(pixels(index), image_numel_, image);
  return contents_.labels[index];
}

InMemoryImages random_images(int64_t n, const Shape& image_shape, int64_t num_classes,
                             uint64_t seed) {
  KILN_CHECK(n > 0 && num_classes > 0 && num_classes <= 256,
             "random_images: expected n > 0 and 1 to 256 classes, got n ", n, " and ", num_classes,
             " classes");
  KILN_CHECK(image_shape.size() == 3, "random_images: expected an image shape [C, H, W], got ",
             image_shape);
  ImageBytes contents;
  contents.name = "random_images";
  contents.image_shape = image_shape;
  const int64_t numel = shape_numel(Shape{n, image_shape[0], image_shape[1], image_shape[2]});
  contents.pixels.resize(static_cast<size_t>(numel));
  contents.labels.resize(static_cast<size_t>(n));
  Generator gen(seed);
  for (int64_t i = 0; i < numel; i += 8) {
    uint64_t bits = gen.next_u64();
    for (int64_t k = i; k < i + 8 && k < numel; ++k, bits >>= 8) {
      contents.pixels[k] = static_cast<uint8_t>(bits);
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    contents.labels[i] = static_cast<uint8_t>(gen.next_below(static_cast<uint64_t>(num_classes)));
  }
  for (int64_t c = 0; c < num_classes; ++c) contents.classes.push_back(std::to_string(c));
  return InMemoryImages(std::move(contents));
}

}  // namespace kiln::data
