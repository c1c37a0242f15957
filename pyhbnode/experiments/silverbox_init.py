"""Fig. 3: how fast ‖h(t)‖ grows at initialisation on the Silverbox input (the HBNODE paper).

For every model and ``seeds`` random initialisations, the zoo's Silverbox model (one dense
layer ``f`` with the extra input ``V1(t)^3``; GHBNODE with hardtanh[-5, 5] and ξ = ln 2) is
driven by the first ``stamps`` samples of the training series, starting from ``V2(0)``, and
‖h(t)‖ is recorded at every stamp.  No training.  The reference plots the mean over 10
initialisations on 64 stamps at tolerance 1e-7, next to the exact |V2(t)|.

The momentum family runs too: (G)NesterovNODE on the clock its authors use (the zoo's model
starts its solve at t = 1; ``h`` is the read-out ``k(t)·a``), AdamNODE with its three-part state
``(h, m, v)``.

Files: ``norms.json`` (per model: ‖h(t)‖ and the whole state's norm per seed, NFE, status),
``results.csv`` (one row per model), ``growth.png``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from .. import zoo
from ..solving import SolverError, record
from .common import (
    HELD,
    MODEL_NAMES,
    NOT_ASSESSED,
    NOT_HELD,
    Assessment,
    RunContext,
    existing,
    fmt,
    read_json,
    write_json,
)
from .family import gnesterov_bounded
from .records import read_csv, write_csv

__all__ = ["BOUND_FACTOR", "trajectory_norms", "run", "redraw", "assess"]

# ‖h(t)‖ counts as bounded while it stays within this factor of max |V2| over the window.
BOUND_FACTOR = 10.0


def trajectory_norms(model: zoo.DrivenModel, v1: torch.Tensor, v2_0: torch.Tensor, ts: torch.Tensor):
    """``(‖h(t)‖, ‖state(t)‖)`` as float arrays ``(S,)`` for a single series (batch 1), from
    one solve (so a ``record()`` around it counts the NFE of one trajectory)."""
    with torch.no_grad():
        ys = model.trajectory(v1, v2_0, ts)  # (S, 1, [parts,] n)
        h = model.hidden(ys)  # (S, 1, n)
    return h.flatten(1).norm(dim=1).numpy(), ys.flatten(1).norm(dim=1).numpy()


def run(ctx: RunContext) -> None:
    from ..data import load_silverbox

    started = time.time()
    out = ctx.out_dir()
    stamps, seeds = int(ctx["stamps"]), int(ctx["seeds"])
    series = load_silverbox(ctx.data_dir, n_train=stamps, n_test=0).train
    v1 = torch.from_numpy(series.v1[:stamps])[None]
    v2_0 = torch.from_numpy(series.v2[:1])[None]
    ts = torch.from_numpy(series.t[:stamps])
    saved = {"t": series.t[:stamps].tolist(), "v2": series.v2[:stamps].tolist(), "models": {}}
    for name in ctx.models:
        rec: dict[str, list] = {"h_norm": [], "state_norm": [], "nfe": [], "status": []}
        for s in range(seeds):
            torch.manual_seed(ctx.seed * 1000 + s)
            model = zoo.build("silverbox", name, **ctx.solver_keywords(tol=ctx["tol"], max_steps=20_000))
            assert isinstance(model, zoo.DrivenModel)  # every silverbox model of the zoo
            with record() as solves:
                try:
                    h, state = trajectory_norms(model, v1, v2_0, ts)
                    status = "ok"
                except SolverError as err:  # a blow-up the solver could not follow: record, keep going
                    h = state = np.full(stamps, np.nan)
                    status = f"failed: {type(err).__name__}"
            rec["h_norm"].append(np.asarray(h, dtype=float).tolist())
            rec["state_norm"].append(np.asarray(state, dtype=float).tolist())
            rec["nfe"].append(solves.stats.nfe_forward)
            rec["status"].append(status)
        saved["models"][name] = rec
    write_json(out / "norms.json", saved)
    write_csv(_rows(saved), out / "results.csv")
    redraw(out)
    ctx.write_config(started)


def _rows(saved: dict) -> list[dict]:
    scale = float(np.max(np.abs(saved["v2"])))
    bound = BOUND_FACTOR * scale
    rows = []
    for name, rec in saved["models"].items():
        h = np.asarray(rec["h_norm"], dtype=float)  # (seeds, S)
        final = h[:, -1]
        mean_final = float(np.nanmean(final)) if np.isfinite(final).any() else float("nan")
        peak = np.nanmax(h, axis=1) if h.size else np.array([])
        failed = int(np.sum([s != "ok" for s in rec["status"]]))
        unbounded = int(np.sum(~(peak <= bound))) if peak.size else 0  # NaN (failed) counts as unbounded
        rows.append(
            {
                "model": name,
                "seeds": len(rec["status"]),
                "stamps": h.shape[1] if h.ndim == 2 else 0,
                "mean_final_norm": _g(np.nanmean(final)),
                "median_final_norm": _g(np.nanmedian(final)),
                "max_norm": _g(np.nanmax(peak)) if np.isfinite(peak).any() else None,
                "log10_mean_final_norm": _g(math.log10(mean_final)) if mean_final > 0 else None,
                "seeds_unbounded": unbounded,
                "seeds_failed": failed,
                "bound": _g(bound),
                "mean_nfe": _g(float(np.mean(rec["nfe"]))),
            }
        )
    return rows


def _g(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else float(f"{x:.5g}")


def redraw(run_dir: str | Path) -> list[Path]:
    from .plots import MODEL_STYLE, linestyle, plt, save_figure

    run = Path(run_dir)
    saved = read_json(run / "norms.json")
    t = np.asarray(saved["t"])
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    for name, rec in saved["models"].items():
        label, color = MODEL_STYLE.get(name, (name, None))
        h = np.asarray(rec["h_norm"], dtype=float)
        with np.errstate(all="ignore"):
            mean = np.nanmean(h, axis=0)
            lo, hi = np.nanmin(h, axis=0), np.nanmax(h, axis=0)
        ax.plot(t, mean, color=color, ls=linestyle(name), lw=1.8, label=f"{label} (mean of {len(h)})")
        ax.fill_between(t, lo, hi, color=color, alpha=0.15, lw=0)
    ax.plot(t, np.abs(saved["v2"]), color="k", lw=1.4, label="exact |V2(t)|")
    ax.axhline(
        BOUND_FACTOR * np.max(np.abs(saved["v2"])), color="k", ls=":", lw=1, label=f"{BOUND_FACTOR:g} × max |V2|"
    )
    ax.set_yscale("log")
    ax.set_xlabel("t (samples)")
    ax.set_ylabel("‖h(t)‖")
    ax.set_title("Fig. 3: ‖h(t)‖ at initialisation, Silverbox (band: min–max over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    return [save_figure(fig, run / "growth.png")]


def assess(run_dir: str | Path) -> Assessment:
    """Claim: GHBNODE keeps ‖h(t)‖ bounded at initialisation while the others can blow up.

    Bounded = ‖h(t)‖ ≤ ``BOUND_FACTOR`` × max |V2| at every stamp, on every seed."""
    run = Path(run_dir)
    rows = read_csv(run / "results.csv")
    by = {r["model"]: r for r in rows}
    columns = [
        ("model", "model"),
        ("seeds", "seeds"),
        ("mean_nfe", "mean NFE"),
        ("mean_final_norm", "mean ‖h(T)‖"),
        ("median_final_norm", "median ‖h(T)‖"),
        ("max_norm", "max ‖h(t)‖"),
        ("seeds_unbounded", "seeds unbounded"),
        ("seeds_failed", "solver failures"),
    ]
    claims = gnesterov_bounded(rows, BOUND_FACTOR)
    if "ghbnode" not in by:
        return Assessment(
            columns,
            rows,
            verdict=NOT_ASSESSED,
            reasons=["GHBNODE was not run"],
            figures=existing(run, ["growth.png"]),
            claims=claims,
        )
    g = by["ghbnode"]
    bounded = g["seeds_unbounded"] == 0
    reasons = [
        f"GHBNODE: {g['seeds_unbounded']} of {g['seeds']} seeds exceed {g['bound']:.3g} "
        f"(= {BOUND_FACTOR:g} × max |V2|); max ‖h(t)‖ {fmt(g['max_norm'])}"
    ]
    for name, r in by.items():
        if name != "ghbnode":
            reasons.append(
                f"{MODEL_NAMES.get(name, name)}: {r['seeds_unbounded']} of {r['seeds']} seeds unbounded, "
                f"mean ‖h(T)‖ {fmt(r['mean_final_norm'])}"
            )
    ratios = {
        f"{MODEL_NAMES.get(n, n)}/GHBNODE mean ‖h(T)‖": (
            round(r["mean_final_norm"] / g["mean_final_norm"], 3)
            if isinstance(r["mean_final_norm"], (int, float)) and g["mean_final_norm"]
            else None
        )
        for n, r in by.items()
        if n != "ghbnode"
    }
    return Assessment(
        columns,
        rows,
        ratios=ratios,
        verdict=HELD if bounded else NOT_HELD,
        reasons=reasons,
        figures=existing(run, ["growth.png"]),
        claims=claims,
    )
