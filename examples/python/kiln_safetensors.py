"""Reads and writes kiln files (the safetensors layout) with Python's standard library only.

    python3 kiln_safetensors.py list FILE        prints each tensor's name, dtype and shape
    python3 kiln_safetensors.py copy IN OUT      reads IN and writes its tensors and metadata to OUT

A tensor is a tuple (dtype, shape, data): dtype "F32", "F64" or "I64", shape a list of sizes, data
the row-major little-endian bytes. torch_interop.py turns them into torch tensors and back.
"""
import json
import os
import struct
import sys

ITEMSIZE = {"F32": 4, "F64": 8, "I64": 8}


def read(path):
    """Returns (tensors, metadata): tensors maps each name to (dtype, shape, data), in file order."""
    with open(path, "rb") as f:
        raw = f.read()
    (header_size,) = struct.unpack_from("<Q", raw, 0)
    header = json.loads(raw[8:8 + header_size].decode("utf-8"))
    metadata = header.pop("__metadata__", None) or {}
    data = raw[8 + header_size:]
    tensors = {}
    for name, info in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
        begin, end = info["data_offsets"]
        count = 1
        for size in info["shape"]:
            count *= size
        if end - begin != count * ITEMSIZE[info["dtype"]]:
            raise ValueError(f"{path}: {name}: data_offsets do not match dtype and shape")
        tensors[name] = (info["dtype"], info["shape"], data[begin:end])
    return tensors, metadata


def write(path, tensors, metadata=None):
    """Writes tensors (name -> (dtype, shape, data)) and string metadata, replacing path atomically."""
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    temporary = f"{path}.tmp.{os.getpid()}"
    with open(temporary, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, data in tensors.values():
            f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "list":
        tensors, metadata = read(sys.argv[2])
        for name, (dtype, shape, _) in tensors.items():
            print(name, dtype, shape)
        for key, value in metadata.items():
            print(f"metadata {key} = {value}")
    elif len(sys.argv) == 4 and sys.argv[1] == "copy":
        tensors, metadata = read(sys.argv[2])
        write(sys.argv[3], tensors, metadata)
    else:
        sys.exit(__doc__)
