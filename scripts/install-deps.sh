#!/usr/bin/env bash
# Installs every Debian package kiln's build, tests and demo need. Safe to run again: packages that
# are already present are left alone. Uses sudo when not run as root.
#   scripts/install-deps.sh            build + test + demo dependencies
#   scripts/install-deps.sh --torch    also PyTorch, used only to regenerate test fixtures and to run
#                                      the comparison benchmark (never by the library or the tests)
#   scripts/install-deps.sh --fuzz     also clang and libFuzzer, for scripts/fuzz.sh
set -euo pipefail

packages=(
  build-essential cmake pkg-config   # compiler and build system
  libopenblas-dev                    # sgemm/dgemm behind matmul and convolution
  libtbb-dev                         # the one thread pool
  catch2                             # unit tests (v2)
  zlib1g-dev                         # gzipped IDX files
  libcli11-dev                       # app flags
  nlohmann-json3-dev                 # safetensors header
  dataset-fashion-mnist              # real data for tests and the demo
  curl ca-certificates               # scripts/get-cifar10.sh
  python3                            # test helpers (local HTTP server), docs checks
  doxygen                            # the API reference (the docs target)
  libopenmpi-dev openmpi-bin         # kiln::dist (data-parallel training over MPI), mpirun for its tests
)
for option in "$@"; do
  case "$option" in
    --torch) packages+=(python3-torch python3-numpy) ;;
    --fuzz) packages+=(clang-14 libclang-rt-14-dev) ;;  # libFuzzer, ASan and UBSan runtimes
    *) echo "install-deps: unknown option $option (expected --torch or --fuzz)" >&2; exit 2 ;;
  esac
done

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
