#include <kiln/datasets/dataset.h>

#include <cstring>

namespace kiln::data {

const char* split_name(Split split) { return split == Split::Train ? "train" : "test"; }

Shape Dataset::image_shape() const {
  KILN_CHECK(size() > 0, "Dataset: image_shape() of an empty dataset");
  return get(0).image.shape();
}

int64_t Dataset::get_into(int64_t index, float* image) const {
  Example e = get(index);
  const Shape expected = image_shape();
  KILN_CHECK(e.image.defined() && e.image.dtype() == DType::f32 && e.image.shape() == expected,
             "Dataset: example ", index, ": expected an f32 image of shape ", expected, ", got ",
             e.image.defined() ? dtype_name(e.image.dtype()) : "undefined", " ",
             e.image.defined() ? e.image.shape() : Shape{});
  Tensor c = e.image.contiguous();
  std::memcpy(image, c.data_ptr<float>(), static_cast<size_t>(c.numel()) * sizeof(float));
  return e.label;
}

}  // namespace kiln::data
