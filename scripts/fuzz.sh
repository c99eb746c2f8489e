#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, -DKILN_FUZZ=ON) and runs each for SECONDS on a
# temporary copy of its seed corpus (tests/fuzz/corpus/<reader>, which is never modified). Fails if
# any target finds a crash, a sanitizer report, a leak, a timeout or an allocation over the limits;
# the input that did it is kept under BUILD_DIR/fuzz-artifacts/ and printed.
#   scripts/fuzz.sh [SECONDS]           (default 60; the build goes to $KILN_FUZZ_BUILD_DIR or build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build_dir=${KILN_FUZZ_BUILD_DIR:-build-fuzz}
readers=(idx cifar10 safetensors)

bash scripts/install-deps.sh --fuzz
compiler=$(command -v clang++-14 || command -v clang++)
cmake -S . -B "$build_dir" -DCMAKE_CXX_COMPILER="$compiler" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DKILN_FUZZ=ON -DKILN_BUILD_TESTS=OFF -DKILN_BUILD_APPS=OFF -DKILN_WITH_MPI=OFF > /dev/null
cmake --build "$build_dir" -j2 --target "${readers[@]/#/fuzz_}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
artifacts="$build_dir/fuzz-artifacts"
mkdir -p "$artifacts"
export UBSAN_OPTIONS=print_stacktrace=1
failed=()
for reader in "${readers[@]}"; do
  mkdir -p "$work/$reader"
  cp -r "tests/fuzz/corpus/$reader/." "$work/$reader/"
  log="$work/$reader.log"
  status=0
  "$build_dir/tests/fuzz/fuzz_$reader" "$work/$reader" -max_total_time="$seconds" \
      -rss_limit_mb=2048 -malloc_limit_mb=128 -timeout=10 -max_len=16384 -print_final_stats=1 \
      -artifact_prefix="$artifacts/$reader-" > "$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  coverage=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || true)
  echo "fuzz_$reader: ${execs:-?} executions in ${seconds}s, ${coverage:-no coverage line}," \
       "corpus $(find "$work/$reader" -type f | wc -l) inputs, exit $status"
  if [[ $status -ne 0 ]]; then
    failed+=("fuzz_$reader")
    echo "---- fuzz_$reader: the end of its log ----" >&2
    tail -n 60 "$log" >&2
    for input in "$artifacts/$reader-"*; do
      [[ -f "$input" ]] || continue
      echo "---- $input (first 256 bytes) ----" >&2
      head -c 256 "$input" | od -A d -t x1 >&2
    done
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: ${failed[*]} found a crash; the inputs are in $artifacts" >&2
  exit 1
fi
echo "fuzz.sh: no crash in ${#readers[@]} targets x ${seconds}s"
