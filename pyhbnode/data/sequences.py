"""Pieces shared by the time-series tasks: irregular sampling, elapsed times, windows, splits.

Layout convention (the ODE-RNN convention of the paper's code): arrays are **time-first**,
``(time, batch, features)`` for values and ``(time, batch)`` for elapsed times. Elapsed times
are in *sample periods* of the original regular grid (1 = one sample), so they are >= 1 and
integer-valued even though they are stored as float32 for the solver.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..checks import regular_file

__all__ = [
    "SequenceSplit",
    "SequenceSplits",
    "SequenceDataset",
    "collate_time_first",
    "bernoulli_keep",
    "subset_keep",
    "elapsed_steps",
    "window_starts",
    "take_windows",
    "read_csv_columns",
]


@dataclass(frozen=True)
class SequenceSplit:
    """One split of a sequence task, time-first.

    Attributes:
        x: inputs, float32 ``(T, B, F)``.
        dt: elapsed time attached to each input step, float32 ``(T, B)``, in sample periods;
            which interval it measures is stated by the loader that built the split.
        y: targets, float32 ``(T, B, F_out)``.
        forecast: optional extra targets beyond the window, float32 ``(K, B, F_out)``.
        stamps: optional indices of the kept samples in the original recording, int64
            (plane vibration: ``(T + 1, B)``, the inputs' stamps then the last target's).
    """

    x: np.ndarray
    dt: np.ndarray
    y: np.ndarray
    forecast: np.ndarray | None = None
    stamps: np.ndarray | None = None

    @property
    def n_windows(self) -> int:
        """Number of windows (the batch axis, axis 1)."""
        return int(self.x.shape[1])

    def dataset(self) -> SequenceDataset:
        """A :class:`SequenceDataset` over ``(x, dt, y[, forecast])``."""
        extra = () if self.forecast is None else (self.forecast,)
        return SequenceDataset(self.x, self.dt, self.y, *extra)


class SequenceSplits(NamedTuple):
    """Train / validation / test splits of a sequence task."""

    train: SequenceSplit
    valid: SequenceSplit
    test: SequenceSplit


class SequenceDataset(Dataset):
    """Windows of time-first arrays, one window per item.

    Items are batch-first slices (``x[:, i]`` has shape ``(T, F)``), which is what a
    :class:`torch.utils.data.DataLoader` samples; :meth:`collate` (which ``fit`` uses, and a
    DataLoader takes as ``collate_fn=SequenceDataset.collate``) stacks them back into
    time-first batches ``(T, b, F)`` / ``(T, b)``, the layout the ODE-RNN models take.

    Args:
        x: inputs ``(T, B, F)``.
        dt: elapsed times ``(T, B)``.
        y: targets ``(T', B, ...)``.
        *extra: further arrays with the batch on axis 1 (e.g. a forecast target).
    """

    def __init__(
        self,
        x: np.ndarray | torch.Tensor,
        dt: np.ndarray | torch.Tensor,
        y: np.ndarray | torch.Tensor,
        *extra: np.ndarray | torch.Tensor,
    ) -> None:
        self.arrays = tuple(torch.as_tensor(a) for a in (x, dt, y, *extra))
        sizes = {a.shape[1] for a in self.arrays}
        if len(sizes) != 1:
            raise ValueError(
                f"all arrays need the same batch size on axis 1, got shapes {[tuple(a.shape) for a in self.arrays]}"
            )
        self._n = sizes.pop()

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return tuple(a[:, i] for a in self.arrays)

    @staticmethod
    def collate(items: Sequence[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
        """Items stacked on axis 1: time-first batches."""
        return collate_time_first(items)


def collate_time_first(items: Sequence[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Stack :class:`SequenceDataset` items on axis 1, giving time-first batches."""
    return tuple(torch.stack(parts, dim=1) for parts in zip(*items, strict=True))


def bernoulli_keep(rng: np.random.RandomState, n: int, keep_prob: float) -> np.ndarray:
    """Indices (int64, ascending) of the steps kept when each is kept with probability ``keep_prob``.

    One uniform draw per step, in step order: ``rng.rand(n)`` yields the same numbers as ``n``
    calls of ``rng.rand()``, so this consumes the stream exactly like a per-step loop (the
    Walker2D reference) and several sequences can share one generator.
    """
    return np.flatnonzero(rng.rand(n) < keep_prob)


def subset_keep(rng: np.random.RandomState, n: int, n_keep: int) -> np.ndarray:
    """Indices (int64, ascending) of ``n_keep`` of ``n`` steps chosen uniformly without replacement."""
    return np.sort(rng.choice(n, n_keep, replace=False)).astype(np.int64)


def elapsed_steps(kept: np.ndarray, previous: int = -1) -> np.ndarray:
    """Steps elapsed at each kept index since the kept one before it.

    Args:
        kept: ascending indices ``(K,)`` of kept steps.
        previous: index of the step before ``kept[0]``; the default ``-1`` counts the first
            kept step as ``kept[0] + 1`` steps after the start, as a running "steps since the
            last kept one" counter does.

    Returns:
        int64 ``(K,)``, all >= 1.
    """
    return np.diff(np.asarray(kept, dtype=np.int64), prepend=previous)


def window_starts(n: int, length: int, stride: int, *, allow_flush_end: bool = True) -> np.ndarray:
    """Start indices of windows of ``length`` taken every ``stride`` steps from ``n`` steps.

    Args:
        allow_flush_end: whether a window may end exactly at the last step. The Walker2D
            reference stops one start short (``range(0, n - length, stride)``); its published
            window counts need ``False``.
    """
    stop = n - length + (1 if allow_flush_end else 0)
    return np.arange(0, max(stop, 0), stride, dtype=np.int64)


def take_windows(arr: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Windows ``arr[s : s + length]`` for each start, stacked time-first: ``(length, len(starts), ...)``."""
    index = np.asarray(starts, dtype=np.int64)[None, :] + np.arange(length, dtype=np.int64)[:, None]
    return arr[index]


def read_csv_columns(path: str | os.PathLike[str], n_columns: int) -> np.ndarray:
    """The first ``n_columns`` of a benchmark CSV as float64 ``(rows, n_columns)``.

    The benchmark files have one quoted header line and a comma at the end of every line (so a
    parser sees an extra empty column), and some columns are filled only in the first row
    (``Fs`` in ``pv.csv``); reading just the leading columns sidesteps all three.
    """
    regular_file(path, "data file")  # a FIFO or device is refused, never opened
    try:
        return np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(n_columns), dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise ValueError(
            f"{path}: expected a header line then rows of at least {n_columns} comma-separated numbers ({exc})"
        ) from exc
