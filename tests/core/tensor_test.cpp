#include <catch2/catch.hpp>
#include <kiln/kiln.h>

using namespace kiln;

TEST_CASE("smoke") {
  Tensor x = Tensor::randn({2, 3});
  REQUIRE(x.numel() == 6);
}
