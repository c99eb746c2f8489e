"""Writes a small data set in CIFAR-10's binary format: data_batch_1..5.bin and test_batch.bin,
each `records` records of 1 label byte + 3072 pixel bytes, plus batches.meta.txt.

Pixels carry a class-dependent pattern plus noise, so a model can learn something in a few steps.
    make_cifar_like.py DIR RECORDS
"""
import os
import random
import sys

out, records = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
rng = random.Random(1234)
names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def record(label):
    body = bytearray(3072)
    for i in range(3072):
        plane, pos = divmod(i, 1024)
        row = pos // 32
        base = 200 if (row // 4) % 10 == label else 40
        body[i] = max(0, min(255, base + (plane * 10) + rng.randint(-30, 30)))
    return bytes([label]) + bytes(body)


for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    with open(os.path.join(out, name), "wb") as f:
        for r in range(records):
            f.write(record(rng.randrange(10)))
with open(os.path.join(out, "batches.meta.txt"), "w") as f:
    f.write("\n".join(names) + "\n\n")
