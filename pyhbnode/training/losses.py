"""Losses and metrics by name, and the up-front check that a model's output fits its target."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .history import BATCH_KEYS

__all__ = ["LOSSES", "METRICS", "resolve_loss", "resolve_metrics", "check_output", "accuracy"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out, target.to(out.dtype))


def _cross_entropy(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, target)


def _bce(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(out, target.to(out.dtype))


def accuracy(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Integer labels ``(B, ...)``: share of ``out.argmax(1) == target`` (``out`` logits
    ``(B, C, ...)``).  Float targets of ``out``'s shape: share of ``(out > 0) == (target > 0)``,
    which fits ±1 labels with a tanh readout and 0/1 labels with ``bce`` logits."""
    if target.is_floating_point():
        return ((out > 0) == (target > 0)).float().mean()
    return (out.argmax(1) == target).float().mean()


def _mse_metric(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out, target.to(out.dtype))


def _mae_metric(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(out, target.to(out.dtype))


# "bce" takes logits (binary_cross_entropy_with_logits): no sigmoid in the model.
LOSSES: dict[str, LossFn] = {"mse": _mse, "cross_entropy": _cross_entropy, "bce": _bce}
METRICS: dict[str, LossFn] = {"accuracy": accuracy, "mse": _mse_metric, "mae": _mae_metric}


def resolve_loss(loss: str | LossFn) -> tuple[str, LossFn]:
    """``(name, function)`` for a loss name or a callable ``loss(out, target) -> scalar``."""
    if callable(loss):
        return getattr(loss, "__name__", "custom"), loss
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)} or pass a callable(out, target)")
    return loss, LOSSES[loss]


def resolve_metrics(metrics: Sequence[str | LossFn]) -> dict[str, LossFn]:
    """Name -> function for metric names and callables (named by ``__name__``).  Each
    function maps ``(out, target)`` to a scalar batch mean."""
    if isinstance(metrics, str) or callable(metrics):
        metrics = (metrics,)
    resolved: dict[str, LossFn] = {}
    for i, m in enumerate(metrics):
        if callable(m):
            name = getattr(m, "__name__", f"metric{i}")
            if name == "<lambda>":
                name = f"metric{i}"
            resolved[name] = m
        elif m in METRICS:
            resolved[m] = METRICS[m]
        else:
            raise ValueError(f"unknown metric {m!r}; choose from {sorted(METRICS)} or pass a callable(out, target)")
    taken = sorted(set(resolved) & set(BATCH_KEYS))
    if taken:
        raise ValueError(
            f"metric name(s) {taken} clash with the batch record's own keys {list(BATCH_KEYS)}; rename the function"
        )
    return resolved


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def check_output(
    out: Any, target: Any, loss_name: str, loss_fn: LossFn, metrics: Mapping[str, LossFn], where: str
) -> None:
    """Raise ``ValueError`` if ``out`` (the model's output on the first batch of ``where``)
    cannot be scored against ``target`` with the loss and metrics."""
    if not isinstance(out, torch.Tensor):
        raise ValueError(
            f"the model returned a {type(out).__name__} on the first {where} batch; fit needs a "
            "tensor (wrap the model to return the prediction)"
        )
    if not isinstance(target, torch.Tensor):
        raise ValueError(
            f"the target (the last element of each {where} batch) is a {type(target).__name__}, not a tensor"
        )
    if loss_name in ("mse", "bce"):
        if not target.is_floating_point():
            raise ValueError(
                f"loss {loss_name!r} needs float targets, but the {where} targets are {target.dtype}"
                + ("; for class labels use loss='cross_entropy'" if loss_name == "mse" else "")
            )
        if _shape(out) != _shape(target):
            raise ValueError(
                f"the model's output has shape {_shape(out)} but the {where} target has shape "
                f"{_shape(target)}; loss {loss_name!r} needs equal shapes"
            )
        if loss_name == "bce" and (target.min() < 0 or target.max() > 1):
            raise ValueError(
                f"loss 'bce' needs targets in [0, 1]; the first {where} batch has values in "
                f"[{target.min().item():g}, {target.max().item():g}]"
            )
    elif loss_name == "cross_entropy":
        if target.is_floating_point() or target.dtype == torch.bool or target.is_complex():
            raise ValueError(
                f"loss 'cross_entropy' needs integer class labels (torch.long), but the {where} "
                f"labels are {target.dtype}; convert them with .long()"
            )
        if out.dim() < 2 or _shape(target) != _shape(out)[:1] + _shape(out)[2:]:
            raise ValueError(
                f"the model's output has shape {_shape(out)} and the {where} labels {_shape(target)}; "
                "loss 'cross_entropy' needs logits (B, C, ...) and labels (B, ...)"
            )
        if target.numel() and (target.min() < 0 or target.max() >= out.shape[1]):
            raise ValueError(
                f"class labels must lie in [0, {out.shape[1] - 1}] for {out.shape[1]} logits; the "
                f"first {where} batch has labels in [{target.min().item()}, {target.max().item()}]"
            )
    for name, fn in [("loss", loss_fn), *metrics.items()]:
        try:
            value = fn(out, target)
        except Exception as err:
            what = "the loss" if name == "loss" else f"metric {name!r}"
            raise ValueError(
                f"{what} failed on the first {where} batch (output {_shape(out)}, target "
                f"{_shape(target)}): {type(err).__name__}: {err}"
            ) from None
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            what = "the loss" if name == "loss" else f"metric {name!r}"
            raise ValueError(
                f"{what} must return a scalar, but returned shape {_shape(value)} on the first {where} batch"
            )
