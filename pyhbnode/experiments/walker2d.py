"""Fig. 9: Walker2D kinematic simulation.  The five ODE-RNN hybrids of the zoo (the HBNODE paper:
batch 256, Adam lr 3e-3, tolerance 1e-7) on irregular windows of 64 kept steps (10% removed),
predicting the input shifted by one step; NFE and train/test MSE per epoch.

Files: those of :func:`~pyhbnode.experiments.runner.run_comparison`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import zoo
from .common import (
    HELD,
    NOT_ASSESSED,
    NOT_HELD,
    Assessment,
    RunContext,
    sequence_comparison,
    subset,
    train_comparison,
    training_assessment,
)
from .family import nesterov_mse
from .plane_vibration import MSE_SLACK
from .records import read_jsonl

__all__ = ["BLOWUP_FACTOR", "load", "run", "redraw", "assess"]

# SONODE "blows up at initialisation" when its first-iteration loss or forward NFE is this many
# times the median of the other models' (or its training failed).
BLOWUP_FACTOR = 10.0


def load(ctx: RunContext):
    """Train and test windows for ``ctx`` (``max_files`` rollouts, ``train_limit``/``test_limit`` windows)."""
    from ..data import load_walker

    splits = load_walker(ctx.data_dir, seq_len=int(ctx.get("seq_len", 64)), max_files=ctx.get("max_files"))
    return subset(splits.train, ctx.get("train_limit")), subset(splits.test, ctx.get("test_limit"))


def run(ctx: RunContext) -> None:
    train, test = load(ctx)
    train_comparison(ctx, sequence_comparison(ctx, "walker2d", train, test))


def redraw(run_dir: str | Path) -> list[Path]:
    from .runner import redraw_training

    return redraw_training(run_dir, title="Walker2D")


def sonode_blowup(run_dir: str | Path, rows: list[dict]) -> tuple[str, list[str]]:
    """Did SONODE blow up at initialisation?  Compares first-iteration loss and forward NFE
    with the medians of the heavy-ball paper's other models (the claim is about those; the
    momentum family's rows, when run, do not move it); a failed SONODE run counts as a blow-up."""
    by = {r["model"]: r for r in rows}
    if "sonode" not in by:
        return NOT_ASSESSED, ["SONODE was not run"]
    if by["sonode"].get("status", "ok") != "ok":
        return HELD, [f"SONODE failed: {by['sonode']['status']}"]
    path = Path(run_dir) / "history.jsonl"
    if not path.exists():
        return NOT_ASSESSED, ["no history.jsonl"]
    first: dict[str, dict] = {}
    for line in read_jsonl(path):
        if line["model"] in zoo.PAPER_MODELS:
            first.setdefault(line["model"], line)
    if "sonode" not in first or len(first) < 2:
        return NOT_ASSESSED, ["SONODE's blow-up needs SONODE and another model"]
    s = first["sonode"]
    others = [v for k, v in first.items() if k != "sonode"]
    loss_ratio = s["loss"] / float(np.median([o["loss"] for o in others]))
    nfe_ratio = s["nfe_forward"] / float(np.median([o["nfe_forward"] for o in others]))
    blew = loss_ratio >= BLOWUP_FACTOR or nfe_ratio >= BLOWUP_FACTOR or not np.isfinite(s["loss"])
    return (HELD if blew else NOT_HELD), [
        f"SONODE at initialisation: first-iteration loss {s['loss']:.4g} ({loss_ratio:.2f}× the others' median), "
        f"forward NFE {s['nfe_forward']} ({nfe_ratio:.2f}×): {'blows up' if blew else 'no blow-up'}"
    ]


def assess(run_dir: str | Path) -> Assessment:
    a = training_assessment(
        run_dir,
        metric="final_val_loss",
        metric_label="test MSE",
        higher_is_better=False,
        rel_tol=MSE_SLACK,
        extra_checks=lambda rows: sonode_blowup(run_dir, rows),
    )
    a.columns.insert(-1, ("final_train_loss", "train MSE"))
    a.claims = nesterov_mse(a.rows, rel_tol=MSE_SLACK)
    return a
