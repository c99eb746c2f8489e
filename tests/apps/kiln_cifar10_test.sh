#!/usr/bin/env bash
# End-to-end checks of kiln-cifar10 on small generated data in CIFAR-10's binary format:
# training writes its files, an interrupted run resumes to the same weights, a sweep writes its
# table and plot, and missing data and bad flags give clear errors.
#   kiln_cifar10_test.sh PATH/TO/kiln-cifar10
set -euo pipefail
app=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

python3 "$here/make_cifar_like.py" "$work/data" 64
common=(--data "$work/data" --cifar-records 64 --limit-test 64 --threads 2 --batch 8 --epochs 2 --lr 0.01)

echo "== a run writes metrics.csv, curves.svg and a checkpoint"
"$app" "${common[@]}" --out "$work/straight" > "$work/straight.log"
for f in metrics.csv curves.svg checkpoint.safetensors; do
  [[ -s "$work/straight/$f" ]] || fail "missing $f"
done
[[ $(wc -l < "$work/straight/metrics.csv") -eq 3 ]] || fail "metrics.csv should have a header and 2 epochs"
grep -q "final test error" "$work/straight.log" || fail "no summary"
python3 -c "import xml.etree.ElementTree as E; E.parse('$work/straight/curves.svg')" || fail "curves.svg is not well-formed XML"

echo "== stopped mid-epoch and resumed in a new process, it ends with the same weights"
"$app" "${common[@]}" --out "$work/resumed" --stop-after-steps 13 > /dev/null
"$app" "${common[@]}" --out "$work/resumed" --resume > "$work/resumed.log"
grep -q "resumed from" "$work/resumed.log" || fail "did not resume"
python3 "$here/same_weights.py" "$work/straight/checkpoint.safetensors" "$work/resumed/checkpoint.safetensors" \
  || fail "resumed run differs from the straight run"
cut -d, -f1-5 "$work/straight/metrics.csv" > "$work/a.csv"
cut -d, -f1-5 "$work/resumed/metrics.csv" > "$work/b.csv"
cmp -s "$work/a.csv" "$work/b.csv" || fail "resumed metrics differ"

echo "== a sweep writes sweep.csv, sweep.md and sweep.svg"
"$app" "${common[@]}" --epochs 1 --sweep 8,4 --sweep-norms gn,bn --out "$work/sweep" > "$work/sweep.log"
for f in sweep.csv sweep.md sweep.svg gn-b8/metrics.csv bn-b4/metrics.csv; do
  [[ -s "$work/sweep/$f" ]] || fail "missing sweep file $f"
done
[[ $(wc -l < "$work/sweep/sweep.csv") -eq 5 ]] || fail "sweep.csv should have a header and 4 rows"
python3 -c "import xml.etree.ElementTree as E; E.parse('$work/sweep/sweep.svg')" || fail "sweep.svg is not well-formed XML"

echo "== no data: says where it looked and how to get data, exits non-zero"
if "$app" --data "$work/nowhere" --out "$work/none" > "$work/nodata.out" 2> "$work/nodata.err"; then
  fail "exit 0 without data"
fi
grep -q "Looked in: $work/nowhere" "$work/nodata.err" || fail "does not say where it looked"
grep -q "scripts/get-cifar10.sh" "$work/nodata.err" || fail "does not say how to get CIFAR-10"
grep -q "dataset-fashion-mnist" "$work/nodata.err" || fail "does not mention Fashion-MNIST"

echo "== a bad flag: a one-line error, then the usage, exit 2"
set +e
"$app" --norm batchnorm > "$work/flag.out" 2> "$work/flag.err"
code=$?
set -e
[[ $code -eq 2 ]] || fail "bad flag exit code $code"
head -1 "$work/flag.err" | grep -q "^kiln-cifar10: --norm: " || fail "first line: $(head -1 "$work/flag.err")"
grep -q "Usage:" "$work/flag.err" || fail "no usage after the error"
echo "all kiln-cifar10 checks passed"
