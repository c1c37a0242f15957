"""Hooks into ``fit``'s loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from .history import History

__all__ = ["Callback", "as_callbacks"]


class Callback:
    """Override any of these; a hook that returns ``True`` stops training after the current
    batch (the run then ends normally, with a final checkpoint).

    Under DDP every rank calls its callbacks with the same (rank-reduced) records, so a
    deterministic stopping rule stops all ranks together."""

    def on_train_begin(self, model: nn.Module, history: History) -> Any:
        """Before the first batch (also when resuming; ``history`` then holds the past)."""

    def on_batch_end(self, record: dict[str, Any]) -> Any:
        """After each optimiser step, with the batch record."""

    def on_epoch_end(self, record: dict[str, Any]) -> Any:
        """After each epoch (validation included), with the epoch record."""

    def on_train_end(self, history: History) -> Any:
        """After the last batch."""


class _EpochFunction(Callback):
    def __init__(self, fn: Callable[[dict[str, Any]], Any]) -> None:
        self.fn = fn

    def on_epoch_end(self, record: dict[str, Any]) -> Any:
        return self.fn(record)


def as_callbacks(callbacks: Sequence[Callback | Callable[[dict[str, Any]], Any]]) -> list[Callback]:
    """Callbacks as given; a plain function is called at each epoch's end with the record."""
    out: list[Callback] = []
    for c in callbacks:
        if isinstance(c, Callback):
            out.append(c)
        elif callable(c):
            out.append(_EpochFunction(c))
        else:
            raise ValueError(f"a callback must be a Callback or a callable(epoch_record), got {type(c).__name__}")
    return out
