"""Targets 1–3: overhead ratio, point-cloud iteration time, MNIST-size conv model.

Each task trains one copy of the model per variant with interleaved iterations (see
:mod:`benchmarks.common`).  Quick mode first trains the model for a while with the fast
backend (so that NFE is in its trained regime, as over most of a real run) and then times
a few interleaved iterations from that snapshot; full mode trains every variant from
scratch for 300 iterations (point cloud), as the issue's reference measurement did.
"""
from __future__ import annotations

import copy
import os

import numpy as np
import torch
from torch import nn

from pyhbnode import zoo
from pyhbnode.data.pointcloud import make_pointcloud
from pyhbnode.layers import set_solver_options
from pyhbnode.layers.odernn import ElapsedTime

from .common import CANDIDATE, REFERENCE, interleave, ratio_of_medians_paired

DATA_DIR = os.environ.get("PYHBNODE_DATA", "/work/shared/data")


def _pretrain(model, step, make_opt, iters):
    if iters <= 0:
        return model
    m = copy.deepcopy(model)
    set_solver_options(m, **CANDIDATE.options())
    opt = make_opt(m)
    for i in range(iters):
        step(m, opt, -1 - i)
    return m


def pointcloud(models, iters: int, pretrain: int, seed: int = 0, variants=None) -> list[dict]:
    """Point cloud (spec §4): batch 50 of the 120-point set, MSE on ±1 labels, Adam 0.01, tol 1e-7."""
    variants = variants or [REFERENCE, CANDIDATE]
    x, y = make_pointcloud(seed=seed)
    x = torch.tensor(x, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.float32).view(-1)
    rng = np.random.default_rng(seed)
    batches = {}

    def batch(i):
        if i not in batches:
            batches[i] = torch.from_numpy(rng.permutation(120)[:50])
        return batches[i]

    def step(m, opt, i):
        idx = batch(i)
        opt.zero_grad()
        loss = (m(x[idx]).view(-1) - y[idx]).pow(2).mean()
        loss.backward()
        opt.step()
        return loss.item()

    def probe(m, i):
        return m.block.field, m.initial(x[batch(i)]).detach()

    rows = []
    for name in models:
        torch.manual_seed(seed)
        model = zoo.build("pointcloud", name, tol=1e-7)
        make_opt = lambda m: torch.optim.Adam(m.parameters(), lr=0.01)  # noqa: E731
        model = _pretrain(model, step, make_opt, pretrain)
        runs = interleave(model, variants, step, make_opt, probe, iters)
        rows.append(_row("pointcloud", name, runs))
    return rows


def plane_vibration(models, iters: int, pretrain: int, seed: int = 0, variants=None) -> list[dict]:
    """Plane-vibration ODE-RNN (spec §4): batch 64 segments of 64 stamps, Adam 1e-4, tol 1e-7."""
    from pyhbnode.data.plane_vibration import load_plane_vibration

    variants = variants or [REFERENCE, CANDIDATE]
    try:
        train = load_plane_vibration(DATA_DIR).train
        X, DT, Y = (torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in (train.x, train.dt, train.y))
    except Exception:  # no data: random series with 10 % of stamps dropped
        g = torch.Generator().manual_seed(seed)
        X = torch.randn(64, 512, 5, generator=g)
        Y = torch.randn(64, 512, 5, generator=g)
        DT = 1.0 + (torch.rand(64, 512, generator=g) < 0.1).float()
    n = X.shape[1]
    rng = np.random.default_rng(seed)
    batches = {}

    def batch(i):
        if i not in batches:
            batches[i] = torch.from_numpy(rng.permutation(n)[:64])
        return batches[i]

    def step(m, opt, i):
        idx = batch(i)
        opt.zero_grad()
        loss = (m(X[:, idx], DT[:, idx]) - Y[:, idx]).pow(2).mean()
        loss.backward()
        opt.step()
        return loss.item()

    def probe(m, i):
        rnn = m.rnn
        return ElapsedTime(rnn.field, DT[-1, batch(i)]), rnn.last_state.detach()

    rows = []
    for name in models:
        torch.manual_seed(seed)
        model = zoo.build("plane_vibration", name, tol=1e-7)
        make_opt = lambda m: torch.optim.Adam(m.parameters(), lr=1e-4)  # noqa: E731
        model = _pretrain(model, step, make_opt, pretrain)
        runs = interleave(model, variants, step, make_opt, probe, iters)
        rows.append(_row("plane_vibration", name, runs))
    return rows


def mnist(iters: int, seed: int = 0, model_name: str = "hbnode", variants=None) -> list[dict]:
    """``zoo.build("mnist", "hbnode")``, batch 64 of real MNIST (random images without the
    data), cross-entropy, Adam 1e-3, tol 1e-5."""
    variants = variants or [REFERENCE, CANDIDATE]
    try:
        from pyhbnode.data.mnist import load_mnist

        images, labels = load_mnist(DATA_DIR, "train")
        X = torch.from_numpy(images[:64 * (iters + 2)].astype(np.float32) / 255.0).unsqueeze(1)
        X = (X - 0.1307) / 0.3081
        L = torch.from_numpy(labels[:64 * (iters + 2)])
    except Exception:
        g = torch.Generator().manual_seed(seed)
        X = torch.randn(64 * (iters + 2), 1, 28, 28, generator=g)
        L = torch.randint(0, 10, (64 * (iters + 2),), generator=g)

    def sl(i):
        j = i % (iters + 2)
        return slice(64 * j, 64 * (j + 1))

    def step(m, opt, i):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(m(X[sl(i)]), L[sl(i)])
        loss.backward()
        opt.step()
        return loss.item()

    def probe(m, i):
        return m.block.field, m.initial(X[sl(i)]).detach()

    torch.manual_seed(seed)
    model = zoo.build("mnist", model_name, tol=1e-5)
    make_opt = lambda m: torch.optim.Adam(m.parameters(), lr=1e-3)  # noqa: E731
    runs = interleave(model, variants, step, make_opt, probe, iters)
    return [_row("mnist", model_name, runs)]


def _row(task: str, model: str, runs) -> dict:
    ref, cand = runs[0], runs[-1]
    row = dict(task=task, model=model, variants={r.variant.label: r.summary() for r in runs},
               time_ratio=ratio_of_medians_paired(ref, cand))
    return row
