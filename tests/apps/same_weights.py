"""Exits 0 when two kiln checkpoints hold the same model tensors ("model.*"), else prints the first
difference and exits 1. Standard library only.
    same_weights.py A B              bit-identical
    same_weights.py A B --rtol R     every floating tensor within R of the other, relative to its
                                     largest magnitude (max |a - b| <= R max |b|); prints the worst
"""
import json
import struct
import sys


def model_tensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name.startswith("model."):
            begin, end = info["data_offsets"]
            out[name] = (info["dtype"], info["shape"], data[begin:end])
    return out


def values(dtype, raw):
    code = {"F32": "f", "F64": "d", "I64": "q"}[dtype]
    return struct.unpack("<%d%s" % (len(raw) // struct.calcsize(code), code), raw)


args = sys.argv[1:]
rtol = None
if "--rtol" in args:
    at = args.index("--rtol")
    rtol = float(args[at + 1])
    del args[at:at + 2]
a, b = model_tensors(args[0]), model_tensors(args[1])
if not a or sorted(a) != sorted(b):
    print(f"different model tensors: {len(a)} vs {len(b)}")
    sys.exit(1)
worst, worst_name = 0.0, ""
for name in sorted(a):
    if rtol is None or a[name][0] not in ("F32", "F64"):
        if a[name] != b[name]:
            print(f"{name} differs")
            sys.exit(1)
        continue
    if a[name][:2] != b[name][:2]:
        print(f"{name}: dtype or shape differs")
        sys.exit(1)
    va, vb = values(a[name][0], a[name][2]), values(b[name][0], b[name][2])
    scale = max((abs(v) for v in vb), default=0.0)
    diff = max((abs(x - y) for x, y in zip(va, vb)), default=0.0)
    relative = diff / scale if scale > 0 else diff
    if relative > worst:
        worst, worst_name = relative, name
if rtol is None:
    print(f"{len(a)} model tensors identical")
elif worst > rtol:
    print(f"{worst_name} differs by {worst:.3g} relative (tolerance {rtol:g})")
    sys.exit(1)
else:
    print(f"{len(a)} model tensors within {worst:.3g} relative (worst: {worst_name})")
