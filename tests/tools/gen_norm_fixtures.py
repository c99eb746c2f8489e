"""Reference values for GroupNorm, LayerNorm, InstanceNorm2d and BatchNorm1d/2d from PyTorch.

Run from the repository root with Debian's PyTorch:  /usr/bin/python3 tests/tools/gen_norm_fixtures.py
Writes tests/data/norm_fixtures.safetensors. Each case <name> stores x, g (the gradient fed to
backward), the parameters, y, dx, dweight, dbias, and for BatchNorm the running statistics before
and after the step, and an eval-mode output.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import fixtures  # noqa: E402

torch.manual_seed(0)
out = {}


def record(name, module, x, extra=None):
    x = x.clone().requires_grad_(True)
    y = module(x)
    g = torch.randn_like(y)
    y.backward(g)
    out[f"{name}.x"] = x.detach()
    out[f"{name}.g"] = g
    out[f"{name}.y"] = y.detach()
    out[f"{name}.dx"] = x.grad.clone()
    for pname, p in module.named_parameters():
        out[f"{name}.{pname}"] = p.detach()
        out[f"{name}.d{pname}"] = p.grad.clone()
    for k, v in (extra or {}).items():
        out[f"{name}.{k}"] = v


def affine_randomized(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5 + (1.0 if p.dim() and p is module.weight else 0.0))
    return module


# GroupNorm: (shape, groups)
for i, (shape, groups) in enumerate([((2, 6, 5, 7), 3), ((1, 4, 3, 3), 1), ((3, 6, 4, 4), 6),
                                     ((2, 8, 1, 1), 4), ((2, 5, 7), 5), ((3, 7, 2, 3), 7)]):
    m = affine_randomized(torch.nn.GroupNorm(groups, shape[1]))
    record(f"gn{i}", m, torch.randn(*shape) * 2 + 0.5, {"groups": torch.tensor([groups])})

# LayerNorm: (shape, normalized_shape)
for i, (shape, norm) in enumerate([((2, 3, 4, 5), (4, 5)), ((3, 7), (7,)), ((2, 8, 5, 5), (8, 5, 5)),
                                   ((1, 3, 1), (1,))]):
    m = affine_randomized(torch.nn.LayerNorm(norm))
    record(f"ln{i}", m, torch.randn(*shape), {"normalized_shape": torch.tensor(norm)})

# InstanceNorm2d: (shape, affine)
for i, (shape, affine) in enumerate([((2, 3, 5, 6), True), ((1, 4, 3, 7), False), ((3, 1, 2, 2), True)]):
    m = torch.nn.InstanceNorm2d(shape[1], affine=affine)
    if affine:
        affine_randomized(m)
    record(f"in{i}", m, torch.randn(*shape))

# BatchNorm: training step from given running stats, then an eval forward on a second input.
for i, (kind, shape) in enumerate([("2d", (4, 3, 5, 6)), ("2d", (2, 7, 3, 3)), ("2d", (1, 3, 4, 4)),
                                   ("1d", (5, 4)), ("1d", (3, 4, 6)), ("2d", (2, 5, 1, 3))]):
    c = shape[1]
    m = torch.nn.BatchNorm2d(c) if kind == "2d" else torch.nn.BatchNorm1d(c)
    affine_randomized(m)
    with torch.no_grad():
        m.running_mean.copy_(torch.randn(c) * 0.1)
        m.running_var.copy_(torch.rand(c) + 0.5)
    before = {"running_mean_before": m.running_mean.clone(), "running_var_before": m.running_var.clone()}
    m.train()
    record(f"bn{i}", m, torch.randn(*shape) * 1.5 - 0.3, before)
    out[f"bn{i}.running_mean_after"] = m.running_mean.clone()
    out[f"bn{i}.running_var_after"] = m.running_var.clone()
    m.eval()
    x_eval = torch.randn(*shape).requires_grad_(True)
    y_eval = m(x_eval)
    g_eval = torch.randn_like(y_eval)
    y_eval.backward(g_eval)
    out[f"bn{i}.x_eval"] = x_eval.detach()
    out[f"bn{i}.g_eval"] = g_eval
    out[f"bn{i}.y_eval"] = y_eval.detach()
    out[f"bn{i}.dx_eval"] = x_eval.grad

path = os.path.join(os.path.dirname(__file__), "..", "data", "norm_fixtures.safetensors")
fixtures.save(path, out, {"generator": "tests/tools/gen_norm_fixtures.py", "torch": torch.__version__})
print(f"wrote {len(out)} tensors to {os.path.normpath(path)}")
