#!/usr/bin/env bash
# The sanitizer stage: kiln, its tests and kiln-cifar10 built with AddressSanitizer (with
# LeakSanitizer) and UndefinedBehaviorSanitizer at -O1 -g, then the Catch2 suite (but the endurance
# test) and a short kiln-cifar10 training run (stopped, checkpointed and resumed) on generated data
# under them. Any report of an overflow, a use after free, a leak or undefined behaviour fails the
# stage.
#   scripts/test-sanitizers.sh [BUILD_DIR]        (default: build-sanitize)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build-sanitize}
stage_start=$(date +%s)

bash scripts/install-deps.sh
# MPI is left out: the sanitized suite runs as one process, and Open MPI's own allocations would
# read as leaks.
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
      -DKILN_SANITIZE=address,undefined -DKILN_WITH_MPI=OFF > /dev/null
cmake --build "$build_dir" -j2 --target kiln_tests kiln-cifar10
build_end=$(date +%s)

# halt_on_error / -fno-sanitize-recover: the first finding stops the process with a non-zero exit.
# Leak checking is on by default with ASan on Linux; it is spelled out so nobody turns it off here.
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:strict_init_order=1:check_initialization_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export KILN_NUM_THREADS=2

# The whole Catch2 suite but the endurance test, whose 5% bound on the resident set is about kiln's
# memory, not ASan's shadow and quarantine (it runs in the normal build). That covers the readers
# (IDX, MNIST, CIFAR-10, safetensors), the autograd engine and ops, every layer, the optimizers and
# checkpoints, the kill and full-disk tests of saves (their child processes are sanitized too), and
# the allocator canary, which checks that ASan sees a write one past a tensor's end.
echo "== kiln_tests under ASan+UBSan+LSan"
"$build_dir/tests/kiln_tests" "~[endurance]"
tests_end=$(date +%s)

echo "== kiln-cifar10 under ASan+UBSan+LSan: train, stop and checkpoint mid-epoch, resume to the end"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 tests/apps/make_cifar_like.py "$work/data" 32
app=("$build_dir/apps/kiln-cifar10" --data "$work/data" --cifar-records 32 --limit-test 16
     --threads 2 --batch 4 --epochs 2 --lr 0.01 --checkpoint-steps 3)
"${app[@]}" --out "$work/run" --stop-after-steps 5
"${app[@]}" --out "$work/run" --resume
[[ -s "$work/run/checkpoint.safetensors" && $(wc -l < "$work/run/metrics.csv") -eq 3 ]] ||
  { echo "test-sanitizers.sh: the training run did not finish its 2 epochs" >&2; exit 1; }
stage_end=$(date +%s)

echo "test-sanitizers.sh: clean; build $((build_end - stage_start)) s, tests $((tests_end - build_end)) s," \
     "training run $((stage_end - tests_end)) s, stage $((stage_end - stage_start)) s"
