#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus: a few small valid files per reader, under corpus/<reader>/.

    python3 tests/fuzz/make_corpus.py          (rewrites tests/fuzz/corpus/)

The output is deterministic (fixed patterns, gzip with mtime 0), so rerunning it changes nothing.
"""
import gzip
import json
import pathlib
import shutil
import struct

HERE = pathlib.Path(__file__).resolve().parent


def pattern(n, seed=0):
    return bytes((i * 37 + seed * 11 + 5) % 256 for i in range(n))


def idx(dims, data):
    header = bytes([0, 0, 0x08, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    return header + data


def cifar_batch(labels):
    return b"".join(bytes([label]) + pattern(3072, seed=r) for r, label in enumerate(labels))


def safetensors(tensors, metadata=None):
    """tensors: (name, dtype, shape, payload bytes) in data order; the layout kiln writes."""
    header, offset, data = {}, 0, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(payload)]}
        offset += len(payload)
        data += payload
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + data


def main():
    out = HERE / "corpus"
    shutil.rmtree(out, ignore_errors=True)
    files = {}

    labels = bytes([3, 1, 4, 1, 5, 9, 2, 6])
    images = idx([2, 4, 5], pattern(40))
    files["idx/labels-8"] = idx([8], labels)
    files["idx/labels-8.gz"] = gzip.compress(idx([8], labels), mtime=0)
    files["idx/images-2x4x5"] = images
    files["idx/images-2x4x5.gz"] = gzip.compress(images, mtime=0)
    # Level 0 keeps the IDX bytes verbatim inside the gzip stream (stored blocks), so mutations
    # reach the header and the data behind the gzip framing, not only the deflate codes.
    files["idx/labels-8.stored.gz"] = gzip.compress(idx([8], labels), compresslevel=0, mtime=0)
    files["idx/images-2x4x5.stored.gz"] = gzip.compress(images, compresslevel=0, mtime=0)
    files["idx/images-1x28x28.gz"] = gzip.compress(idx([1, 28, 28], pattern(784, 3)), mtime=0)
    files["idx/images-3x1x1"] = idx([3, 1, 1], b"\x00\x7f\xff")

    files["cifar10/batch-1"] = cifar_batch([7])
    files["cifar10/batch-2"] = cifar_batch([0, 9])
    files["cifar10/batches.meta.txt"] = (
        "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n").encode()
    files["cifar10/meta-crlf.txt"] = (" a \r\nb\r\n\r\nc\td\r\ne\r\nf\r\ng\r\nh\r\ni\r\nj\r\nk").encode()

    f32 = struct.pack("<6f", 0.5, -1.0, 2.0, 3.25, 0.0, 1e-3)
    files["safetensors/one-f32"] = safetensors([("weight", "F32", [2, 3], f32)])
    files["safetensors/mixed"] = safetensors(
        [("a.bias", "F64", [], struct.pack("<d", 1.5)),
         ("b.count", "I64", [2], struct.pack("<2q", -3, 1 << 40)),
         ("c.empty", "F32", [0, 3], b"")],
        metadata={"format": "pt", "step": "7"})
    files["safetensors/empty"] = safetensors([])
    files["safetensors/meta-null"] = (lambda text: struct.pack("<Q", len(text)) + text)(
        b'{"__metadata__":null,"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    ) + struct.pack("<f", 7.0)

    for name, data in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    total = sum(len(d) for d in files.values())
    print(f"make_corpus: {len(files)} files, {total} bytes under {out}")


if __name__ == "__main__":
    main()
