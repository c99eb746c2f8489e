// The main of kiln_mpi_tests: every rank runs the same test cases, which communicate through
// kiln::dist. Launched as `mpirun -n 2 kiln_mpi_tests [tag]` (see CMakeLists.txt). The run fails
// when any rank fails.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <kiln/kiln.h>

int main(int argc, char** argv) {
  kiln::dist::init(&argc, &argv);
  const int result = Catch::Session().run(argc, argv);
  int64_t failed = result;
  kiln::dist::all_reduce(&failed, 1, kiln::dist::ReduceOp::max);
  kiln::dist::finalize();
  return static_cast<int>(failed);
}
