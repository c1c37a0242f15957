"""The papers' architectures.  ``build(task, model, preset="paper", **solver_options)``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..fields import Dormant
from ..solving import SolverOptions
from ..solving.options import solver_argument
from . import tasks
from ._validate import check_build_args
from .fields import MODELS, NAMES, PAPER_MODELS, RUNS_ON, check_task, make_field, models_for, order_of, runs_on
from .models import ContinuousModel, DrivenLinear, DrivenModel, SequenceModel
from .presets import AUTHORS, Variant, family_kwargs, same_in_both_presets, variant
from .specs import DEFAULT_PRESET, TASK_SPECS, TaskSpec, task_spec

__all__ = [
    "build",
    "TASKS",
    "TASK_SPECS",
    "TaskSpec",
    "task_spec",
    "PRESETS",
    "DEFAULT_PRESET",
    "PAPER_MODELS",
    "AUTHORS",
    "Variant",
    "variant",
    "same_in_both_presets",
    "MODELS",
    "NAMES",
    "RUNS_ON",
    "runs_on",
    "models_for",
    "check_task",
    "make_field",
    "order_of",
    "ContinuousModel",
    "SequenceModel",
    "DrivenModel",
    "DrivenLinear",
]

TASKS = tuple(TASK_SPECS)
PRESETS = (DEFAULT_PRESET, "authors")


def build(
    task: str,
    model: str,
    *,
    preset: str = DEFAULT_PRESET,
    field_kwargs: dict | None = None,
    window: int = 64,
    solver: SolverOptions | None = None,
    **solver_options: Any,
) -> nn.Module:
    """The paper's architecture for ``task`` and ``model``.

    Args:
        task: one of ``TASKS``.
        model: one of ``MODELS`` (``"node"``, ``"anode"``, ``"sonode"``, ``"hbnode"``, ``"ghbnode"``,
            ``"nesterovnode"``, ``"gnesterovnode"``, ``"adamnode"``); the last three only on the
            tasks their authors ran (``RUNS_ON``; another task raises ``ValueError``).
        preset: ``"paper"`` (Appendix E and Sec. 1 as written; the default) or ``"authors"``
            (the settings of the authors' code: heavy-ball coefficients, the point-cloud readout,
            Walker2D's residual update; see :mod:`pyhbnode.zoo.presets`).  Both build the same
            layers, and both start the plane-vibration models at the authors' 0.01 scale.
        field_kwargs: overrides for the heavy-ball field (``gamma``, ``omega``, ``eps``, ``xi``,
            ``chi``, ``sigma``), applied over the preset's.
        window: plane vibration: the number of input stamps its initial state reads (the
            training window; 64 in the paper).
        solver: the solver options (default: the task's, with its tolerance from the paper);
            keywords that are :class:`SolverOptions` fields (``backend``, ``tol``,
            ``adjoint``, ``compile``, ...) override them.

    Returns:
        An ``nn.Module`` (measure its solves with ``pyhbnode.record()``).  Inputs: pointcloud ``(B, 2)``;
        mnist ``(B, 1, 28, 28)``; cifar10 ``(B, 3, 32, 32)``; plane_vibration/walker2d ``(x (T, B, k), dt (T, B))``
        (plane vibration: ``T >= window``); silverbox ``(v1 (B, S), v2_0 (B, 1), ts (S,))``.
    """
    check_build_args(task, model, field_kwargs, TASKS, MODELS)
    check_task(task, model)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {list(PRESETS)}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int (input stamps), got {window!r}")
    options = solver_argument(
        solver, solver_options, where=f"zoo.build({task!r}, {model!r})", default=TASK_SPECS[task].solver
    )
    kwargs = dict(field_kwargs or {})
    if model not in ("hbnode", "ghbnode") and kwargs:
        raise ValueError(f"field_kwargs {sorted(kwargs)} apply only to hbnode/ghbnode, not {model!r}")
    kwargs = {**family_kwargs(task, model), **kwargs}
    v = variant(task, model, preset)
    if task in ("mnist", "cifar10"):
        net = tasks.images(task, model, options, kwargs, v)
    elif task in ("plane_vibration", "walker2d"):
        net = getattr(tasks, task)(model, options, kwargs, v, window=window)
    else:
        net = getattr(tasks, task)(model, options, kwargs, v)
    if v.init_scale is not None:
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(v.init_scale)
    if v.dormant:
        # Registered after the scaling: the authors' count includes them, their forward never reads them.
        net.dormant = Dormant(v.dormant)
    return net
