"""Fig. 6 (MNIST) and Fig. 1 (CIFAR-10): the zoo's conv-field models trained side by side at
the task's settings (:data:`pyhbnode.zoo.TASK_SPECS`); forward/backward NFE, time and test
accuracy per epoch.  One module for both: the experiment's name is the zoo task it trains on.
CIFAR-10 runs on whatever batch files are present (our local copy: 4,000 train + 1,000 test).

Files: those of :func:`~pyhbnode.experiments.runner.run_comparison` (``results.csv``,
``history.jsonl``, ``epochs.jsonl``, ``config.json``, ``nfe.png``, ``loss.png``, ``metrics.png``).
"""

from __future__ import annotations

from pathlib import Path

from .common import Assessment, RunContext, image_comparison, load_config, train_comparison, training_assessment
from .family import adam_loss, nesterov_nfe

__all__ = ["run", "redraw", "assess", "ACCURACY_SLACK", "TITLES"]

# A model's test accuracy counts as comparable within this many points of the best baseline's
# ((G)HBNODE against NODE/ANODE/SONODE; (G)NesterovNODE against NODE and (G)HBNODE).
ACCURACY_SLACK = 0.02
TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}


def run(ctx: RunContext) -> None:
    train_comparison(ctx, image_comparison(ctx, ctx.experiment))


def redraw(run_dir: str | Path) -> list[Path]:
    from .runner import redraw_training

    task = load_config(run_dir).get("experiment", "")
    return redraw_training(run_dir, title=TITLES.get(task, task))


def assess(run_dir: str | Path) -> Assessment:
    a = training_assessment(
        run_dir,
        metric="final_val_accuracy",
        metric_label="test accuracy",
        higher_is_better=True,
        abs_tol=ACCURACY_SLACK,
    )
    a.claims = nesterov_nfe(
        a.rows, metric="final_val_accuracy", label="test accuracy", higher_is_better=True, abs_tol=ACCURACY_SLACK
    ) + adam_loss(a.rows)
    return a
