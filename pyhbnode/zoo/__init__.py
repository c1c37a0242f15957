"""Floor 4: the paper's architectures.  ``build(task, model, **solver_options)``."""
from __future__ import annotations

from torch import nn

from ..solving import SolverOptions
from . import tasks
from .fields import MODELS, make_field, order_of
from .models import ContinuousModel, DrivenLinear, DrivenModel, SequenceModel

__all__ = ["build", "TASKS", "MODELS", "make_field", "order_of",
           "ContinuousModel", "SequenceModel", "DrivenModel", "DrivenLinear"]

TASKS = ("pointcloud", "mnist", "cifar10", "plane_vibration", "walker2d", "silverbox")


def build(task: str, model: str, *, field_kwargs: dict | None = None, **solver_options) -> nn.Module:
    """The paper's architecture for ``task`` and ``model``.

    Args:
        task: one of ``TASKS``.
        model: one of ``MODELS`` (``"node"``, ``"anode"``, ``"sonode"``, ``"hbnode"``, ``"ghbnode"``).
        field_kwargs: overrides for the heavy-ball field (``gamma``, ``omega``, ``eps``, ``xi``,
            ``chi``, ``sigma``), e.g. to mimic the authors' reference code (spec §5).
        solver_options: ``backend``, ``method``, ``rtol``, ``atol``, ``tol``, ``adjoint``,
            ``seminorm``, ``max_steps``, ``controller``; defaults are the task's tolerance from
            the spec.

    Returns:
        An ``nn.Module`` whose ``stats`` sums its solving layers' ``.stats`` (their calls
        since ``reset_stats()``; ``pyhbnode.record()`` measures one pass).  Inputs: pointcloud ``(B, 2)``; mnist ``(B, 1, 28, 28)``;
        cifar10 ``(B, 3, 32, 32)``; plane_vibration/walker2d ``(x (T, B, k), dt (T, B))``;
        silverbox ``(v1 (B, S), v2_0 (B, 1), ts (S,))``.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {list(TASKS)}")
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {list(MODELS)}")
    options = SolverOptions.from_kwargs(tasks.TASK_DEFAULTS[task], **solver_options)
    kwargs = dict(field_kwargs or {})
    if model not in ("hbnode", "ghbnode") and kwargs:
        raise ValueError(f"field_kwargs {sorted(kwargs)} apply only to hbnode/ghbnode, not {model!r}")
    if task in ("mnist", "cifar10"):
        return tasks.images(task, model, options, kwargs)
    return getattr(tasks, task)(model, options, kwargs)
