"""Writes the state_dict keys and shapes of the benchmark's VGG models as PyTorch builds them
(../shared/bench/torch_ref.py's vgg()), so the tests can check kiln's make_vgg gives the same.
    /usr/bin/python3 tests/tools/gen_vgg_keys.py      -> tests/data/vgg_state_dict_keys.txt
"""
import os

import torch.nn as nn


def norm(kind, c, groups=32):
    return {"gn": lambda: nn.GroupNorm(min(groups, c), c), "bn": lambda: nn.BatchNorm2d(c),
            "none": lambda: nn.Identity()}[kind]()


def vgg(blocks, kind):
    layers, cin = [], 3
    for block in blocks:
        for c in block:
            layers += [nn.Conv2d(cin, c, 3, padding=1), norm(kind, c), nn.ReLU(inplace=True)]
            cin = c
        layers += [nn.MaxPool2d(2, 2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(cin, 10))


MODELS = {"vgg8": [[32, 32], [64, 64], [128, 128], [256], [256]],
          "vgg16": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]}
path = os.path.join(os.path.dirname(__file__), "..", "data", "vgg_state_dict_keys.txt")
with open(path, "w") as f:
    for model, blocks in MODELS.items():
        for kind in ("gn", "bn", "none"):
            for key, value in vgg(blocks, kind).state_dict().items():
                f.write(f"{model} {kind} {key} {'x'.join(map(str, value.shape)) or 'scalar'}\n")
print("wrote", os.path.normpath(path))
