"""Fig. 5 over several seeds: the built-in point-cloud comparison
(:mod:`pyhbnode.experiments.pointcloud`) run once per seed into ``seed-<k>/``, then summarised
as mean ± std across seeds.  With the setting ``seeds`` none (``pyhbnode compare pointcloud``,
an alias of this experiment), one seed is run into the run directory itself.

Files: ``seed-<k>/`` (each a complete point-cloud run: ``results.csv``, ``history.jsonl``,
``nfe.png``, ``loss.png``, ``separation.png``, checkpoints), ``results.csv`` (one row per
model: means and standard deviations over seeds), ``nfe_forward.png``, ``nfe_backward.png``,
``loss.png`` (mean ± std bands), ``config.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from . import pointcloud
from .common import (
    HB_MODELS,
    HELD,
    MODEL_NAMES,
    NOT_ASSESSED,
    NOT_HELD,
    PARTLY,
    Assessment,
    RunContext,
    complete_row,
    existing,
    training_assessment,
)
from .family import adam_loss, nesterov_separation
from .plots import plot_curves
from .records import read_csv, read_jsonl, write_csv

__all__ = ["ZERO_LOSS", "run", "redraw", "assess"]

# A final training loss below this counts as "driven to zero" (MSE on ±1 labels).
ZERO_LOSS = 1e-2

_MEAN_KEYS = (
    "parameters",
    "iterations",
    "nfe_forward_mean",
    "nfe_backward_mean",
    "seconds_per_iter",
    "seconds_per_epoch",
    "final_loss",
    "final_train_sign_accuracy",
)


def _seed_dirs(run: Path) -> list[Path]:
    return sorted(
        (p for p in run.glob("seed-*") if (p / "results.csv").exists()), key=lambda p: int(p.name.split("-")[1])
    )


def _single(run: Path) -> bool:
    """A one-seed run written into the run directory itself (``seeds`` none)."""
    return not _seed_dirs(run) and (run / "history.jsonl").exists()


def run(ctx: RunContext) -> None:
    started = time.time()
    out = ctx.out_dir()
    settings: dict[str, Any] = dict(
        iters=int(ctx["iters"]), tol=float(ctx["tol"]), solver=ctx.solver, progress=ctx.progress, preset=ctx.preset
    )
    if ctx["seeds"] is None:
        rows = pointcloud.run(list(ctx.models), out, seed=ctx.seed, extra_config=ctx.identity(), **settings)
        write_csv([_with_seed_counts(r) for r in rows], out / "results.csv")
        return
    for k in range(int(ctx["seeds"])):
        pointcloud.run(list(ctx.models), out / f"seed-{k}", seed=ctx.seed + k, **settings)
    write_csv(_aggregate(out), out / "results.csv")
    redraw(out)
    ctx.write_config(started, seeds=[ctx.seed + k for k in range(int(ctx["seeds"]))])


def _with_seed_counts(row: dict) -> dict:
    """A one-seed row with the columns the verdict reads from an aggregate."""
    loss = row.get("final_loss")
    return {**row, "seeds": 1, "seeds_zero_loss": int(isinstance(loss, (int, float)) and loss < ZERO_LOSS)}


def _aggregate(run: Path) -> list[dict]:
    per_seed = [read_csv(d / "results.csv") for d in _seed_dirs(run)]
    models = list(dict.fromkeys(r["model"] for rows in per_seed for r in rows))
    out = []
    for m in models:
        rows = [complete_row(r) for rows in per_seed for r in rows if r["model"] == m]
        row: dict = {"model": m, "seeds": len(rows)}
        for key in _MEAN_KEYS:
            vals = [float(r[key]) for r in rows if isinstance(r.get(key), (int, float))]
            if vals:
                row[key] = round(float(np.mean(vals)), 5)
                if key not in ("parameters", "iterations"):
                    row[key + "_std"] = round(float(np.std(vals)), 5)
        row["seeds_zero_loss"] = sum(
            1 for r in rows if isinstance(r.get("final_loss"), (int, float)) and r["final_loss"] < ZERO_LOSS
        )
        out.append(row)
    return out


def redraw(run_dir: str | Path) -> list[Path]:
    from .runner import redraw_training

    run = Path(run_dir)
    paths = []
    for d in _seed_dirs(run) or ([run] if _single(run) else []):
        paths += redraw_training(d)
        sep = pointcloud.redraw_separation(d)
        if sep:
            paths.append(sep)
    histories = {d: read_jsonl(d / "history.jsonl") for d in _seed_dirs(run)}
    if not histories:  # the one-seed layout: its own figures are the run's
        return paths
    models = list(dict.fromkeys(line["model"] for lines in histories.values() for line in lines))
    for key, name, label, logy in (
        ("nfe_forward", "nfe_forward.png", "forward NFE per iteration", False),
        ("nfe_backward", "nfe_backward.png", "backward NFE per iteration", False),
        ("loss", "loss.png", "training loss", True),
    ):
        series, band = {}, {}
        for m in models:
            curves = [[line[key] for line in lines if line["model"] == m] for lines in histories.values()]
            curves = [c for c in curves if c]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            arr = np.asarray([c[:n] for c in curves], dtype=float)
            series[m] = (list(range(n)), arr.mean(axis=0))
            band[m] = arr.std(axis=0)
        window = max(1, max((len(x) for x, _ in series.values()), default=1) // 30)
        # a ± std band is meaningless on a log axis (mean - std < 0): the loss shows the mean only
        what = "mean" if logy else "mean ± std"
        paths.append(
            plot_curves(
                series,
                run / name,
                xlabel="iteration",
                ylabel=label,
                logy=logy,
                band=None if logy else band,
                window=window,
                title=f"point cloud: {what} over {len(histories)} seed(s)",
            )
        )
    return paths


def _separation_check(rows: list[dict]) -> tuple[str, list[str]]:
    by = {r["model"]: r for r in rows}
    if "node" not in by or not any(m in by for m in HB_MODELS):
        return NOT_ASSESSED, ["the separation claim needs NODE and a (G)HBNODE"]
    node = by["node"]
    reasons = [
        f"NODE reached loss < {ZERO_LOSS:g} on {node['seeds_zero_loss']} of {node['seeds']} seeds "
        f"(final loss {node.get('final_loss')})"
    ]
    hb_ok = []
    for m in HB_MODELS:
        if m in by:
            r = by[m]
            hb_ok.append(r["seeds_zero_loss"] == r["seeds"])
            reasons.append(
                f"{MODEL_NAMES[m]} reached loss < {ZERO_LOSS:g} on {r['seeds_zero_loss']} of "
                f"{r['seeds']} seeds (final loss {r.get('final_loss')})"
            )
    node_fails = node["seeds_zero_loss"] == 0
    score = [node_fails] + hb_ok
    return (HELD if all(score) else NOT_HELD if not any(score) else PARTLY), reasons


def assess(run_dir: str | Path) -> Assessment:
    run = Path(run_dir)
    a = training_assessment(
        run,
        metric="final_loss",
        metric_label="final training loss",
        higher_is_better=False,
        abs_tol=ZERO_LOSS,
        rel_tol=0.1,
        figures=("nfe_forward.png", "nfe_backward.png", "loss.png"),
        extra_checks=_separation_check,
    )
    a.columns = [c for c in a.columns if c[0] != "seconds_per_epoch"] + [
        ("seconds_per_iter", "s/iter"),
        ("final_train_sign_accuracy", "train accuracy"),
        ("seeds", "seeds"),
        ("seeds_zero_loss", f"seeds loss<{ZERO_LOSS:g}"),
    ]
    a.claims = nesterov_separation(a.rows, ZERO_LOSS) + adam_loss(a.rows)
    if _single(run):
        a.figures = existing(run, ["nfe.png", "loss.png", "separation.png"])
    elif _seed_dirs(run):
        a.figures += existing(_seed_dirs(run)[0], ["separation.png"])
    return a
