"""Writes the PyTorch reference fixtures for the basic layer families:

    tests/data/linear.safetensors      nn.Linear
    tests/data/activation.safetensors  ReLU, LeakyReLU, GELU (both forms), SiLU, Sigmoid, Tanh
    tests/data/pooling.safetensors     MaxPool2d, AvgPool2d, AdaptiveAvgPool2d
    tests/data/loss.safetensors        cross_entropy, nll_loss, mse_loss

Each case is a group of tensors named "<case>.<what>": the inputs and parameters, the output "y",
the fixed random "grad_y" that seeds backward, and the gradients "grad_<input>" that come out of it.
An i64 "<case>.config" holds the case's options, so the C++ tests read everything from the file.

Run from the repository root with /usr/bin/python3 (it needs torch):
    /usr/bin/python3 tests/tools/gen_basic_layers.py
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from fixtures import save  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "..", "data")


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def linear_cases(gen):
    out = {}
    # name: (leading dims of x, in_features, out_features, bias)
    cases = {
        "rows3": ((3,), 7, 5, True),
        "row1_nobias": ((1,), 4, 3, False),
        "lead2x3": ((2, 3), 6, 1, True),
        "vector": ((), 7, 3, True),
        "wide": ((4,), 33, 17, True),
    }
    for name, (lead, fin, fout, has_bias) in cases.items():
        layer = torch.nn.Linear(fin, fout, bias=has_bias)
        x = leaf(torch.randn(*lead, fin, generator=gen))
        y = layer(x)
        grad_y = torch.randn(y.shape, generator=gen)
        y.backward(grad_y)
        out[f"{name}.config"] = np.array([fin, fout, int(has_bias)], dtype=np.int64)
        out[f"{name}.x"] = x
        out[f"{name}.weight"] = layer.weight
        out[f"{name}.y"] = y
        out[f"{name}.grad_y"] = grad_y
        out[f"{name}.grad_x"] = x.grad
        out[f"{name}.grad_weight"] = layer.weight.grad
        if has_bias:
            out[f"{name}.bias"] = layer.bias
            out[f"{name}.grad_bias"] = layer.bias.grad
    return out


def activation_cases(gen):
    out = {}
    modules = {
        "relu": torch.nn.ReLU(),
        "leaky_relu": torch.nn.LeakyReLU(),
        "leaky_relu_0.2": torch.nn.LeakyReLU(0.2),
        "gelu": torch.nn.GELU(),
        "gelu_tanh": torch.nn.GELU(approximate="tanh"),
        "silu": torch.nn.SiLU(),
        "sigmoid": torch.nn.Sigmoid(),
        "tanh": torch.nn.Tanh(),
    }
    for name, module in modules.items():
        for shape in [(3, 7), (2, 1, 5, 3)]:
            case = f"{name}.{'x'.join(map(str, shape))}"
            x = torch.randn(*shape, generator=gen) * 3
            x.view(-1)[0] = 0.0    # the kink of relu / leaky_relu
            x.view(-1)[1] = -12.0  # far tails
            x.view(-1)[2] = 12.0
            x = leaf(x)
            y = module(x)
            grad_y = torch.randn(y.shape, generator=gen)
            y.backward(grad_y)
            out[f"{case}.x"] = x
            out[f"{case}.y"] = y
            out[f"{case}.grad_y"] = grad_y
            out[f"{case}.grad_x"] = x.grad
    return out


def pooling_cases(gen):
    out = {}
    # name: (kind, shape, kernel, stride, padding, count_include_pad, output size)
    # kind: 0 max, 1 avg, 2 adaptive avg
    cases = {
        "max_k3s2p1": (0, (2, 3, 7, 9), 3, 2, 1, 1, None),
        "max_k2": (0, (1, 1, 4, 6), 2, 2, 0, 1, None),
        "max_k3s1p1": (0, (2, 2, 5, 3), 3, 1, 1, 1, None),
        "max_k1": (0, (1, 3, 1, 1), 1, 1, 0, 1, None),
        "max_ties_k2s1": (0, (1, 2, 5, 5), 2, 1, 0, 1, None),
        "max_k3s3_7x7": (0, (3, 1, 7, 7), 3, 3, 0, 1, None),
        "avg_k2": (1, (2, 3, 7, 9), 2, 2, 0, 1, None),
        "avg_k3s2p1": (1, (1, 2, 5, 7), 3, 2, 1, 1, None),
        "avg_k3s1p1_nopad": (1, (1, 2, 5, 3), 3, 1, 1, 0, None),
        "avg_k1": (1, (1, 3, 1, 1), 1, 1, 0, 1, None),
        "adaptive_1": (2, (2, 3, 7, 9), 0, 0, 0, 1, (1, 1)),
        "adaptive_2x3": (2, (1, 2, 5, 7), 0, 0, 0, 1, (2, 3)),
        "adaptive_3": (2, (1, 1, 7, 7), 0, 0, 0, 1, (3, 3)),
        "adaptive_up_4x5": (2, (1, 2, 3, 3), 0, 0, 0, 1, (4, 5)),
    }
    for name, (kind, shape, k, s, p, include_pad, size) in cases.items():
        if "ties" in name:
            x = torch.randint(0, 3, shape, generator=gen).to(torch.float32)
        else:
            x = torch.randn(*shape, generator=gen)
        x = leaf(x)
        if kind == 0:
            y = F.max_pool2d(x, k, s, p)
        elif kind == 1:
            y = F.avg_pool2d(x, k, s, p, count_include_pad=bool(include_pad))
        else:
            y = F.adaptive_avg_pool2d(x, size)
        grad_y = torch.randn(y.shape, generator=gen)
        y.backward(grad_y)
        oh, ow = size if size else (0, 0)
        out[f"{name}.config"] = np.array([kind, k, s, p, include_pad, oh, ow], dtype=np.int64)
        out[f"{name}.x"] = x
        out[f"{name}.y"] = y
        out[f"{name}.grad_y"] = grad_y
        out[f"{name}.grad_x"] = x.grad
    return out


def loss_cases(gen):
    out = {}
    reductions = {"none": 0, "mean": 1, "sum": 2}
    # name: (kind, logits shape, reduction, label_smoothing, ignore_index, labels to ignore)
    # kind: 0 cross_entropy, 1 nll_loss, 2 mse_loss
    cases = {
        "ce_mean": (0, (5, 7), "mean", 0.0, -100, 0),
        "ce_sum": (0, (5, 7), "sum", 0.0, -100, 0),
        "ce_none": (0, (5, 7), "none", 0.0, -100, 0),
        "ce_n1c3": (0, (1, 3), "mean", 0.0, -100, 0),
        "ce_c1": (0, (3, 1), "mean", 0.0, -100, 0),
        "ce_smooth_mean": (0, (6, 5), "mean", 0.1, -100, 0),
        "ce_smooth_sum": (0, (6, 5), "sum", 0.3, -100, 0),
        "ce_smooth_none": (0, (6, 5), "none", 0.25, -100, 0),
        "ce_ignore_mean": (0, (7, 4), "mean", 0.0, -100, 3),
        "ce_ignore_sum": (0, (7, 4), "sum", 0.0, -100, 2),
        "ce_ignore_none": (0, (7, 4), "none", 0.0, -100, 2),
        "ce_ignore_class2": (0, (7, 4), "mean", 0.0, 2, 0),
        "ce_ignore_smooth": (0, (7, 4), "mean", 0.2, -100, 3),
        "ce_spatial": (0, (2, 5, 3, 4), "mean", 0.0, -100, 4),
        "ce_spatial_smooth_none": (0, (2, 3, 5), "none", 0.1, -100, 2),
        "ce_large_logits": (0, (4, 6), "mean", 0.0, -100, 0),
        "nll_mean": (1, (5, 7), "mean", 0.0, -100, 2),
        "nll_none": (1, (5, 7), "none", 0.0, -100, 1),
        "nll_sum_spatial": (1, (2, 4, 3), "sum", 0.0, -100, 1),
        "mse_mean": (2, (3, 7), "mean", 0.0, 0, 0),
        "mse_sum": (2, (3, 7), "sum", 0.0, 0, 0),
        "mse_none": (2, (2, 3, 5), "none", 0.0, 0, 0),
    }
    for name, (kind, shape, reduction, smoothing, ignore_index, n_ignored) in cases.items():
        x = torch.randn(*shape, generator=gen)
        if "large" in name:
            x = x * 40 + 500  # lse must subtract the max
        x = leaf(x)
        tensors = {"x": x}
        if kind == 2:
            target = leaf(torch.randn(*shape, generator=gen))
            y = F.mse_loss(x, target, reduction=reduction)
            tensors["target"] = target
        else:
            label_shape = (shape[0],) + shape[2:]
            labels = torch.randint(0, shape[1], label_shape, generator=gen)
            flat = labels.view(-1)
            if n_ignored:
                flat[torch.randperm(flat.numel(), generator=gen)[:n_ignored]] = ignore_index
            tensors["labels"] = labels
            if kind == 0:
                y = F.cross_entropy(x, labels, reduction=reduction, label_smoothing=smoothing,
                                    ignore_index=ignore_index)
            else:
                log_probs = leaf(torch.log_softmax(x.detach(), dim=1))
                x = log_probs
                tensors["x"] = x
                y = F.nll_loss(x, labels, reduction=reduction, ignore_index=ignore_index)
        grad_y = torch.randn(y.shape, generator=gen)
        y.backward(grad_y)
        tensors["y"] = y
        tensors["grad_y"] = grad_y
        tensors["grad_x"] = x.grad
        if kind == 2:
            tensors["grad_target"] = tensors["target"].grad
        tensors["config"] = np.array([kind, reductions[reduction], ignore_index], dtype=np.int64)
        tensors["smoothing"] = np.array([smoothing], dtype=np.float64)
        for key, value in tensors.items():
            out[f"{name}.{key}"] = value
    return out


def main():
    gen = torch.Generator().manual_seed(20240611)
    torch.manual_seed(7)  # nn.Linear's own init
    os.makedirs(DATA, exist_ok=True)
    for family, build in [("linear", linear_cases), ("activation", activation_cases),
                          ("pooling", pooling_cases), ("loss", loss_cases)]:
        path = os.path.join(DATA, f"{family}.safetensors")
        save(path, build(gen), metadata={"generator": "tests/tools/gen_basic_layers.py",
                                         "torch": torch.__version__})
        print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
