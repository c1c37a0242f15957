"""Fig. 7: forward and backward NFE across solver tolerances (CIFAR-10 by default, MNIST with
``--set dataset=mnist``).

Two modes:

* from initialisation (``iters``): for every tolerance in ``tols`` each model trains ``iters``
  iterations from the same initialisation (one run of
  :func:`~pyhbnode.experiments.runner.run_comparison` per tolerance, in ``tol-<tol>/``); the
  mean NFEs per iteration are then gathered;
* on trained fields (``train_iters``, the ``--standard`` scale): each model trains once,
  ``train_iters`` iterations at ``train_tol`` (in ``trained/``); then, with its weights fixed,
  one forward and backward pass on each of the first ``measure_batches`` training batches at
  every tolerance gives the NFEs of the trained field (``measured.json``).

Files: ``tol-<tol>/`` or ``trained/`` + ``measured.json``, ``results.csv`` (one row per
tolerance and model), ``nfe_vs_tol.png``, ``config.json``.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .common import (
    BASELINES,
    HB_MODELS,
    HELD,
    MODEL_NAMES,
    NOT_ASSESSED,
    NOT_HELD,
    PARTLY,
    Assessment,
    RunContext,
    combine_verdicts,
    existing,
    image_comparison,
    load_config,
    nfe_verdict,
    train_comparison,
    write_json,
)
from .records import read_csv, write_csv

__all__ = ["run", "redraw", "assess", "measure_nfe", "PROPORTION_CV"]

# Backward/forward NFE counts as "growing in proportion" when its coefficient of variation
# across tolerances stays below this.
PROPORTION_CV = 0.25


def _tol_dir(tol: float) -> str:
    return f"tol-{tol:.0e}"


def run(ctx: RunContext) -> None:
    started = time.time()
    out = ctx.out_dir()
    dataset = ctx["dataset"]
    if dataset not in ("cifar10", "mnist"):
        raise ValueError(f"nfe-vs-tol runs on 'cifar10' or 'mnist', got dataset={dataset!r}")
    if ctx.get("train_iters"):
        _run_trained(ctx, out, dataset)
        ctx.write_config(started, dataset=dataset, mode="trained fields")
        redraw(out)
        return
    iters, batch = int(ctx["iters"]), int(ctx["batch_size"])
    for tol in ctx["tols"]:
        spec = image_comparison(ctx, dataset, tol=float(tol), max_batches=iters, epochs=1)
        per_epoch = max(1, math.ceil(len(spec.train) / batch))
        spec = replace(spec, val=None, metrics=(), epochs=math.ceil(iters / per_epoch))
        train_comparison(ctx, spec, out=out / _tol_dir(float(tol)), extra={"tol": float(tol)})
    write_csv(_aggregate(out, [float(t) for t in ctx["tols"]]), out / "results.csv")
    ctx.write_config(started, dataset=dataset)
    redraw(out)


def _run_trained(ctx: RunContext, out: Path, dataset: str) -> None:
    import torch

    iters, batch, n_batches = int(ctx["train_iters"]), int(ctx["batch_size"]), int(ctx.get("measure_batches", 2))
    spec = image_comparison(ctx, dataset, tol=float(ctx["train_tol"]), max_batches=iters, epochs=1)
    spec = replace(spec, val=None, metrics=())
    xs, ys = zip(*(spec.train[i] for i in range(n_batches * batch)), strict=True)
    batches = [(torch.stack(xs[i : i + batch]), torch.as_tensor(ys[i : i + batch])) for i in range(0, len(xs), batch)]
    rows: list[dict] = []

    def measure(name: str, model, run_dir: Path) -> None:
        for tol, fwd, bwd in measure_nfe(model, batches, [float(t) for t in ctx["tols"]]):
            rows.append(
                {
                    "tol": tol,
                    "model": name,
                    "nfe_forward_mean": fwd,
                    "nfe_backward_mean": bwd,
                    "backward_per_forward": round(bwd / fwd, 3),
                    "iterations": iters,
                    "measured_batches": len(batches),
                }
            )
        write_json(out / "measured.json", rows)

    train_comparison(ctx, spec, out=out / "trained", after_model=measure, extra={"train_tol": float(ctx["train_tol"])})
    write_csv(rows, out / "results.csv")


def measure_nfe(model, batches, tols: list[float]) -> list[tuple[float, float, float]]:
    """``(tol, mean forward NFE, mean backward NFE)`` per tolerance of one cross-entropy forward
    and backward pass on each ``(x, y)`` of ``batches``, with the weights as they are (eval
    mode, no optimiser step).  Each pass is measured on its own (``record()``), so what the
    model solved before does not count."""
    import torch.nn.functional as F

    from ..layers import set_solver_options
    from ..solving import record

    model.eval()
    out = []
    for tol in tols:
        set_solver_options(model, tol=tol)
        fwd, bwd = [], []
        for x, y in batches:
            model.zero_grad()
            with record() as rec:
                loss = F.cross_entropy(model(x), y)
                fwd.append(rec.stats.nfe_forward)
                loss.backward()
            bwd.append(rec.stats.nfe_backward)
        out.append((tol, float(np.mean(fwd)), float(np.mean(bwd))))
    return out


def _aggregate(run: Path, tols: list[float]) -> list[dict]:
    rows = []
    for tol in tols:
        path = run / _tol_dir(tol) / "results.csv"
        if not path.exists():
            continue
        for r in read_csv(path):
            fwd, bwd = r.get("nfe_forward_mean"), r.get("nfe_backward_mean")
            rows.append(
                {
                    "tol": tol,
                    "model": r["model"],
                    "nfe_forward_mean": fwd,
                    "nfe_backward_mean": bwd,
                    "backward_per_forward": round(bwd / fwd, 3) if fwd else None,
                    "seconds_per_iter": r.get("seconds_per_iter"),
                    "final_loss": r.get("final_loss"),
                    "iterations": r.get("iterations"),
                }
            )
    return rows


def redraw(run_dir: str | Path) -> list[Path]:
    from .plots import MODEL_STYLE, linestyle, plt, save_figure

    run = Path(run_dir)
    rows = read_csv(run / "results.csv")
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for m in models:
        label, color = MODEL_STYLE.get(m, (m, None))
        rs = sorted((r for r in rows if r["model"] == m), key=lambda r: -r["tol"])
        tols = [r["tol"] for r in rs]
        fwd = [r["nfe_forward_mean"] for r in rs]
        bwd = [r["nfe_backward_mean"] for r in rs]
        axes[0].plot(tols, fwd, marker="o", ls=linestyle(m), color=color, label=label)
        axes[1].plot(tols, bwd, marker="o", ls=linestyle(m), color=color, label=label)
        axes[2].plot(fwd, bwd, marker="o", ls=linestyle(m), color=color, label=label)
    for ax, ylabel in zip(axes[:2], ("forward NFE per iteration", "backward NFE per iteration"), strict=True):
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("tolerance (rtol = atol)")
        ax.set_ylabel(ylabel)
    axes[2].set_xlabel("forward NFE")
    axes[2].set_ylabel("backward NFE")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False)
    dataset = load_config(run).get("dataset", "")
    fig.suptitle(f"Fig. 7: NFE vs tolerance {dataset}".strip())
    return [save_figure(fig, run / "nfe_vs_tol.png")]


def assess(run_dir: str | Path) -> Assessment:
    """Checks: (1) fewer NFEs than every baseline at every tolerance; (2) the (G)HBNODE/NODE
    forward-NFE ratio shrinks from the loosest to the tightest tolerance (the gap widens);
    (3) (G)HBNODE's backward/forward NFE ratio is roughly constant (CV < ``PROPORTION_CV``)."""
    run = Path(run_dir)
    rows = read_csv(run / "results.csv")
    tols = sorted({r["tol"] for r in rows}, reverse=True)
    per_tol, reasons, ratios = [], [], {}
    for tol in tols:
        v, _, rts = nfe_verdict([r for r in rows if r["tol"] == tol])
        per_tol.append(v)
        reasons.append(f"tol {tol:g}: NFE claim {v}")
        for k, x in rts.items():
            ratios[f"{k} @ tol {tol:g}"] = x
    nfe_all = (
        NOT_ASSESSED
        if not per_tol
        else (HELD if all(v == HELD for v in per_tol) else NOT_HELD if all(v == NOT_HELD for v in per_tol) else PARTLY)
    )
    widening = NOT_ASSESSED
    if len(tols) >= 2:
        wins, checks = 0, 0
        for hb in HB_MODELS:
            loose, tight = (
                ratios.get(f"{MODEL_NAMES[hb]}/NODE forward NFE @ tol {tols[0]:g}"),
                ratios.get(f"{MODEL_NAMES[hb]}/NODE forward NFE @ tol {tols[-1]:g}"),
            )
            if loose is None or tight is None:
                continue
            checks += 1
            wins += tight < loose
            reasons.append(
                f"{MODEL_NAMES[hb]}/NODE forward NFE {loose:.3g} at tol {tols[0]:g} -> {tight:.3g} at "
                f"tol {tols[-1]:g}: gap {'widens' if tight < loose else 'does not widen'}"
            )
        if checks:
            widening = HELD if wins == checks else NOT_HELD if wins == 0 else PARTLY
    proportion = NOT_ASSESSED
    if len(tols) >= 2:
        oks = []
        for hb in HB_MODELS:
            vals = [
                r["backward_per_forward"]
                for r in rows
                if r["model"] == hb and isinstance(r["backward_per_forward"], (int, float))
            ]
            if len(vals) >= 2:
                cv = float(np.std(vals) / np.mean(vals))
                oks.append(cv < PROPORTION_CV)
                reasons.append(
                    f"{MODEL_NAMES[hb]} backward/forward NFE across tolerances "
                    f"{[round(v, 2) for v in vals]} "
                    f"(CV {cv:.2f}, {'roughly proportional' if cv < PROPORTION_CV else 'not proportional'})"
                )
        if oks:
            proportion = HELD if all(oks) else NOT_HELD if not any(oks) else PARTLY
    reasons.insert(
        0,
        f"fewer NFEs at every tolerance: {nfe_all}; gap widens: {widening}; "
        f"(G)HBNODE fwd/bwd in proportion: {proportion}",
    )
    columns = [
        ("tol", "tol"),
        ("model", "model"),
        ("nfe_forward_mean", "mean fwd NFE"),
        ("nfe_backward_mean", "mean bwd NFE"),
        ("backward_per_forward", "bwd/fwd"),
        ("seconds_per_iter", "s/iter"),
        ("final_loss", "final loss"),
    ]
    rows = sorted(
        rows,
        key=lambda r: (
            -r["tol"],
            list(BASELINES + HB_MODELS).index(r["model"]) if r["model"] in BASELINES + HB_MODELS else 9,
        ),
    )
    return Assessment(
        columns,
        rows,
        ratios=ratios,
        verdict=combine_verdicts(nfe_all, widening, proportion),
        reasons=reasons,
        figures=existing(run, ["nfe_vs_tol.png"]),
    )
