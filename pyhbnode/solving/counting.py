"""The vector-field wrapper that every Python-side backend solves through.

It is where forward and backward NFE are born, and where a blow-up, a wrong output shape or
a runaway step count is caught while it happens rather than after the solve returns NaN.
"""
from __future__ import annotations

import torch
from torch import nn

from .errors import MaxStepsExceeded, NonFiniteState
from .solution import SolverStats

__all__ = ["CountingField"]


class CountingField(nn.Module):
    """Wrap ``field`` and count its evaluations into ``stats``.

    ``phase`` is ``"forward"`` until the backend calls :meth:`start_backward`; every
    evaluation after that counts as backward NFE.  ``nfe_limit`` caps the evaluations of
    each phase (``max_steps`` times the method's evaluations per step, plus start-up).
    """

    def __init__(self, field: nn.Module, stats: SolverStats, nfe_limit: int) -> None:
        super().__init__()
        self.field = field
        self.stats = stats
        self.nfe_limit = nfe_limit
        self.phase = "forward"
        self.t_last: torch.Tensor | None = None  # kept as a tensor: no device sync per call
        self._checked_shape = False

    @property
    def time_reached(self) -> float | None:
        return None if self.t_last is None else float(self.t_last.detach())

    def start_backward(self) -> None:
        self.phase = "backward"

    def _fail(self, cls, what: str, t: torch.Tensor) -> None:
        raise cls(
            what, phase=self.phase, t=float(t.detach()), nfe_forward=self.stats.nfe_forward,
            nfe_backward=self.stats.nfe_backward,
        )

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        stats = self.stats
        if self.phase == "forward":
            stats.nfe_forward += 1
            n = stats.nfe_forward
        else:
            stats.nfe_backward += 1
            n = stats.nfe_backward
        if n > self.nfe_limit:
            self._fail(MaxStepsExceeded, f"more than {self.nfe_limit} function evaluations", t)
        self.t_last = t
        dy = self.field(t, y)
        if not self._checked_shape:
            if not isinstance(dy, torch.Tensor) or dy.shape != y.shape:
                got = tuple(dy.shape) if isinstance(dy, torch.Tensor) else type(dy).__name__
                raise ValueError(
                    f"the vector field returned {got} for a state of shape {tuple(y.shape)}; "
                    "forward(t, y) must return dy/dt with the shape of y"
                )
            self._checked_shape = True
        if not bool(torch.isfinite(dy).all()):
            what = "the state" if not bool(torch.isfinite(y).all()) else "the vector field"
            self._fail(NonFiniteState, f"non-finite values in {what}", t)
        return dy
