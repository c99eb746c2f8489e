"""Moves weights between kiln and PyTorch through kiln files.

    /usr/bin/python3 torch_interop.py IN OUT

Loads IN, written by kiln from a model built as make_model() below, into the same PyTorch model,
takes one SGD step on it, and saves its state_dict to OUT for kiln to load. state_dict keys are
the same on both sides for the same architecture.
"""
import sys

import torch

from kiln_safetensors import read, write

TORCH_DTYPE = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
KILN_DTYPE = {v: k for k, v in TORCH_DTYPE.items()}


def to_torch(tensors):
    """kiln_safetensors tensors -> a dict of torch tensors, usable as a state_dict."""
    return {name: torch.frombuffer(bytearray(data), dtype=TORCH_DTYPE[dtype]).reshape(shape)
            for name, (dtype, shape, data) in tensors.items()}


def from_torch(state_dict):
    """A torch state_dict -> kiln_safetensors tensors."""
    return {name: (KILN_DTYPE[t.dtype], list(t.shape), t.detach().contiguous().numpy().tobytes())
            for name, t in state_dict.items()}


def make_model():
    # kiln: nn::Sequential(Linear(4, 8), ReLU(), Linear(8, 2))
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


if __name__ == "__main__":
    tensors, metadata = read(sys.argv[1])
    model = make_model()
    model.load_state_dict(to_torch(tensors))  # strict: every key and shape must match

    inputs = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 10
    loss = model(inputs).square().mean()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    write(sys.argv[2], from_torch(model.state_dict()), {"written_by": "torch_interop.py"})
