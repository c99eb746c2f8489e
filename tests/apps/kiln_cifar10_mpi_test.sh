#!/usr/bin/env bash
# kiln-cifar10 as data-parallel ranks under mpirun, on small generated data in CIFAR-10's format:
# 2 processes of batch 4 train like 1 process of batch 8 (gn; syncbn against bn), only rank 0
# prints and writes, and a run stopped mid-epoch resumes under mpirun to the same weights.
#   kiln_cifar10_mpi_test.sh PATH/TO/kiln-cifar10 MPIRUN [MPIRUN ARGS...]   (2 processes)
set -euo pipefail
app=$1
shift
mpirun=("$@")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

python3 "$here/make_cifar_like.py" "$work/data" 64
common=(--data "$work/data" --cifar-records 64 --limit-test 64 --threads 1 --epochs 2 --lr 0.01)

# The runs are compared after 4 steps: the same steps up to float32 rounding, about 1e-6. Later
# they drift apart, as any two runs do whose weights differ by rounding: on this data, nudging one
# weight of a single-process run by one ulp grows to 1e-3 relative by step 5.
echo "== 2 processes of batch 4 train like 1 process of batch 8 (gn)"
"$app" "${common[@]}" --batch 8 --out "$work/one" --stop-after-steps 4 > /dev/null
"${mpirun[@]}" "$app" "${common[@]}" --batch 4 --out "$work/two" --stop-after-steps 4 > /dev/null
python3 "$here/same_weights.py" "$work/two/checkpoint.safetensors" "$work/one/checkpoint.safetensors" \
  --rtol 1e-4 || fail "gn: 2 x 4 differs from 1 x 8"

echo "== syncbn on 2 processes of batch 4 trains like bn on 1 process of batch 8; bn does not"
"$app" "${common[@]}" --batch 8 --norm bn --out "$work/bn-one" --stop-after-steps 4 > /dev/null
"${mpirun[@]}" "$app" "${common[@]}" --batch 4 --norm syncbn --out "$work/syncbn-two" --stop-after-steps 4 > /dev/null
"${mpirun[@]}" "$app" "${common[@]}" --batch 4 --norm bn --out "$work/bn-two" --stop-after-steps 4 > /dev/null
python3 "$here/same_weights.py" "$work/syncbn-two/checkpoint.safetensors" "$work/bn-one/checkpoint.safetensors" \
  --rtol 1e-4 || fail "syncbn 2 x 4 differs from bn 1 x 8"
if python3 "$here/same_weights.py" "$work/bn-two/checkpoint.safetensors" "$work/bn-one/checkpoint.safetensors" \
  --rtol 1e-2; then
  fail "plain bn on 2 x 4 should differ from 1 x 8"
fi

echo "== a whole run: rank 0 prints once and writes the files"
"${mpirun[@]}" "$app" "${common[@]}" --batch 4 --norm bn --out "$work/straight" > "$work/straight.log"
for f in metrics.csv curves.svg checkpoint.safetensors; do
  [[ -s "$work/straight/$f" ]] || fail "missing $f"
done
[[ $(grep -c "final test error" "$work/straight.log") -eq 1 ]] || fail "expected one summary, from rank 0"
grep -q "2 processes x 1 threads, batch 4 per process" "$work/straight.log" || fail "no process count"

echo "== stopped mid-epoch and resumed under mpirun, it ends with the same weights"
"${mpirun[@]}" "$app" "${common[@]}" --batch 4 --norm bn --out "$work/resumed" --stop-after-steps 13 > /dev/null
"${mpirun[@]}" "$app" "${common[@]}" --batch 4 --norm bn --out "$work/resumed" --resume > "$work/resumed.log"
[[ $(grep -c "resumed from" "$work/resumed.log") -eq 1 ]] || fail "did not resume (or more than rank 0 said so)"
python3 "$here/same_weights.py" "$work/straight/checkpoint.safetensors" "$work/resumed/checkpoint.safetensors" \
  || fail "resumed run differs from the straight run"
cut -d, -f1-5 "$work/straight/metrics.csv" > "$work/a.csv"
cut -d, -f1-5 "$work/resumed/metrics.csv" > "$work/b.csv"
cmp -s "$work/a.csv" "$work/b.csv" || fail "resumed metrics differ"

echo "== resuming with another number of processes is refused"
if "$app" "${common[@]}" --batch 4 --norm bn --out "$work/resumed" --resume > /dev/null 2> "$work/np.err"; then
  fail "resumed a 2-process checkpoint in 1 process"
fi
grep -q "written by a run of 2 process(es), resumed with 1" "$work/np.err" || fail "$(cat "$work/np.err")"
echo "all kiln-cifar10 MPI checks passed"
