#include <catch2/catch.hpp>
#include <kiln/kiln.h>

using namespace kiln;

TEST_CASE("repr_float prints floats as Python's repr does", "[repr]") {
  REQUIRE(nn::repr_float(0.01) == "0.01");
  REQUIRE(nn::repr_float(0.5) == "0.5");
  REQUIRE(nn::repr_float(1.0) == "1.0");
  REQUIRE(nn::repr_float(0.0) == "0.0");
  REQUIRE(nn::repr_float(-0.0) == "-0.0");
  REQUIRE(nn::repr_float(-2.5) == "-2.5");
  REQUIRE(nn::repr_float(100.0) == "100.0");
  REQUIRE(nn::repr_float(123456.789) == "123456.789");
  REQUIRE(nn::repr_float(0.0001) == "0.0001");
  REQUIRE(nn::repr_float(1e-05) == "1e-05");
  REQUIRE(nn::repr_float(1.5e-07) == "1.5e-07");
  REQUIRE(nn::repr_float(1e16) == "1e+16");
  REQUIRE(nn::repr_float(1e15) == "1000000000000000.0");
  REQUIRE(nn::repr_float(0.1 + 0.2) == "0.30000000000000004");
  REQUIRE(nn::repr_float(1.0 / 0.0) == "inf");
  REQUIRE(nn::repr_bool(true) == std::string("True"));
  REQUIRE(nn::repr_bool(false) == std::string("False"));
}
