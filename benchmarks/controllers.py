"""Step-size controllers: work–precision on classic problems, NFE per training iteration.

``python -m benchmarks.controllers [--quick]``

* Work–precision: Arenstorf orbit (one period), Van der Pol μ = 1 and μ = 10 (t ∈ [0, 20]) and
  Lotka–Volterra (t ∈ [0, 15]), float64, ``rtol = atol = tol`` for tol 1e-3 … 1e-11; error =
  max-abs error at the end against ``scipy``'s DOP853 at rtol 1e-13.  For each controller the
  table gives forward NFE, accepted/rejected steps and the error; then the NFE ratio of each
  controller to ``IController`` *at equal error* (log–log interpolation of NFE against error
  over the error range both reach), per problem.
* Training: forward and backward NFE per iteration (``pyhbnode.record()``), medians over
  iterations, for the point cloud HBNODE/GHBNODE (tol 1e-7, batch 50, Adam 0.01, from
  scratch, the same batches for every controller) and the plane-vibration HBNODE-RNN (tol
  1e-7, batch 64 segments of 64 stamps, Adam 1e-4), each controller training its own copy
  of the same initial model.
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import sys

import numpy as np
import torch
from torch import nn

from pyhbnode import odeint, record, zoo
from pyhbnode.layers import set_solver_options

CONTROLLERS = ("i", "hairer", "pi")
DATA_DIR = os.environ.get("PYHBNODE_DATA", "/work/shared/data")


from .problems import PROBLEMS


def reference(field: nn.Module, y0, T: float) -> np.ndarray:
    from scipy.integrate import solve_ivp

    def fun(t, y):
        return field(torch.tensor(t, dtype=torch.float64), torch.tensor(y)).numpy()

    return solve_ivp(fun, (0.0, T), y0, method="DOP853", rtol=1e-13, atol=1e-13).y[:, -1]


def work_precision(tols) -> list[dict]:
    rows = []
    for name, (field, y0, T) in PROBLEMS.items():
        ref = torch.tensor(reference(field, y0, T))
        y = torch.tensor([y0], dtype=torch.float64)
        t = torch.tensor([0.0, T], dtype=torch.float64)
        for tol in tols:
            for c in CONTROLLERS:
                sol = odeint(field, y, t, rtol=tol, atol=tol, controller=c, max_steps=200_000)
                st = sol.stats
                rows.append(dict(problem=name, tol=tol, controller=c, nfe=st.nfe_forward, accepted=st.accepted,
                                 rejected=st.rejected, error=float((sol.ys[-1, 0] - ref).abs().max())))
    return rows


def nfe_at_equal_error(rows, problem: str, controller: str, base: str = "i") -> float | None:
    """Geometric mean over the shared error range of NFE(controller) / NFE(base) at equal
    error; ``None`` when the ranges do not overlap."""
    def curve(c):
        pts = sorted((math.log10(r["error"]), math.log10(r["nfe"])) for r in rows
                     if r["problem"] == problem and r["controller"] == c and r["error"] > 0)
        return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])

    (ea, na), (eb, nb) = curve(controller), curve(base)
    lo, hi = max(ea.min(), eb.min()), min(ea.max(), eb.max())
    if not lo < hi:
        return None
    grid = np.linspace(lo, hi, 25)
    # NFE falls as the error grows; interpolate on the error axis (sorted increasing)
    return float(10 ** np.mean(np.interp(grid, ea, na) - np.interp(grid, eb, nb)))


def training_nfe(iters: int) -> list[dict]:
    from pyhbnode.data.pointcloud import make_pointcloud

    rows = []
    x, y = make_pointcloud(seed=0)
    x = torch.tensor(x, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.float32).view(-1)
    rng = np.random.default_rng(0)
    batches = [torch.from_numpy(rng.permutation(120)[:50]) for _ in range(iters)]
    for model in ("hbnode", "ghbnode"):
        torch.manual_seed(0)
        base = zoo.build("pointcloud", model, tol=1e-7)
        for c in CONTROLLERS:
            m = copy.deepcopy(base)
            set_solver_options(m, controller=c)
            opt = torch.optim.Adam(m.parameters(), lr=0.01)
            f, b = [], []
            for idx in batches:
                with record() as rec:
                    opt.zero_grad()
                    (m(x[idx]).view(-1) - y[idx]).pow(2).mean().backward()
                opt.step()
                f.append(rec.stats.nfe_forward)
                b.append(rec.stats.nfe_backward)
            rows.append(dict(task="pointcloud", model=model, controller=c, nfe_f=statistics.median(f),
                             nfe_b=statistics.median(b), iters=len(batches)))
    rows += _plane_vibration(max(2, iters // 25))
    return rows


def _plane_vibration(iters: int) -> list[dict]:
    from pyhbnode.data.plane_vibration import load_plane_vibration

    try:
        train = load_plane_vibration(DATA_DIR).train
    except (OSError, ValueError) as err:
        print(f"plane vibration skipped (no data: {err})")
        return []
    X, DT, Y = (torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in (train.x, train.dt, train.y))
    rows = []
    torch.manual_seed(0)
    base = zoo.build("plane_vibration", "hbnode", tol=1e-7)
    rng = np.random.default_rng(0)
    picks = [torch.from_numpy(rng.permutation(X.shape[1])[:64]) for _ in range(iters)]
    for c in CONTROLLERS:
        m = copy.deepcopy(base)
        set_solver_options(m, controller=c)
        opt = torch.optim.Adam(m.parameters(), lr=1e-4)
        f, b = [], []
        for idx in picks:
            with record() as rec:
                opt.zero_grad()
                (m(X[:, idx], DT[:, idx]) - Y[:, idx]).pow(2).mean().backward()
            opt.step()
            f.append(rec.stats.nfe_forward)
            b.append(rec.stats.nfe_backward)
        rows.append(dict(task="plane_vibration", model="hbnode", controller=c, nfe_f=statistics.median(f),
                         nfe_b=statistics.median(b), iters=iters))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    tols = [1e-4, 1e-6, 1e-8, 1e-10] if args.quick else [10.0 ** -k for k in range(3, 12)]
    print(f"controllers benchmark: torch {torch.__version__}, threads=1, float64 work-precision, seed 0")
    rows = work_precision(tols)
    print(f"{'problem':15s} {'tol':>6s} {'ctrl':7s} {'NFE':>7s} {'acc':>6s} {'rej':>5s} {'error':>9s}")
    for r in rows:
        print(f"{r['problem']:15s} {r['tol']:6.0e} {r['controller']:7s} {r['nfe']:7d} {r['accepted']:6d} "
              f"{r['rejected']:5d} {r['error']:9.2e}")
    print("\nNFE at equal error, relative to IController (geometric mean over the shared error range):")
    for p in PROBLEMS:
        cells = []
        for c in CONTROLLERS[1:]:
            v = nfe_at_equal_error(rows, p, c)
            cells.append(f"{c} {v:.3f}" if v is not None else f"{c} -")
        print(f"  {p:15s} " + "   ".join(cells))
    print("\ntraining NFE per iteration (medians):")
    print(f"{'task':16s} {'model':8s} {'ctrl':7s} {'NFE f':>7s} {'NFE b':>7s}")
    for r in training_nfe(30 if args.quick else 150):
        print(f"{r['task']:16s} {r['model']:8s} {r['controller']:7s} {r['nfe_f']:7.1f} {r['nfe_b']:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
