#!/usr/bin/env bash
# The bad-input battery for kiln-cifar10's flags and data: every bad command line must exit
# non-zero (not by a signal) with a one-line "kiln-cifar10: ..." message first on stderr.
#   app_flags_test.sh PATH/TO/kiln-cifar10
# With KILN_BAD_INPUT_TABLE set, appends "app flags<TAB>command line<TAB>first line" per case for
# docs/reliability.md (see bad_input_table.sh).
set -euo pipefail
app=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
cases=0

python3 "$here/../apps/make_cifar_like.py" "$work/data" 4
data=(--data "$work/data" --cifar-records 4 --threads 1 --epochs 1 --out "$work/out")

# check EXPECTED_SUBSTRING ARG...: runs the app and checks its exit and its first line on stderr.
check() {
  local expected=$1
  shift
  cases=$((cases + 1))
  local code=0
  timeout 60 "$app" "$@" > "$work/stdout" 2> "$work/stderr" || code=$?
  local first
  first=$(head -n 1 "$work/stderr")
  local shown="kiln-cifar10 $*"
  shown=${shown//$work/<tmp>}
  if [[ $code -eq 0 ]]; then
    echo "FAIL: '$shown' exited 0" >&2
    failures=$((failures + 1))
  elif [[ $code -ge 124 ]]; then
    echo "FAIL: '$shown' exited with $code (a signal or the timeout)" >&2
    failures=$((failures + 1))
  elif [[ $first != "kiln-cifar10: "* || $first != *"$expected"* ]]; then
    echo "FAIL: '$shown': first line of stderr: '$first', expected 'kiln-cifar10: ...$expected...'" >&2
    failures=$((failures + 1))
  else
    echo "ok ($code): $shown -> $first"
  fi
  if [[ -n ${KILN_BAD_INPUT_TABLE:-} ]]; then
    printf 'app flags\t%s\t%s\n' "$shown" "${first//$work/<tmp>}" >> "$KILN_BAD_INPUT_TABLE"
  fi
}

# Parsing: rejected before any data is read.
check "The following argument was not expected: --bogus" --bogus
check "--batch: 1 required INT:POSITIVE missing" --batch
check "--batch: expected an integer >= 1, got 'abc'" --batch abc
check "--batch: expected an integer >= 1, got '0'" --batch 0
check "--batch: expected an integer >= 1, got '-4'" --batch=-4
check "--epochs: expected an integer >= 1, got '2.5'" --epochs 2.5
check "--norm: batchnorm not in {" --norm batchnorm
check "--dataset: imagenet not in {" --dataset imagenet
check "--model: resnet50 not in {" --model resnet50
check "--lr: expected a number > 0, got '-0.1'" --lr=-0.1
check "--momentum: expected a number in [0, 1], got '1.5'" --momentum 1.5
check "--groups: expected an integer >= 1, got '0'" --groups 0
check "--threads: expected an integer >= 1, got '0'" --threads 0
check "--weight-decay: expected a number >= 0, got 'nan'" --weight-decay nan
check "--checkpoint-steps: expected an integer >= 0, got '-1'" --checkpoint-steps=-1
check "--sweep-norms: 'batchnorm' is not one of" --sweep-norms gn,batchnorm
check "--sweep: expected positive batch sizes like 32,16,8, got 'x'" --data "$work/nowhere" --sweep 8,x
touch "$work/a-file"
check "--out: expected a directory for the results, got '$work/a-file/run' ($work/a-file is not a directory)" --data "$work/nowhere" --out "$work/a-file/run"
# Against the data and the model.
check "no CIFAR-10 data found. Looked in: $work/nowhere" --data "$work/nowhere"
check "no Fashion-MNIST data found. Looked in: $work/nowhere" --dataset fashion-mnist --data "$work/nowhere"
check "cannot read the CIFAR-10 data: CIFAR10: $work/data/data_batch_1.bin: record count: expected 5 records" "${data[@]}" --cifar-records 5
check "groups: channels 32 is not divisible by groups 5" "${data[@]}" --norm gn --groups 5 --batch 2
# --groups is checked against the model before the data is looked for.
check "groups: channels 32 is not divisible by groups 24" --data "$work/nowhere" --sweep 2 --sweep-norms bn,gn --groups 24

# A truncated file in otherwise good data.
cp -r "$work/data" "$work/cut"
truncate -s 100 "$work/cut/data_batch_2.bin"
check "cannot read the CIFAR-10 data: CIFAR10: $work/cut/data_batch_2.bin: file size 100 is not a multiple" --data "$work/cut" --cifar-records 4

echo "$cases cases, $failures failures"
[[ $failures -eq 0 ]]
