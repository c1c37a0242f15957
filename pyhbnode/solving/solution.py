"""The result of a solve: trajectory plus statistics."""

from __future__ import annotations

import enum
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

import torch

__all__ = ["Status", "SolverStats", "Solution"]


class Status(enum.Enum):
    """How a solve ended; each member carries a message for people."""

    SUCCESS = "The solve reached the final time."
    PENDING = "The solve has not run yet."
    MAX_STEPS = "The maximum number of solver steps was reached. Try increasing `max_steps`."
    DT_UNDERFLOW = "The step size underflowed. The solution may blow up, or the problem is stiff."
    NONFINITE = "The state became NaN or Inf."
    FAILED = "The solver failed."

    @property
    def message(self) -> str:
        return self.value


@dataclass
class SolverStats:
    """Statistics of one solve (or a sum of solves).

    ``nfe_backward`` stays 0 until the backward pass has run; the adjoint fills it in.

    Attributes:
        nfe_forward: vector-field evaluations in the forward solve, including the
            solver's start-up evaluations.
        nfe_backward: evaluations in the backward pass; each is one vector-Jacobian
            product of the field (adjoint modes) or one recorded forward evaluation
            differentiated through (``adjoint="direct"``).
        steps: step attempts (accepted + rejected) of the forward solve, ``None`` where the
            backend does not expose them.
        accepted, rejected: accepted and rejected steps, ``None`` where unknown.
        steps_backward: step attempts of the adjoint solve, ``None`` where unknown.
        solves: how many solves these statistics sum.
        status: how the forward solve ended.
    """

    nfe_forward: int = 0
    nfe_backward: int = 0
    steps: int | None = None
    accepted: int | None = None
    rejected: int | None = None
    steps_backward: int | None = None
    solves: int = 1
    status: Status = Status.PENDING

    @classmethod
    def combine(cls, parts: Iterable[SolverStats]) -> SolverStats:
        """Sum of several solves' statistics (e.g. the per-interval solves of an ODE-RNN).

        Counters that any part leaves unknown (``None``) are unknown in the sum."""
        parts = list(parts)
        total = cls(solves=0, status=Status.SUCCESS if parts else Status.PENDING)
        for f in fields(cls):
            if f.name == "status":
                continue
            values = [getattr(p, f.name) for p in parts]
            if f.name not in ("nfe_forward", "nfe_backward", "solves") and (
                not parts or any(v is None for v in values)
            ):
                setattr(total, f.name, None)
            else:
                setattr(total, f.name, sum(values))
        for p in parts:
            if p.status is not Status.SUCCESS:
                total.status = p.status
        return total

    def as_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["status"] = self.status.name
        return d


@dataclass(frozen=True)
class Solution:
    """A solved trajectory.

    Attributes:
        ts: ``(T,)`` output times.
        ys: ``(T, *y0.shape)`` states at ``ts`` (time-first, like torchdiffeq).
        stats: the solve's :class:`SolverStats`; ``nfe_backward`` is filled in when the
            backward pass runs.
    """

    ts: torch.Tensor
    ys: torch.Tensor
    stats: SolverStats = field(default_factory=SolverStats)

    @property
    def status(self) -> Status:
        return self.stats.status

    @property
    def y_final(self) -> torch.Tensor:
        """The state at the last output time, ``ys[-1]``."""
        return self.ys[-1]

    @property
    def y1(self) -> torch.Tensor:
        """Deprecated name of :attr:`y_final` (it is not ``y(1)``)."""
        warnings.warn(
            "Solution.y1 is deprecated; use Solution.y_final (the state at ts[-1])", DeprecationWarning, stacklevel=2
        )
        return self.ys[-1]
