// The benchmark's VGG models: the same state_dict keys and shapes as their PyTorch twins
// (tests/tools/gen_vgg_keys.py), and the FLOP counts WORKLOADS.md quotes.
#include <catch2/catch.hpp>
#include <fstream>
#include <kiln/kiln.h>
#include <sstream>

#include "models.h"

using namespace kiln;

namespace {
// "key 32x3x3x3", or "key scalar" for a 0-dim tensor, as gen_vgg_keys.py writes them.
std::string key_line(const std::string& key, const Shape& shape) {
  std::ostringstream out;
  out << key << ' ';
  if (shape.empty()) out << "scalar";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? "x" : "") << shape[i];
  return out.str();
}
}  // namespace

TEST_CASE("VGG models have PyTorch's state_dict keys and shapes", "[apps][models]") {
  std::ifstream in(std::string(KILN_TEST_DATA) + "/vgg_state_dict_keys.txt");
  REQUIRE(in.good());
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> expected;
  std::string model, norm, key, shape;
  while (in >> model >> norm >> key >> shape) {
    std::ostringstream line;
    line << key << ' ' << shape;
    expected[{model, norm}].push_back(line.str());
  }
  REQUIRE(expected.size() == 6);
  for (const auto& [which, lines] : expected) {
    INFO(which.first << " " << which.second);
    auto net = apps::make_vgg(apps::vgg_blocks(which.first), which.second);
    std::vector<std::string> got;
    for (const auto& [k, t] : net->state_dict()) got.push_back(key_line(k, t.shape()));
    REQUIRE(got == lines);
  }
}

TEST_CASE("VGG FLOPs per image match WORKLOADS.md", "[apps][models]") {
  REQUIRE(apps::vgg_train_flops_per_image(apps::vgg_blocks("vgg16")) / 1e9 == Approx(1.88).epsilon(0.01));
  REQUIRE(apps::vgg_train_flops_per_image(apps::vgg_blocks("vgg8")) / 1e6 == Approx(274).epsilon(0.01));
}

TEST_CASE("make_vgg refuses unknown names", "[apps][models]") {
  REQUIRE_THROWS_WITH(apps::vgg_blocks("vgg11"), Catch::Contains("expected vgg8 or vgg16, got 'vgg11'"));
  REQUIRE_THROWS_WITH(apps::make_vgg(apps::vgg_blocks("vgg8"), "batch"),
                      Catch::Contains("expected one of gn, bn, syncbn, ln, in, gn+ws, none, got 'batch'"));
}
