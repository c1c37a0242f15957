"""Fig. 6: MNIST.  The five conv-field models of the zoo (spec §4: batch 64, Adam lr 1e-3,
tolerance 1e-5), trained side by side; forward/backward NFE, time and test accuracy per epoch.

Files: those of :func:`~pyhbnode.experiments.runner.run_comparison` (``results.csv``,
``history.jsonl``, ``epochs.jsonl``, ``config.json``, ``nfe.png``, ``loss.png``, ``metrics.png``).
"""
from __future__ import annotations

from pathlib import Path

from .common import Assessment, RunContext, image_comparison, train_comparison, training_assessment

__all__ = ["run", "redraw", "assess", "ACCURACY_SLACK"]

# (G)HBNODE's test accuracy counts as comparable within this many points of the best baseline.
ACCURACY_SLACK = 0.02


def run(ctx: RunContext) -> None:
    train_comparison(ctx, image_comparison(ctx, "mnist"))


def redraw(run_dir: str | Path) -> list[Path]:
    from .runner import redraw_training

    return redraw_training(run_dir, title="MNIST")


def assess(run_dir: str | Path) -> Assessment:
    return training_assessment(run_dir, metric="final_val_accuracy", metric_label="test accuracy",
                               higher_is_better=True, abs_tol=ACCURACY_SLACK)
