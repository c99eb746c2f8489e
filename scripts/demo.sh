#!/usr/bin/env bash
# The demo: installs the dependencies, builds kiln in Release, and runs a short sweep of
# GroupNorm against BatchNorm at batch sizes 32, 8 and 2 on a subset of the data (about 7
# minutes on 2 cores, build included). Prints the table and where the plot is.
#   scripts/demo.sh [OUT_DIR]          (default: runs/demo)
# Uses CIFAR-10 from data/cifar10 when present, or downloads it when the network allows;
# otherwise trains on Fashion-MNIST from the Debian package dataset-fashion-mnist.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/demo}

bash scripts/install-deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_TESTS=OFF > /dev/null
cmake --build build-release -j2 --target kiln-cifar10

dataset=(--dataset fashion-mnist)
if [[ -f data/cifar10/cifar-10-batches-bin/test_batch.bin || -f data/cifar10/test_batch.bin ]]; then
  dataset=(--dataset cifar10 --data data/cifar10)
elif bash scripts/get-cifar10.sh data/cifar10 2> /tmp/kiln-demo-download.log; then
  dataset=(--dataset cifar10 --data data/cifar10)
else
  echo
  echo "CIFAR-10 could not be downloaded here (see /tmp/kiln-demo-download.log)."
  echo "Using Fashion-MNIST from the Debian package dataset-fashion-mnist instead: 28x28 images"
  echo "padded to 32x32, the same models and the same comparison."
  echo
fi

./build-release/apps/kiln-cifar10 "${dataset[@]}" --model vgg8 --sweep 32,8,2 --sweep-norms gn,bn \
  --epochs 3 --limit-train 6144 --limit-test 2000 --threads 2 --out "$out"
