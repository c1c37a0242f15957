"""Fig. 4: how the adjoint ‖∂L/∂h_t‖ decays with T − t in ODE-RNN, HBNODE-RNN and GHBNODE-RNN
on Walker2D.

As in the reference: L is the MSE of the *last* prediction of a window, backpropagated
through the whole ODE-RNN; ``∂L/∂h_t`` is its gradient with respect to the hidden state right
after the RNN update at step t (read through ``ODERNN.keep_states``).  Measured on the first
``test_limit`` test windows, per sample and averaged over the batch, once at initialisation and
once after training (the models train through
:func:`~pyhbnode.experiments.runner.run_comparison`, like the Walker2D experiment).  For the
models with a state of several parts ``h`` is the first part; the gradient for the whole state
(``(h, m)``; (G)NesterovNODE's ``(h, dh)`` after its read-out) is saved too.

Files: those of the runner plus ``adjoint.json`` (norms per model and stage), ``adjoint.csv``
(fitted decay per model), ``adjoint.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import zoo
from ..fields import hidden
from .common import (
    HB_MODELS,
    HELD,
    MODEL_NAMES,
    NOT_ASSESSED,
    NOT_HELD,
    PARTLY,
    Assessment,
    RunContext,
    combine_verdicts,
    complete_row,
    existing,
    read_json,
    sequence_comparison,
    train_comparison,
    write_json,
)
from .records import read_csv, write_csv
from .walker2d import load

__all__ = ["MARKED", "HORIZON_DECADES", "adjoint_norms", "decay_slope", "memory_horizon", "run", "redraw", "assess"]

# "Far more slowly": a (G)HBNODE-RNN decay slope at most this fraction of ODE-RNN's counts as
# the claim held; slower but not by this much counts as partly held.
MARKED = 0.5
# The memory horizon is how far back (in steps) ‖∂L/∂h_t‖ stays within this many decades of ‖∂L/∂h_T‖.
HORIZON_DECADES = 8
RNN_NAMES = {m: "ODE-RNN" if m == "node" else f"{name}-RNN" for m, name in MODEL_NAMES.items()}


def adjoint_norms(model: nn.Module, x: torch.Tensor, dt: torch.Tensor, y: torch.Tensor) -> dict[str, list[float]]:
    """``{"h": [...], "state": [...]}``: mean per-sample ‖∂L/∂h_t‖ and ‖∂L/∂y_t‖ (the whole state) for
    t = 1..T, with L the MSE of the last prediction.  ``model`` is a zoo sequence model."""
    if not isinstance(model, zoo.SequenceModel):
        raise TypeError(f"adjoint_norms needs a zoo sequence model, got {type(model).__name__}")
    rnn = model.rnn
    rnn.keep_states = True
    try:
        out = model(x, dt)
        for s in rnn.states:
            s.retain_grad()
        loss = nn.functional.mse_loss(out[-1], y[-1])
        loss.backward()
        h_norms, state_norms = [], []
        for s in rnn.states:
            g = s.grad if s.grad is not None else torch.zeros_like(s)
            gh = hidden(g, rnn.order)  # h is the first of 2 (h, m) or 3 (AdamNODE's h, m, v) parts
            h_norms.append(float(gh.flatten(1).norm(dim=1).mean()))
            state_norms.append(float(g.flatten(1).norm(dim=1).mean()))
    finally:
        rnn.keep_states = False
        rnn.states = []
        model.zero_grad(set_to_none=True)
    return {"h": h_norms, "state": state_norms}


def decay_slope(norms: list[float]) -> float | None:
    """Least-squares slope of log10 ‖∂L/∂h_t‖ against T − t (decades per step; more negative
    = vanishes faster)."""
    a = np.asarray(norms, dtype=float)
    back = np.arange(len(a))[::-1]  # T - t for t = 1..T
    ok = np.isfinite(a) & (a > 0)
    if ok.sum() < 2:
        return None
    return float(np.polyfit(back[ok], np.log10(a[ok]), 1)[0])


def memory_horizon(norms: list[float], decades: float = HORIZON_DECADES) -> int:
    """How many steps back the gradient reaches: the largest T − t with
    ‖∂L/∂h_t‖ ≥ 10^-decades · ‖∂L/∂h_T‖."""
    a = np.asarray(norms, dtype=float)
    if a.size == 0 or not a[-1] > 0:
        return 0
    alive = np.flatnonzero(a >= a[-1] * 10.0 ** (-decades))
    return int(a.size - 1 - alive.min())


def run(ctx: RunContext) -> None:
    train, test = load(ctx)
    out = ctx.out_dir()
    path = out / "adjoint.json"
    saved: dict[str, dict] = {"models": {}}
    x, dt, y = (torch.from_numpy(a) for a in (test.x, test.dt, test.y))

    def measure(name: str, trained: nn.Module, run_dir: Path) -> None:
        torch.manual_seed(ctx.seed)  # the runner's initialisation of this model, rebuilt
        initial = zoo.build(
            "walker2d",
            name,
            preset=ctx.preset,
            window=int(ctx.get("seq_len", 64)),
            **ctx.solver_keywords(tol=float(ctx["tol"])),
        )
        saved["models"][name] = {"init": adjoint_norms(initial, x, dt, y), "trained": adjoint_norms(trained, x, dt, y)}
        write_json(path, saved)

    train_comparison(
        ctx,
        sequence_comparison(ctx, "walker2d", train, None),
        after_model=measure,
        extra={"adjoint_windows": int(test.n_windows)},
    )
    redraw(out)


def _rows(saved: dict) -> list[dict]:
    rows = []
    for name, stages in saved["models"].items():
        row = {"model": name}
        for stage, norms in stages.items():
            h = norms["h"]
            slope = decay_slope(h)
            row[f"{stage}_slope"] = None if slope is None else round(slope, 5)
            row[f"{stage}_horizon"] = memory_horizon(h)
            row[f"{stage}_last_norm"] = float(f"{h[-1]:.4g}") if h else None
        rows.append(row)
    return rows


def redraw(run_dir: str | Path) -> list[Path]:
    from .plots import MODEL_STYLE, linestyle, plt, save_figure
    from .runner import redraw_training

    run = Path(run_dir)
    paths = redraw_training(run, title="adjoint decay: Walker2D training") if (run / "history.jsonl").exists() else []
    saved = read_json(run / "adjoint.json")
    write_csv(_rows(saved), run / "adjoint.csv")
    stages = ("init", "trained")
    fig, axes = plt.subplots(1, len(stages), figsize=(11, 4.0), sharey=True)
    for ax, stage in zip(axes, stages, strict=True):
        for name, norms in saved["models"].items():
            if stage not in norms:
                continue
            color = MODEL_STYLE.get(name, (name, None))[1]
            h = np.asarray(norms[stage]["h"])
            ax.plot(
                np.arange(len(h))[::-1], h, color=color, ls=linestyle(name), lw=1.8, label=RNN_NAMES.get(name, name)
            )
        ax.set_yscale("log")
        ax.set_xlabel("T − t")
        ax.set_title("at initialisation" if stage == "init" else "after training")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("‖∂L/∂h_t‖")
    axes[0].legend(frameon=False)
    fig.suptitle("Fig. 4: adjoint norm vs T − t (Walker2D, L = loss of the last prediction)")
    return paths + [save_figure(fig, run / "adjoint.png")]


def assess(run_dir: str | Path) -> Assessment:
    """Claim: each (G)HBNODE-RNN's adjoint vanishes more slowly than ODE-RNN's — its fitted
    log-decay slope is less negative, checked after training (and reported at initialisation)."""
    run = Path(run_dir)
    rows = _rows(read_json(run / "adjoint.json")) if (run / "adjoint.json").exists() else []
    results = run / "results.csv"
    nfe = {r["model"]: complete_row(r) for r in read_csv(results)} if results.exists() else {}
    for r in rows:
        for key in ("parameters", "nfe_forward_mean", "nfe_backward_mean", "seconds_per_epoch", "final_loss"):
            r[key] = nfe.get(r["model"], {}).get(key)
    columns = [
        ("model", "model"),
        ("parameters", "params"),
        ("nfe_forward_mean", "mean fwd NFE"),
        ("nfe_backward_mean", "mean bwd NFE"),
        ("seconds_per_epoch", "s/epoch"),
        ("final_loss", "final loss"),
        ("init_slope", "decay slope at init (log10/step)"),
        ("trained_slope", "decay slope trained"),
        ("init_horizon", f"horizon at init (steps, {HORIZON_DECADES} decades)"),
        ("trained_horizon", "horizon trained (steps)"),
    ]
    by = {r["model"]: r for r in rows}
    figures = existing(run, ["adjoint.png", "nfe.png", "loss.png"])
    if "node" not in by or not any(m in by for m in HB_MODELS):
        return Assessment(
            columns, rows, verdict=NOT_ASSESSED, reasons=["needs ODE-RNN and a (G)HBNODE-RNN"], figures=figures
        )
    reasons: list[str] = []
    scores: list[str] = []
    ratios: dict[str, float | None] = {}
    for stage in ("trained", "init"):
        base = by["node"].get(f"{stage}_slope")
        for hb in HB_MODELS:
            v = by.get(hb, {}).get(f"{stage}_slope")
            if not isinstance(v, (int, float)) or not isinstance(base, (int, float)) or base >= 0:
                continue
            rel = v / base  # fraction of ODE-RNN's decay rate
            slower, marked = v > base, rel <= MARKED
            if stage == "trained":
                scores.append(HELD if marked else PARTLY if slower else NOT_HELD)
            ratios[f"{MODEL_NAMES[hb]}/ODE-RNN decay slope ({stage})"] = round(rel, 3)
            what = "far more slowly" if marked else "more slowly, but not by half" if slower else "as fast or faster"
            reasons.append(
                f"{stage}: {RNN_NAMES[hb]} decays {v:.3g} decades/step vs ODE-RNN {base:.3g} "
                f"({rel:.2f}×: {what}); reaches back {by[hb].get(f'{stage}_horizon')} vs "
                f"{by['node'].get(f'{stage}_horizon')} steps within {HORIZON_DECADES} decades"
            )
    verdict = combine_verdicts(*scores) if scores else NOT_ASSESSED
    return Assessment(columns, rows, ratios=ratios, verdict=verdict, reasons=reasons, figures=figures)
