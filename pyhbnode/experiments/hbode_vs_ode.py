"""Fig. 2: gradient-flow ODE versus heavy-ball ODE on two test objectives (App. E.6).

Both are pyhbnode fields around the fixed network ``f(x) = -∇F(x)``:

* ODE (gradient flow): ``NODE(f)``, ``dx/dt = -∇F(x)``;
* HBODE: ``HBNODE(f, gamma=γ)``, ``dx/dt = m``, ``dm/dt = -γ m - ∇F(x)``, ``m(0) = dx/dt(0) = 0``.

Rosenbrock ``F = (1 - x)^2 + 100 (y - x^2)^2`` (minimiser (1, 1)) from (0, 0) on t ∈ [0, 1],
output step 0.001, γ = 0.9; Beale ``F = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 +
(2.625 - x + xy^3)^2`` (minimiser (3, 0.5)) from (0, 0) on t ∈ [0, 2], step 0.01, γ = 0.7.
Solved in float64 with the package's dopri5 at the setting ``tol``.

Files: ``trajectories.json`` (paths, times, NFE), ``results.csv`` (one row per objective and
ODE), ``trajectories.png`` (paths over the contours), ``distance.png`` (distance to the
minimiser vs t, one panel per objective).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..fields import HBNODE, NODE
from ..solving import odeint
from .common import HELD, NOT_HELD, PARTLY, Assessment, RunContext, combine_verdicts, existing, read_json, write_json
from .plots import plot_trajectories
from .records import read_csv, write_csv

__all__ = ["OBJECTIVES", "Objective", "NegativeGradient", "solve_pair", "run", "redraw", "assess"]


class Objective(abc.ABC):
    """A 2-D test function with its analytic gradient and minimiser."""

    name = ""
    minimiser: tuple[float, float] = (0.0, 0.0)

    @abc.abstractmethod
    def value(self, x, y): ...

    @abc.abstractmethod
    def gradient(self, x, y): ...


class Rosenbrock(Objective):
    name = "rosenbrock"
    minimiser = (1.0, 1.0)

    def value(self, x, y):
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2

    def gradient(self, x, y):
        return -2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)


class Beale(Objective):
    name = "beale"
    minimiser = (3.0, 0.5)

    def value(self, x, y):
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2

    def gradient(self, x, y):
        a, b, c = 1.5 - x + x * y, 2.25 - x + x * y**2, 2.625 - x + x * y**3
        gx = 2 * a * (y - 1) + 2 * b * (y**2 - 1) + 2 * c * (y**3 - 1)
        gy = 2 * a * x + 4 * b * x * y + 6 * c * x * y**2
        return gx, gy


OBJECTIVES: dict[str, Objective] = {"rosenbrock": Rosenbrock(), "beale": Beale()}


class NegativeGradient(nn.Module):
    """``f(x) = -∇F(x)`` for a batch of points ``(batch, 2)``: the fixed "network" of both fields."""

    def __init__(self, objective: Objective) -> None:
        super().__init__()
        self.objective = objective

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        gx, gy = self.objective.gradient(z[..., 0], z[..., 1])
        return -torch.stack([gx, gy], dim=-1)


def solve_pair(
    objective: Objective, *, x0=(0.0, 0.0), t1: float, step: float, gamma: float, solver: Mapping[str, Any]
) -> dict:
    """Both trajectories on ``t = 0, step, ..., t1``: ``{"t", "ode", "hbode", "nfe"}`` (lists);
    ``solver``: ``odeint``'s options by name."""
    n = int(round(t1 / step)) + 1
    t = torch.linspace(0.0, t1, n, dtype=torch.float64)
    f = NegativeGradient(objective)
    start = torch.tensor([x0], dtype=torch.float64)
    out: dict = {"t": t.tolist(), "nfe": {}, "minimiser": list(objective.minimiser), "gamma": gamma}
    with torch.no_grad():
        for key, field, y0 in (
            ("ode", NODE(f), start),
            ("hbode", HBNODE(f, gamma=gamma), torch.stack([start, torch.zeros_like(start)], dim=1)),
        ):
            sol = odeint(field, y0, t, **solver)
            path = sol.ys[:, 0] if sol.ys.dim() == 3 else sol.ys[:, 0, 0]
            out[key] = np.round(path.numpy(), 7).tolist()
            out["nfe"][key] = sol.stats.nfe_forward
    return out


def _distances(solved: dict, key: str) -> np.ndarray:
    return np.linalg.norm(np.asarray(solved[key]) - np.asarray(solved["minimiser"]), axis=1)


LABELS = {"ode": "gradient-flow ODE", "hbode": "heavy-ball ODE"}


def run(ctx: RunContext) -> None:
    started = time.time()
    out = ctx.out_dir()
    solved, rows = {}, []
    for spec in ctx["functions"]:
        name = spec["name"]
        if name not in OBJECTIVES:
            raise ValueError(f"unknown objective {name!r}; choose from {sorted(OBJECTIVES)}")
        s = solve_pair(
            OBJECTIVES[name],
            x0=tuple(spec.get("x0", (0.0, 0.0))),
            t1=spec["t1"],
            step=spec["step"],
            gamma=spec["gamma"],
            solver=ctx.solver_keywords(tol=ctx["tol"], max_steps=200_000),
        )
        solved[name] = s
        t = np.asarray(s["t"])
        for key in ("ode", "hbode"):
            d = _distances(s, key)
            rows.append(
                {
                    "function": name,
                    "ode": key,
                    "gamma": spec["gamma"] if key == "hbode" else 0.0,
                    "t1": spec["t1"],
                    "nfe": s["nfe"][key],
                    "final_distance": round(float(d[-1]), 5),
                    "min_distance": round(float(d.min()), 5),
                    "mean_distance": round(float(np.sum((d[1:] + d[:-1]) * np.diff(t)) / (2 * t[-1])), 5),
                    "final_x": round(float(s[key][-1][0]), 5),
                    "final_y": round(float(s[key][-1][1]), 5),
                }
            )
    write_json(out / "trajectories.json", solved)
    write_csv(rows, out / "results.csv")
    redraw(out)
    ctx.write_config(started)


def redraw(run_dir: str | Path) -> list[Path]:
    run = Path(run_dir)
    solved = read_json(run / "trajectories.json")
    panels, contours = [], []
    for name, s in solved.items():
        flows = {LABELS[k]: np.asarray(s[k]) for k in ("ode", "hbode")}
        panels.append((f"{name} (γ = {s['gamma']:g})", flows))
        pts = np.concatenate(list(flows.values()) + [np.asarray([s["minimiser"]])])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = 0.15 * (hi - lo) + 0.1
        X, Y = np.meshgrid(
            np.linspace(lo[0] - pad[0], hi[0] + pad[0], 160), np.linspace(lo[1] - pad[1], hi[1] + pad[1], 160)
        )
        contours.append((X, Y, np.log1p(OBJECTIVES[name].value(X, Y))))
    paths = [
        plot_trajectories(
            panels,
            run / "trajectories.png",
            contours=contours,
            title="Fig. 2: gradient-flow ODE vs heavy-ball ODE (contours: log(1 + F))",
        )
    ]
    paths.append(_plot_distance(solved, run / "distance.png"))
    return paths


def _plot_distance(solved: dict, path: Path) -> Path:
    from .plots import plt, save_figure

    fig, axes = plt.subplots(1, len(solved), figsize=(5.2 * len(solved), 3.8), squeeze=False)
    for ax, (name, s) in zip(axes[0], solved.items(), strict=True):
        t = np.asarray(s["t"])
        for key, color in (("ode", "tab:blue"), ("hbode", "tab:red")):
            ax.plot(t, _distances(s, key), color=color, lw=1.8, label=f"{LABELS[key]} (NFE {s['nfe'][key]})")
        ax.set_yscale("log")
        ax.set_xlabel("t")
        ax.set_ylabel("distance to the minimiser")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    return save_figure(fig, path)


def assess(run_dir: str | Path) -> Assessment:
    """Claim (Fig. 2): the heavy-ball ODE approaches the minimiser faster than gradient flow.

    Checked per objective on the time-averaged distance to the minimiser over [0, T] (how
    fast the path gets close) and on the distance at T; the solver NFE is reported too."""
    run = Path(run_dir)
    rows = read_csv(run / "results.csv")
    verdicts, reasons, ratios = [], [], {}
    for name in dict.fromkeys(r["function"] for r in rows):
        by = {r["ode"]: r for r in rows if r["function"] == name}
        if not {"ode", "hbode"} <= set(by):
            continue
        ode, hb = by["ode"], by["hbode"]
        faster = hb["mean_distance"] < ode["mean_distance"]
        closer = hb["final_distance"] < ode["final_distance"]
        verdicts.append(HELD if faster and closer else NOT_HELD if not (faster or closer) else PARTLY)
        ratios[f"{name}: HBODE/ODE NFE"] = round(hb["nfe"] / ode["nfe"], 3) if ode["nfe"] else None
        reasons.append(
            f"{name}: time-averaged distance HBODE {hb['mean_distance']:.4g} vs ODE {ode['mean_distance']:.4g} "
            f"({'faster' if faster else 'slower'}); at T {hb['final_distance']:.4g} vs {ode['final_distance']:.4g} "
            f"({'closer' if closer else 'farther'}); NFE {hb['nfe']} vs {ode['nfe']}"
        )
    columns = [
        ("function", "function"),
        ("ode", "ODE"),
        ("gamma", "γ"),
        ("nfe", "NFE"),
        ("final_distance", "distance at T"),
        ("min_distance", "min distance"),
        ("mean_distance", "mean distance"),
    ]
    return Assessment(
        columns=columns,
        rows=rows,
        ratios=ratios,
        verdict=combine_verdicts(*verdicts),
        reasons=reasons,
        figures=existing(run, ["trajectories.png", "distance.png"]),
    )
