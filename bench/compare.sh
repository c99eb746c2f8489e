#!/usr/bin/env bash
# Runs kiln-bench and PyTorch's reference (../shared/bench/torch_ref.py) on the same workloads in
# one sitting, and prints a table: workload, PyTorch ms, kiln ms, PyTorch/kiln, and for training
# steps kiln's GFLOP/s as a fraction of the machine's fp32 peak (measured by bench/fma_peak.cpp).
#   bench/compare.sh [--threads N] [--runs R] [NAME-PREFIX...]
# Needs a Release build in build/ (or KILN_BUILD_DIR) and /usr/bin/python3 with torch.
#
# The two run workload by workload, PyTorch then kiln, R times over (default 3), so that each
# pair is timed seconds apart: on a shared VM the speed of the machine drifts over minutes. Before
# each pair bench/core_latency.cpp measures how long a cache line takes between the two cores and
# back; the table gives the medians over the runs, the range of the ratio, and the range of that
# round trip (see docs/performance.md, "Near and far cores").
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2
runs=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) break ;;
  esac
done
build=${KILN_BUILD_DIR:-build}
torch_ref=${KILN_TORCH_REF:-../shared/bench/torch_ref.py}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! /usr/bin/python3 -c "import torch" 2> /dev/null; then
  echo "compare.sh: /usr/bin/python3 has no torch (apt-get install python3-torch)" >&2
  exit 1
fi
[[ -x "$build/apps/kiln-bench" ]] || { echo "compare.sh: build $build/apps/kiln-bench first" >&2; exit 1; }
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --runs expects a positive count, got '$runs'" >&2; exit 1; }

g++ -O2 -march=native -std=c++20 -ffp-contract=fast -pthread bench/fma_peak.cpp -o "$work/fma_peak"
g++ -O2 -std=c++20 -pthread bench/core_latency.cpp -o "$work/core_latency"
peak=$("$work/fma_peak" "$threads" | cut -f2)

mapfile -t names < <("$build/apps/kiln-bench" --list "$@")
[[ ${#names[@]} -gt 0 ]] || { echo "compare.sh: no workload starts with $*" >&2; exit 1; }

# One line per timed pair: run, workload, round trip, PyTorch line, kiln line (tab-separated).
for ((run = 1; run <= runs; run++)); do
  for name in "${names[@]}"; do
    rt=$("$work/core_latency" | cut -f2)
    t=$(/usr/bin/python3 "$torch_ref" "$threads" "$name" | awk -F'\t' -v n="$name" '$1 == n {print $2}')
    k=$("$build/apps/kiln-bench" --threads "$threads" "$name" | awk -F'\t' -v n="$name" '$1 == n {print $2}')
    printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$name" "$rt" "${t:--}" "${k:--}" >> "$work/pairs.txt"
  done
done

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), fp32 FMA peak ${peak} GFLOP/s at $threads threads"
echo "$runs runs, each workload timed in PyTorch then kiln; medians over the runs"
python3 - "$work/pairs.txt" "$peak" <<'PY'
import statistics, sys
flops = {"vgg8": 0.27428352, "vgg16": 1.879209984}  # GFLOP per image per step (WORKLOADS.md)
peak = float(sys.argv[2])
rows = {}
for line in open(sys.argv[1]):
    run, name, rt, t, k = line.rstrip("\n").split("\t")
    ms = lambda s: float(s.split()[0]) if s != "-" else None
    rows.setdefault(name, []).append((rt, ms(t), ms(k)))
print(f"{'workload':28} {'PyTorch ms':>11} {'kiln ms':>9} {'ratio':>6} {'ratio range':>12}"
      f" {'kiln GFLOP/s':>13} {'of peak':>8} {'round trip ns':>14}")
for name, pairs in rows.items():
    t = [p[1] for p in pairs if p[1] is not None]
    k = [p[2] for p in pairs if p[2] is not None]
    ratios = [p[1] / p[2] for p in pairs if p[1] is not None and p[2] is not None]
    rts = [int(p[0]) for p in pairs if p[0].isdigit()]
    digits = 3 if name.startswith("op:") else 2  # as kiln-bench and torch_ref.py print them
    t_med = f"{statistics.median(t):.{digits}f}" if t else "-"
    k_med = statistics.median(k) if k else None
    ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"
    gflops = share = ""
    parts = name.split(":")
    if parts[0] == "step" and k_med:
        g = flops[parts[1]] * int(parts[3]) / (k_med / 1e3)
        gflops, share = f"{g:.1f}", f"{100 * g / peak:.0f}%"
    rt = f"{min(rts)}-{max(rts)}" if rts else "-"
    k_str = f"{k_med:.{digits}f}" if k_med else "-"
    print(f"{name:28} {t_med:>11} {k_str:>9} {ratio:>6} {spread:>12} {gflops:>13} {share:>8} {rt:>14}")
PY
