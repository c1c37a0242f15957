"""Optimisers and learning-rate schedules by name."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["OPTIMIZERS", "make_optimizer", "make_scheduler", "check_schedule"]


def _fused_devices() -> frozenset[str]:
    """The device types torch has fused optimiser kernels for (the CPU since torch 2.4)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # a torch without the list: CUDA only, as before CPU support
        return frozenset({"cuda"})
    return frozenset(_get_fused_kernels_supported_devices())


def _tensors(params: list) -> list[torch.Tensor]:
    """The parameters of a list of tensors or of param-group dicts."""
    out: list[torch.Tensor] = []
    for p in params:
        if isinstance(p, dict):
            group = p["params"]
            out += [group] if isinstance(group, torch.Tensor) else list(group)
        else:
            out.append(p)
    return out


def _fusable(params: list) -> bool:
    """Whether torch's fused (single-kernel) Adam runs on ``params``: floating point, all on
    one device of a type torch has fused kernels for."""
    tensors = _tensors(params)
    devices = {p.device for p in tensors}
    return (
        bool(tensors)
        and all(p.is_floating_point() for p in tensors)
        and len(devices) == 1
        and next(iter(devices)).type in _fused_devices()
    )


def _adam(kind: type[torch.optim.Adam] | type[torch.optim.AdamW]) -> Callable[..., torch.optim.Optimizer]:
    # fused: one kernel per step instead of a Python loop over the parameters, the
    # same update to rounding; a caller's own fused= or foreach= is kept
    def make(params: Iterable[Any], **kw: Any) -> torch.optim.Optimizer:
        params = list(params)
        if "fused" not in kw and "foreach" not in kw:
            kw["fused"] = _fusable(params) or None
        return kind(params, **kw)

    return make


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": _adam(torch.optim.Adam),
    "adamw": _adam(torch.optim.AdamW),
    "sgd": lambda params, **kw: torch.optim.SGD(params, momentum=0.9, **kw),
    "rmsprop": torch.optim.RMSprop,
}

OptimizerSpec = str | Callable[..., torch.optim.Optimizer]
ScheduleSpec = str | Callable[[torch.optim.Optimizer], Any] | None


def make_optimizer(
    spec: OptimizerSpec, params: Iterable[torch.nn.Parameter], *, lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """``"adam"``, ``"adamw"``, ``"sgd"`` (momentum 0.9) or ``"rmsprop"``; or a callable
    ``(params, lr=, weight_decay=) -> Optimizer`` such as ``torch.optim.NAdam``."""
    if callable(spec):
        return spec(params, lr=lr, weight_decay=weight_decay)
    if spec not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {spec!r}; choose one of {sorted(OPTIMIZERS)} or pass a callable")
    return OPTIMIZERS[spec](params, lr=lr, weight_decay=weight_decay)


def _parse_step(spec: str) -> tuple[int, float]:
    parts = spec.split(":")
    try:
        every, gamma = int(parts[1]), float(parts[2])
        if len(parts) != 3 or every < 1 or not 0 < gamma < math.inf:  # NaN fails this too
            raise ValueError
    except (ValueError, IndexError):
        raise ValueError(
            f"lr_schedule {spec!r} should read 'step:<every epochs, int >= 1>:<finite gamma > 0>', e.g. 'step:10:0.5'"
        ) from None
    return every, gamma


def check_schedule(spec: ScheduleSpec) -> None:
    """Raise ``ValueError`` for a schedule that :func:`make_scheduler` would reject."""
    if spec is None or callable(spec) or spec == "cosine":
        return
    if isinstance(spec, str) and spec.startswith("step:"):
        _parse_step(spec)
        return
    raise ValueError(
        f"unknown lr_schedule {spec!r}; use None, 'cosine', 'step:<every>:<gamma>' or a "
        "callable(optimizer) -> scheduler"
    )


def make_scheduler(spec: ScheduleSpec, optimizer: torch.optim.Optimizer, epochs: int) -> Any:
    """The scheduler for ``spec``, stepped once per epoch by ``fit``.

    ``None``: constant rate.  ``"cosine"``: cosine annealing to 0 over ``epochs``.
    ``"step:<every>:<gamma>"``: multiply by ``gamma`` every ``every`` epochs.  A callable gets
    the optimiser and returns a scheduler (anything with ``step()``, ``state_dict()`` and
    ``load_state_dict()``)."""
    check_schedule(spec)
    if spec is None:
        return None
    if callable(spec):
        return spec(optimizer)
    if spec == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    every, gamma = _parse_step(spec)
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=every, gamma=gamma)
