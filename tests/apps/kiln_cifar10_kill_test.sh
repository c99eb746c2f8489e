#!/usr/bin/env bash
# A training run SIGKILLed at random points resumes from its last checkpoint and ends with the same
# weights, bit for bit, as a run that was never interrupted. kiln-cifar10 trains 2 epochs on small
# generated data in CIFAR-10's binary format, checkpointing every 5 steps; each trial kills it at a
# random time within the straight run's duration, then runs it again with --resume to the end.
#   kiln_cifar10_kill_test.sh PATH/TO/kiln-cifar10 [TRIALS] [SEED]     (default: 10 trials, seed 1)
set -euo pipefail
app=$1
trials=${2:-10}
RANDOM=${3:-1}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# The step a checkpoint was written at, or "none" when there is no checkpoint.
checkpoint_step() {
  [[ -f "$1" ]] || { echo none; return; }
  python3 - "$1" <<'EOF'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
print(json.loads(raw[8:8 + n])["__metadata__"]["step"])
EOF
}

python3 "$here/make_cifar_like.py" "$work/data" 64
common=(--data "$work/data" --cifar-records 64 --limit-train 96 --limit-test 32 --threads 2 --batch 8
        --epochs 2 --lr 0.01 --checkpoint-steps 5)
steps_per_epoch=12  # 96 images / batch 8
steps=$(( 2 * steps_per_epoch ))

t0=$(now_ms)
"$app" "${common[@]}" --out "$work/straight" > "$work/straight.log"
straight_ms=$(( $(now_ms) - t0 ))
[[ $(checkpoint_step "$work/straight/checkpoint.safetensors") == "$steps" ]] || fail "straight run did not finish"
echo "straight run: $steps steps in $straight_ms ms"

killed=0 identical=0 attempts=0 mid_epoch=0
summary=()
while (( killed < trials )); do
  (( ++attempts <= 3 * trials )) || fail "only $killed of $attempts runs were still running when killed"
  out="$work/trial$attempts"
  # A kill time in [5%, 95%) of the straight run's duration.
  delay_ms=$(( straight_ms * (5 + RANDOM % 90) / 100 ))
  "$app" "${common[@]}" --out "$out" > "$out.log" 2>&1 &
  pid=$!
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  status=0
  { kill -KILL "$pid" && wait "$pid"; } 2> /dev/null || status=$?  # quiet: no "Killed" line
  if (( status != 128 + 9 )); then
    echo "attempt $attempts: the run ended (status $status) before the kill at $delay_ms ms; not counted"
    rm -rf "$out"
    continue
  fi
  (( ++killed ))
  at=$(checkpoint_step "$out/checkpoint.safetensors")
  if [[ $at == none ]] || (( at % steps_per_epoch != 0 )); then (( ++mid_epoch )); fi
  "$app" "${common[@]}" --out "$out" --resume > "$out.resume.log" 2>&1 || fail "resume failed: $(tail -3 "$out.resume.log")"
  if python3 "$here/same_weights.py" "$work/straight/checkpoint.safetensors" "$out/checkpoint.safetensors" > /dev/null &&
     cmp -s <(cut -d, -f1-5 "$work/straight/metrics.csv") <(cut -d, -f1-5 "$out/metrics.csv"); then
    (( ++identical ))
    result=identical
  else
    result=DIFFERENT
  fi
  echo "trial $killed: killed at $delay_ms ms, last checkpoint at step ${at}, resumed to step $steps: weights and metrics $result"
  summary+=("$delay_ms ms/step $at")
  rm -rf "$out"
done
echo "kill and resume: $killed trials ($attempts runs started), killed at: ${summary[*]}"
echo "kill and resume: $mid_epoch of $killed resumed from mid-epoch (or from no checkpoint), $identical of $killed ended with weights (and losses, accuracies) identical to the straight run"
(( identical == killed )) || fail "$(( killed - identical )) resumed runs differ from the straight run"
