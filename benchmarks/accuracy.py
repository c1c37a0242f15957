"""Target 5: gradient error of the adjoints against backprop through the solver (float64).

The point-cloud HBNODE and GHBNODE are first trained for a while (float32, native backend)
so that their damping and dynamics are those of a model in training, then converted to
float64.  For each tolerance, the gradient of the MSE loss over a batch of 50 w.r.t. all
model parameters is computed with ``adjoint="direct"`` (the reference: the exact gradient
of the discrete forward solution) and with each adjoint; the table gives the relative
error ``|g - g_direct| / |g_direct|`` and the backward NFE.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from pyhbnode import zoo
from pyhbnode.data.pointcloud import make_pointcloud
from pyhbnode import record
from pyhbnode.layers import set_solver_options

from .common import CANDIDATE, Variant

VARIANTS = [
    Variant("torchdiffeq backsolve", "torchdiffeq", "backsolve", False),
    Variant("torch backsolve", "torch", "backsolve", False),
    Variant("torch backsolve+seminorm", "torch", "backsolve", True),
    Variant("torch checkpointed", "torch", "checkpointed", True),
]


def _pretrained(name: str, iters: int, seed: int = 0):
    x, y = make_pointcloud(seed=seed)
    x = torch.tensor(x, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.float32).view(-1)
    torch.manual_seed(seed)
    m = zoo.build("pointcloud", name, tol=1e-7, **CANDIDATE.options())
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    rng = np.random.default_rng(seed)
    for _ in range(iters):
        idx = torch.from_numpy(rng.permutation(120)[:50])
        opt.zero_grad()
        (m(x[idx]).view(-1) - y[idx]).pow(2).mean().backward()
        opt.step()
    idx = torch.from_numpy(rng.permutation(120)[:50])
    return m.double(), x[idx].double(), y[idx].double()


def _grad(m, x, y, variant: Variant | None, tol: float):
    m = copy.deepcopy(m)
    if variant is None:
        set_solver_options(m, backend="torch", adjoint="direct", rtol=tol, atol=tol)
    else:
        set_solver_options(m, **variant.options(), rtol=tol, atol=tol)
    params = [p for p in m.parameters() if p.requires_grad]
    with record() as solves:
        loss = (m(x).view(-1) - y).pow(2).mean()
        g = torch.autograd.grad(loss, params)
    return torch.cat([t.reshape(-1) for t in g]), solves.stats


def run(quick: bool, models=("hbnode", "ghbnode")) -> list[dict]:
    rows = []
    for name in models:
        m, x, y = _pretrained(name, 60 if quick else 200)
        gamma = float(m.block.field.gamma.detach())
        for tol in (1e-5, 1e-7):
            ref, ref_stats = _grad(m, x, y, None, tol)
            for v in VARIANTS:
                g, st = _grad(m, x, y, v, tol)
                rows.append(dict(model=name, gamma=gamma, tol=tol, variant=v.label,
                                 rel_err=((g - ref).norm() / ref.norm()).item(),
                                 nfe_f=st.nfe_forward, nfe_b=st.nfe_backward, direct_nfe_f=ref_stats.nfe_forward))
    return rows
