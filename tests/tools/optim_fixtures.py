"""Generates the PyTorch reference fixtures for tests/optim and the safetensors interop tests.

Run from anywhere with Debian's PyTorch:  /usr/bin/python3 tests/tools/optim_fixtures.py
Writes (into tests/data):
  optim_trajectories.safetensors  20 steps of each optimizer configuration on a small MLP, f32 and f64:
                                  parameters, loss and lr after each step; for f32 also the
                                  gradients each step consumed
  lr_schedules.safetensors        learning rates of each scheduler configuration, per step and group
  clip_grad.safetensors           clip_grad_norm_ / clip_grad_value_ results
  torch_mlp_state.safetensors     a PyTorch nn.Sequential's state_dict, exactly its keys
  torch_mlp_io.safetensors        an input and that model's output, to check a kiln model loading it
  reference_layout.safetensors    known tensors written by the numpy writer (fixtures.save), which
                                  kiln's writer must reproduce byte for byte
The optimizers run with foreach=False, PyTorch's CPU default (the per-tensor path).
"""
import math
import os

import numpy as np
import torch

from fixtures import save

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
STEPS = 20


class MLP(torch.nn.Module):
    """fc1 -> tanh -> fc2, the network tests/optim/optimizer_parity_test.cpp rebuilds."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(6, 10)
        self.fc2 = torch.nn.Linear(10, 4)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


# name -> (optimizer factory over (model), scheduler factory or None, clip max_norm or None)
def configs():
    def groups(model, **fc1):
        return [{"params": model.fc1.parameters(), **fc1}, {"params": model.fc2.parameters()}]

    return {
        "sgd": (lambda m: torch.optim.SGD(m.parameters(), lr=0.1, foreach=False), None, None),
        "sgd_momentum": (lambda m: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, dampening=0.1,
                                                   weight_decay=1e-3, foreach=False), None, None),
        "sgd_nesterov": (lambda m: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.8, nesterov=True,
                                                   weight_decay=1e-2, foreach=False), None, None),
        "sgd_maximize": (lambda m: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.5, maximize=True,
                                                   foreach=False), None, None),
        "adam": (lambda m: torch.optim.Adam(m.parameters(), lr=1e-2, foreach=False), None, None),
        "adam_amsgrad_wd": (lambda m: torch.optim.Adam(m.parameters(), lr=5e-3, betas=(0.8, 0.99), eps=1e-6,
                                                       weight_decay=1e-2, amsgrad=True, foreach=False), None, None),
        "adam_maximize": (lambda m: torch.optim.Adam(m.parameters(), lr=1e-3, maximize=True, foreach=False),
                          None, None),
        "adamw": (lambda m: torch.optim.AdamW(m.parameters(), lr=1e-2, foreach=False), None, None),
        "adamw_amsgrad": (lambda m: torch.optim.AdamW(m.parameters(), lr=3e-3, betas=(0.85, 0.995),
                                                      weight_decay=0.1, amsgrad=True, foreach=False), None, None),
        # Parameter groups with their own options, a warm-up then cosine schedule.
        "sgd_groups_warmup_cosine": (
            lambda m: torch.optim.SGD(groups(m, lr=0.1), lr=0.02, momentum=0.9, foreach=False),
            lambda o: torch.optim.lr_scheduler.SequentialLR(
                o, [torch.optim.lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=4),
                    torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=16, eta_min=1e-3)], milestones=[4]),
            None),
        # Gradient clipping inside the loop, and a step decay.
        "adam_clip_steplr": (lambda m: torch.optim.Adam(m.parameters(), lr=2e-2, foreach=False),
                             lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=5, gamma=0.5), 0.05),
    }


def trajectories():
    torch.manual_seed(1234)
    model = MLP().double()
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    x = torch.randn(STEPS, 8, 6, dtype=torch.float64)
    y = torch.randn(STEPS, 8, 4, dtype=torch.float64)
    out = {"x": x, "y": y}
    for k, v in init.items():
        out["init." + k] = v
    for name, (make_opt, make_sched, clip) in configs().items():
        for dtype, tag in ((torch.float32, "f32"), (torch.float64, "f64")):
            m = MLP().to(dtype)
            m.load_state_dict({k: v.to(dtype) for k, v in init.items()})
            opt = make_opt(m)
            sched = make_sched(opt) if make_sched else None
            traj = {k: [] for k in init}
            grads = {k: [] for k in init}
            losses, lrs, norms = [], [], []
            for step in range(STEPS):
                opt.zero_grad()
                loss = ((m(x[step].to(dtype)) - y[step].to(dtype)) ** 2).mean()
                loss.backward()
                if clip is not None:
                    norms.append(float(torch.nn.utils.clip_grad_norm_(m.parameters(), clip)))
                lrs.append([g["lr"] for g in opt.param_groups])
                for k, p in m.named_parameters():
                    grads[k].append(p.grad.detach().clone())
                opt.step()
                if sched:
                    sched.step()
                losses.append(loss.item())
                for k, v in m.state_dict().items():
                    traj[k].append(v.detach().clone())
            prefix = f"{name}.{tag}."
            for k, v in traj.items():
                out[prefix + k] = torch.stack(v)
            if dtype == torch.float32:  # the gradients step() consumed, to replay in kiln
                for k, v in grads.items():
                    out[prefix + "grad." + k] = torch.stack(v)
            out[prefix + "loss"] = np.array(losses, dtype=np.float64)
            out[prefix + "lr"] = np.array(lrs, dtype=np.float64)
            if norms:
                out[prefix + "clip_norm"] = np.array(norms, dtype=np.float64)
    save(os.path.join(DATA, "optim_trajectories.safetensors"), out,
         {"generator": "tests/tools/optim_fixtures.py", "torch": torch.__version__})


def schedules():
    S = torch.optim.lr_scheduler
    setups = {
        "step": (30, lambda o: S.StepLR(o, step_size=3, gamma=0.5)),
        "multistep": (30, lambda o: S.MultiStepLR(o, milestones=[9, 2, 5, 5], gamma=0.3)),
        "cosine": (30, lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=1e-3)),
        "linear": (30, lambda o: S.LinearLR(o, start_factor=0.1, end_factor=0.9, total_iters=4)),
        "warmup_cosine": (30, lambda o: S.SequentialLR(
            o, [S.LinearLR(o, start_factor=0.1, total_iters=3), S.CosineAnnealingLR(o, T_max=8)], milestones=[3])),
        "warmup_multistep": (30, lambda o: S.SequentialLR(
            o, [S.LinearLR(o, start_factor=0.5, total_iters=5), S.MultiStepLR(o, milestones=[4, 6])], milestones=[5])),
        "chained_warmup_step": (30, lambda o: S.ChainedScheduler(
            [S.LinearLR(o, start_factor=0.2, total_iters=4), S.StepLR(o, step_size=3, gamma=0.5)])),
    }
    out = {}
    for name, (steps, make) in setups.items():
        p = [torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)]
        opt = torch.optim.SGD([{"params": [p[0]], "lr": 0.1}, {"params": [p[1]], "lr": 0.02}])
        sched = make(opt)
        lrs = []
        for _ in range(steps):
            lrs.append([g["lr"] for g in opt.param_groups])
            opt.step()
            sched.step()
        out[name] = np.array(lrs, dtype=np.float64)
    save(os.path.join(DATA, "lr_schedules.safetensors"), out)


def clipping():
    torch.manual_seed(7)
    shapes = [(3, 5), (7,), (2, 2, 2)]
    grads = [torch.randn(s, dtype=torch.float64) for s in shapes]
    out = {f"grad.{i}": g for i, g in enumerate(grads)}
    cases = {"l2": (0.5, 2.0), "l1": (1.0, 1.0), "inf": (0.3, math.inf), "l3": (0.7, 3.0), "loose": (100.0, 2.0)}
    for name, (max_norm, norm_type) in cases.items():
        params = [torch.zeros_like(g, requires_grad=True) for g in grads]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
        out[f"{name}.total"] = np.array(float(total))
        for i, p in enumerate(params):
            out[f"{name}.grad.{i}"] = p.grad
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    torch.nn.utils.clip_grad_value_(params, 0.4)
    for i, p in enumerate(params):
        out[f"value.grad.{i}"] = p.grad
    save(os.path.join(DATA, "clip_grad.safetensors"), out)


def interop():
    torch.manual_seed(99)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    save(os.path.join(DATA, "torch_mlp_state.safetensors"), net.state_dict())
    x = torch.randn(4, 5)
    with torch.no_grad():
        save(os.path.join(DATA, "torch_mlp_io.safetensors"), {"input": x, "output": net(x)})


def reference_layout():
    tensors = {
        "weights": np.arange(6, dtype=np.float32).reshape(2, 3) * np.float32(0.5),
        "special": np.array([1e-300, -0.0, np.inf, -np.inf, np.nan, 2.5], dtype=np.float64),
        "labels": np.array([-(2 ** 62), 0, 7, 2 ** 63 - 1], dtype=np.int64),
        "scalar": np.array(3.25, dtype=np.float64),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    save(os.path.join(DATA, "reference_layout.safetensors"), tensors, {"format": "pt", "note": "layout check"})


if __name__ == "__main__":
    trajectories()
    schedules()
    clipping()
    interop()
    reference_layout()
