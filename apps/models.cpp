#include "models.h"

#include <algorithm>

#include <kiln/kiln.h>

namespace kiln::apps {

Blocks vgg_blocks(const std::string& model) {
  if (model == "vgg8") return {{32, 32}, {64, 64}, {128, 128}, {256}, {256}};
  if (model == "vgg16")
    return {{64, 64}, {128, 128}, {256, 256, 256}, {512, 512, 512}, {512, 512, 512}};
  KILN_FAIL("model: expected vgg8 or vgg16, got '", model, "'");
}

const std::vector<std::string>& norm_names() {
  static const std::vector<std::string> names = {"gn", "bn", "syncbn", "ln", "in", "gn+ws", "none"};
  return names;
}

void check_vgg_groups(const Blocks& blocks, int64_t groups) {
  KILN_CHECK(groups >= 1, "groups: expected at least 1, got ", groups);
  for (const auto& block : blocks) {
    for (int64_t c : block) {
      const int64_t g = std::min(groups, c);
      KILN_CHECK(c % g == 0, "groups: channels ", c, " is not divisible by groups ", g);
    }
  }
}

std::shared_ptr<nn::Sequential> make_vgg(const Blocks& blocks, const std::string& norm,
                                         int64_t groups, int64_t in_channels, int64_t classes) {
  const auto& names = norm_names();
  KILN_CHECK(std::find(names.begin(), names.end(), norm) != names.end(),
             "norm: expected one of gn, bn, syncbn, ln, in, gn+ws, none, got '", norm, "'");
  KILN_CHECK(groups >= 1, "groups: expected at least 1, got ", groups);
  const bool group_norm = norm == "gn" || norm == "gn+ws";
  if (group_norm) check_vgg_groups(blocks, groups);
  auto net = std::make_shared<nn::Sequential>();
  int64_t c_in = in_channels;
  const nn::Conv2dOptions same{.padding = 1};
  for (const auto& block : blocks) {
    for (int64_t c : block) {
      if (norm == "gn+ws") net->push_back(std::make_shared<nn::WSConv2d>(c_in, c, 3, same));
      else net->push_back(std::make_shared<nn::Conv2d>(c_in, c, 3, same));
      if (group_norm) {
        net->push_back(std::make_shared<nn::GroupNorm>(std::min(groups, c), c));
      } else if (norm == "bn") {
        net->push_back(std::make_shared<nn::BatchNorm2d>(c));
      } else if (norm == "syncbn") {
        net->push_back(std::make_shared<nn::SyncBatchNorm>(c));
      } else if (norm == "ln") {
        net->push_back(std::make_shared<nn::GroupNorm>(1, c));
      } else if (norm == "in") {
        net->push_back(std::make_shared<nn::InstanceNorm2d>(c, 1e-5, 0.1, /*affine=*/true));
      } else {
        net->push_back(std::make_shared<nn::Identity>());  // keeps the indices of torch_ref.py's model
      }
      net->push_back(std::make_shared<nn::ReLU>());
      c_in = c;
    }
    net->push_back(std::make_shared<nn::MaxPool2d>(2, nn::Pool2dOptions{.stride = 2}));
  }
  net->push_back(std::make_shared<nn::Flatten>());
  net->push_back(std::make_shared<nn::Linear>(c_in, classes));
  return net;
}

double vgg_train_flops_per_image(const Blocks& blocks, int64_t in_channels, int64_t size) {
  double forward = 0;
  int64_t c_in = in_channels, hw = size;
  for (const auto& block : blocks) {
    for (int64_t c : block) {
      forward += 2.0 * static_cast<double>(c_in) * 9 * static_cast<double>(c) * static_cast<double>(hw * hw);
      c_in = c;
    }
    hw /= 2;
  }
  forward += 2.0 * static_cast<double>(c_in * hw * hw) * 10;
  return 3 * forward;
}

}  // namespace kiln::apps
