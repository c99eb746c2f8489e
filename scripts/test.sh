#!/usr/bin/env bash
# Installs the dependencies, builds kiln and its tests with two jobs, runs the suite, then checks
# the documented way of using kiln from another project: install to a temporary prefix and build
# examples/consumer against it with find_package(kiln).
#   scripts/test.sh [BUILD_DIR]        (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}

bash scripts/install-deps.sh
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j2
ctest --test-dir "$build_dir" --output-on-failure -j2
# The MPI tests (ctest names containing "mpi") ran above, 2 ranks each under mpirun, when CMake
# found MPI; with MPI installed they must exist.
if command -v mpirun > /dev/null && ! ctest --test-dir "$build_dir" -N -R "^mpi\\." | grep -q "Test *#"; then
  echo "test.sh: mpirun is installed but no MPI tests are registered (KILN_WITH_MPI=OFF?)" >&2
  exit 1
fi

prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build_dir" --prefix "$prefix/kiln" > /dev/null
cmake -S examples/consumer -B "$prefix/consumer-build" -DCMAKE_PREFIX_PATH="$prefix/kiln" > /dev/null
cmake --build "$prefix/consumer-build" -j2 > /dev/null
"$prefix/consumer-build/consumer"
echo "consumer: built against the installed kiln and ran"
