"""Target 4: peak memory of one forward + backward solve versus the number of steps.

Peak memory is measured exactly, as the high-water mark of live tensor bytes allocated
inside the solve (PyTorch profiler memory events), so the numbers do not depend on the
allocator or on what else runs on the machine.  The problem: an HBNODE whose force is a
spring ``-(2π)² h`` plus a small MLP (width 32, hidden 128, batch 64, float32); its period
is 1, so the step count grows linearly with the end time ``T``.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from pyhbnode import HBNODE, odeint
from pyhbnode.fields import mlp


class Spring(nn.Module):
    def __init__(self, n: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.net = mlp([n, hidden, n], "tanh")
        self.k = (2 * math.pi) ** 2

    def forward(self, h):
        return -self.k * h + 0.1 * self.net(h)


def peak_bytes(fn) -> int:
    """High-water mark of tensor bytes allocated (and not yet freed) while ``fn`` runs."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def measure(adjoint: str, T: float, seed: int = 0) -> dict:
    """``adjoint`` as ``odeint`` takes it ("checkpointed:8": at most 8 states kept, the steps
    between them replayed by recursive bisection)."""
    torch.manual_seed(seed)
    field = HBNODE(Spring(), gamma=0.05)
    y0 = torch.randn(64, 2, 32, requires_grad=True)
    t = torch.tensor([0.0, T])
    stats = {}

    def run():
        sol = odeint(field, y0, t, backend="torch", adjoint=adjoint, seminorm=True, rtol=1e-6, atol=1e-6)
        sol.ys[-1].pow(2).sum().backward()
        stats.update(sol.stats.as_dict())

    run()  # warm up
    peak = peak_bytes(run)
    return dict(adjoint=adjoint, T=T, steps=stats["steps"], nfe_f=stats["nfe_forward"],
                nfe_b=stats["nfe_backward"], peak_mb=peak / 2 ** 20)


def run(quick: bool) -> list[dict]:
    # about 25 steps per unit time: T = 0.4 / 4 / 40 is ~10 / 100 / 1000 steps
    adjoint_T = [0.4, 4.0, 12.0] if quick else [0.4, 4.0, 40.0]
    direct_T = [0.4, 1.2, 4.0] if quick else [0.4, 1.2, 4.0, 12.0]
    rows = []
    for adjoint in ("backsolve", "checkpointed", "checkpointed:8"):
        for T in adjoint_T:
            rows.append(measure(adjoint, T))
    for T in direct_T:
        rows.append(measure("direct", T))
    return rows
