"""Statistics recorded per solve: ``with pyhbnode.record() as rec: ...``.

Every ``odeint`` call made while a recorder is active registers its
:class:`~pyhbnode.solving.solution.SolverStats` with it (with every active recorder, when
they are nested); ``rec.stats`` is the sum, read when asked, so the backward NFE a solve
fills in during ``loss.backward()`` is counted as soon as backward has run::

    with pyhbnode.record() as rec:
        loss = model(x).pow(2).mean()
        loss.backward()
    rec.stats.nfe_forward, rec.stats.nfe_backward, rec.stats.steps, rec.stats.solves

The recorders are per thread and per ``contextvars`` context.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from .solution import SolverStats

__all__ = ["Recorder", "record", "register"]


class Recorder:
    """The solves registered while it was active (:attr:`solves`) and their sum (:attr:`stats`)."""

    def __init__(self) -> None:
        self.solves: list[SolverStats] = []

    @property
    def stats(self) -> SolverStats:
        """The sum over the recorded solves (``SolverStats.combine``; ``solves`` counts them)."""
        return SolverStats.combine(self.solves)

    def __len__(self) -> int:
        return len(self.solves)

    def __repr__(self) -> str:
        s = self.stats
        return f"Recorder(solves={s.solves}, nfe_forward={s.nfe_forward}, nfe_backward={s.nfe_backward})"


_ACTIVE: contextvars.ContextVar[tuple[Recorder, ...]] = contextvars.ContextVar("pyhbnode_recorders", default=())


@contextlib.contextmanager
def record() -> Iterator[Recorder]:
    """Record the statistics of every solve started inside the ``with`` block."""
    rec = Recorder()
    token = _ACTIVE.set(_ACTIVE.get() + (rec,))
    try:
        yield rec
    finally:
        _ACTIVE.reset(token)


def register(stats: SolverStats) -> None:
    """Add one solve's statistics to every active recorder (called by ``odeint``)."""
    for rec in _ACTIVE.get():
        rec.solves.append(stats)
