"""The statistics a solving layer keeps of its own calls (its ``.stats`` convenience)."""
from __future__ import annotations

from ..solving import SolverStats

__all__ = ["StatsLog"]


class StatsLog:
    """The :class:`SolverStats` of every solve a layer made since :meth:`reset`.

    The entries are the solves' own statistics objects, so a backward pass that runs later
    fills in their ``nfe_backward``.  To stay bounded over a long run without resets, the
    oldest half is folded into one summed entry once more than ``limit`` are held (a
    backward pass arriving after ``limit / 2`` further calls would then be missed).
    """

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self.parts: list[SolverStats] = []

    def reset(self) -> None:
        self.parts = []

    def add(self, stats: SolverStats) -> None:
        self.parts.append(stats)
        if len(self.parts) > self.limit:
            half = self.limit // 2
            self.parts = [SolverStats.combine(self.parts[:half]), *self.parts[half:]]

    @property
    def total(self) -> SolverStats:
        return SolverStats.combine(self.parts)
