"""An independent reader for files kiln writes.

    /usr/bin/python3 tests/tools/safetensors_roundtrip.py IN OUT

Reads IN with the numpy reader of fixtures.py (no kiln code involved), checks the layout rules a
strict reader enforces (8-byte length, JSON header, contiguous sorted offsets covering the data
exactly), and writes the tensors and metadata again to OUT with the numpy writer.
tests/core/safetensors_test.cpp compares OUT with the tensors kiln meant to write.
"""
import json
import struct
import sys

from fixtures import load, save


def check_layout(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    spans = sorted(tuple(info["data_offsets"]) for info in header.values())
    position = 0
    for begin, end in spans:
        assert begin == position, f"gap or overlap at {begin}"
        position = end
    assert 8 + n + position == len(raw), "the data does not end at the end of the file"
    assert (8 + n) % 8 == 0, "the data is not 8-byte aligned"


if __name__ == "__main__":
    check_layout(sys.argv[1])
    tensors, metadata = load(sys.argv[1])
    save(sys.argv[2], tensors, metadata)
