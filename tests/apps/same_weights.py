"""Exits 0 when two kiln checkpoints hold bit-identical model tensors ("model.*"), else prints the
first difference and exits 1. Standard library only.    same_weights.py A B"""
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


a, b = model_tensors(sys.argv[1]), model_tensors(sys.argv[2])
if not a or sorted(a) != sorted(b):
    print(f"different model tensors: {len(a)} vs {len(b)}")
    sys.exit(1)
for name in sorted(a):
    if a[name] != b[name]:
        print(f"{name} differs")
        sys.exit(1)
print(f"{len(a)} model tensors identical")
