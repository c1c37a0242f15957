"""Fig. 1: CIFAR-10, on whatever batch files are present (our local copy: 4,000 train + 1,000
test images).  The five conv-field models of the zoo (spec §4: batch 64, Adam lr 1e-3,
tolerance 1e-5), trained side by side; forward/backward NFE, time and test accuracy per epoch.

Files: those of :func:`~pyhbnode.experiments.runner.run_comparison` (``results.csv``,
``history.jsonl``, ``epochs.jsonl``, ``config.json``, ``nfe.png``, ``loss.png``, ``metrics.png``).
"""
from __future__ import annotations

from pathlib import Path

from .common import Assessment, RunContext, image_comparison, train_comparison, training_assessment
from .mnist import ACCURACY_SLACK

__all__ = ["run", "redraw", "assess"]


def run(ctx: RunContext) -> None:
    train_comparison(ctx, image_comparison(ctx, "cifar10"))


def redraw(run_dir: str | Path) -> list[Path]:
    from .runner import redraw_training

    return redraw_training(run_dir, title="CIFAR-10")


def assess(run_dir: str | Path) -> Assessment:
    return training_assessment(run_dir, metric="final_val_accuracy", metric_label="test accuracy",
                               higher_is_better=True, abs_tol=ACCURACY_SLACK)
