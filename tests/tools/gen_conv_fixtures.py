"""Writes tests/data/conv2d.safetensors and tests/data/ws_conv2d.safetensors from PyTorch.

Run with Debian's python3-torch:  /usr/bin/python3 tests/tools/gen_conv_fixtures.py

For each config <c> the files hold, in float32:
  <c>.x, <c>.weight, <c>.bias (when the config has one), <c>.grad_y   the inputs
  <c>.y, <c>.grad_x, <c>.grad_weight, <c>.grad_bias                  PyTorch's results
  <c>.params  int64 [stride, padding, dilation, groups]
"""
import os

import torch
import torch.nn.functional as F

from fixtures import save

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")

# name: (N, C, H, W, C_out, k, stride, padding, dilation, groups, bias)
CONV_CONFIGS = {
    "basic": (2, 3, 7, 9, 8, 3, 1, 1, 1, 1, True),
    "strided_groups": (1, 4, 17, 11, 6, 3, 2, 1, 1, 2, True),
    "dilated_no_bias": (3, 6, 9, 7, 9, 3, 1, 2, 2, 3, False),
    "pointwise": (2, 5, 6, 13, 7, 1, 1, 0, 1, 1, True),
    "depthwise_k5_s3": (1, 8, 15, 14, 8, 5, 3, 2, 1, 8, True),
    "single_pixel": (1, 1, 1, 1, 1, 1, 1, 0, 1, 1, True),
    "tiny_images": (9, 8, 3, 4, 16, 3, 1, 1, 1, 1, True),
    # 3x3, stride 1, padding 1 with 16+ channels per group and enough tiles: the Winograd path
    "winograd": (2, 16, 7, 5, 16, 3, 1, 1, 1, 1, True),
    # 64+ channels each way on maps of 8x8 or more with enough tiles: Winograd F(4x4, 3x3)
    "winograd_4x4": (4, 64, 29, 30, 64, 3, 1, 1, 1, 1, True),
}

WS_CONFIGS = {
    "basic": (2, 4, 9, 7, 6, 3, 1, 1, 1, 1, True),
    "strided_groups_no_bias": (1, 6, 11, 8, 4, 3, 2, 1, 1, 2, False),
}

WS_EPS = 1e-5


def standardize(weight):
    """Weight Standardization (Qiao et al. 2019, eq. 5-6): per output channel, over
    [C/G, k, k], W_hat = (W - mean) / sqrt(var + eps) with the biased variance."""
    mean = weight.mean(dim=(1, 2, 3), keepdim=True)
    var = weight.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    return (weight - mean) / torch.sqrt(var + WS_EPS)


def make(configs, weight_fn, shift_weights):
    out = {}
    for name, (n, c, h, w, c_out, k, s, p, d, g, has_bias) in configs.items():
        x = torch.randn(n, c, h, w, requires_grad=True)
        weight = torch.randn(c_out, c // g, k, k) * 0.3
        if shift_weights:  # an offset and scale for standardization to remove
            weight = weight * 2 + 0.5
        weight.requires_grad_()
        bias = torch.randn(c_out, requires_grad=True) if has_bias else None
        y = F.conv2d(x, weight_fn(weight), bias, s, p, d, g)
        grad_y = torch.randn_like(y)
        y.backward(grad_y)
        out[f"{name}.x"] = x
        out[f"{name}.weight"] = weight
        out[f"{name}.grad_y"] = grad_y
        out[f"{name}.y"] = y
        out[f"{name}.grad_x"] = x.grad
        out[f"{name}.grad_weight"] = weight.grad
        if has_bias:
            out[f"{name}.bias"] = bias
            out[f"{name}.grad_bias"] = bias.grad
        out[f"{name}.params"] = torch.tensor([s, p, d, g], dtype=torch.int64)
    return out


if __name__ == "__main__":
    torch.manual_seed(0)
    save(os.path.join(DATA, "conv2d.safetensors"), make(CONV_CONFIGS, lambda w: w, False),
         {"generator": "tests/tools/gen_conv_fixtures.py", "torch": torch.__version__})
    save(os.path.join(DATA, "ws_conv2d.safetensors"), make(WS_CONFIGS, standardize, True),
         {"generator": "tests/tools/gen_conv_fixtures.py", "torch": torch.__version__,
          "eps": WS_EPS})
