"""One :class:`TaskSpec` per zoo task: every default a task has, in one place (the HBNODE paper's settings).

The zoo builds with ``spec.solver``; ``pyhbnode train``, ``compare`` and ``reproduce`` read
the training settings from here."""

from __future__ import annotations

from dataclasses import dataclass

from ..solving import SolverOptions

__all__ = ["TaskSpec", "TASK_SPECS", "DEFAULT_PRESET", "task_spec"]

# The zoo preset when none is named: Appendix E as written (see :mod:`pyhbnode.zoo.presets`).
DEFAULT_PRESET = "paper"


@dataclass(frozen=True)
class TaskSpec:
    """A task's defaults.

    Attributes:
        name: the zoo task name.
        solver: the solver options the zoo builds with (the paper's tolerance, rtol = atol).
        lr, batch_size: Adam's learning rate and the batch size of the paper.
        epochs: the length of a ``pyhbnode train`` run when none is given (the paper's own
            lengths are the experiments' ``full`` scale).
        iterations: the paper's length in optimiser steps where it gives one (the point
            cloud's 300), else ``None``.
        loss: a loss name ``fit`` knows, or one the app defines for the task (``silverbox_mse``).
        metrics: metric names ``fit`` knows.
        preset: the zoo preset used when none is named.
    """

    name: str
    solver: SolverOptions
    lr: float
    batch_size: int
    epochs: int
    loss: str
    metrics: tuple[str, ...] = ()
    iterations: int | None = None
    preset: str = DEFAULT_PRESET

    @property
    def tol(self) -> float:
        """The paper's single tolerance (rtol = atol)."""
        return self.solver.rtol


def _tol(tol: float) -> SolverOptions:
    return SolverOptions(rtol=tol, atol=tol)


TASK_SPECS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        # labels ±1 under a tanh readout: "accuracy" counts the points on the right side of 0
        TaskSpec(
            "pointcloud",
            _tol(1e-7),
            lr=0.01,
            batch_size=50,
            epochs=20,
            loss="mse",
            metrics=("accuracy",),
            iterations=300,
        ),
        TaskSpec("mnist", _tol(1e-5), lr=1e-3, batch_size=64, epochs=1, loss="cross_entropy", metrics=("accuracy",)),
        TaskSpec("cifar10", _tol(1e-5), lr=1e-3, batch_size=64, epochs=1, loss="cross_entropy", metrics=("accuracy",)),
        TaskSpec("plane_vibration", _tol(1e-7), lr=1e-4, batch_size=64, epochs=1, loss="mse"),
        TaskSpec("walker2d", _tol(1e-7), lr=3e-3, batch_size=256, epochs=1, loss="mse"),
        TaskSpec("silverbox", _tol(1e-7), lr=1e-3, batch_size=1, epochs=1, loss="silverbox_mse"),
    )
}


def task_spec(task: str) -> TaskSpec:
    """The spec of ``task``; ``ValueError`` naming the tasks for an unknown one."""
    try:
        return TASK_SPECS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; choose one of {list(TASK_SPECS)}") from None
