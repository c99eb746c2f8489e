#!/usr/bin/env bash
# Runs kiln-bench and PyTorch's reference (../shared/bench/torch_ref.py) on the same workloads in
# one sitting, and prints a table: workload, PyTorch ms, kiln ms, PyTorch/kiln, and for training
# steps kiln's GFLOP/s as a fraction of the machine's fp32 peak (measured by bench/fma_peak.cpp).
#   bench/compare.sh [--threads N] [NAME-PREFIX...]
# Needs a Release build in build/ (or KILN_BUILD_DIR) and /usr/bin/python3 with torch.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2
if [[ "${1:-}" == "--threads" ]]; then threads=$2; shift 2; fi
build=${KILN_BUILD_DIR:-build}
torch_ref=${KILN_TORCH_REF:-../shared/bench/torch_ref.py}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! /usr/bin/python3 -c "import torch" 2> /dev/null; then
  echo "compare.sh: /usr/bin/python3 has no torch (apt-get install python3-torch)" >&2
  exit 1
fi
[[ -x "$build/apps/kiln-bench" ]] || { echo "compare.sh: build $build/apps/kiln-bench first" >&2; exit 1; }

g++ -O2 -march=native -std=c++20 -ffp-contract=fast -pthread bench/fma_peak.cpp -o "$work/fma_peak"
peak=$("$work/fma_peak" "$threads" | cut -f2)

prefixes=("$@")
[[ ${#prefixes[@]} -gt 0 ]] || prefixes=("")
for p in "${prefixes[@]}"; do
  /usr/bin/python3 "$torch_ref" "$threads" "$p" >> "$work/torch.txt"
  "$build/apps/kiln-bench" --threads "$threads" ${p:+"$p"} >> "$work/kiln.txt"
done

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), fp32 FMA peak ${peak} GFLOP/s at $threads threads"
python3 - "$work/torch.txt" "$work/kiln.txt" "$peak" <<'PY'
import sys
def read(path):
    out = {}
    for line in open(path):
        parts = line.rstrip("\n").split("\t")
        if len(parts) >= 2 and parts[1].endswith(" ms"):
            out[parts[0]] = float(parts[1][:-3])
    return out
torch, kiln, peak = read(sys.argv[1]), read(sys.argv[2]), float(sys.argv[3])
flops = {"vgg8": 0.27428352, "vgg16": 1.879209984}  # GFLOP per image per step (WORKLOADS.md)
print(f"{'workload':28} {'PyTorch ms':>11} {'kiln ms':>9} {'ratio':>7} {'kiln GFLOP/s':>13} {'of peak':>8}")
for name, k in kiln.items():
    t = torch.get(name)
    gflops = share = ""
    parts = name.split(":")
    if parts[0] == "step":
        g = flops[parts[1]] * int(parts[3]) / (k / 1e3)
        gflops, share = f"{g:.1f}", f"{100 * g / peak:.0f}%"
    ratio = f"{t / k:.2f}" if t else "-"
    print(f"{name:28} {t if t else '-':>11} {k:>9.3f} {ratio:>7} {gflops:>13} {share:>8}")
PY
