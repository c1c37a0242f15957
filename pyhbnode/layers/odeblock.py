"""``ODEBlock``: a continuous-depth layer (the ResNet-style use of a neural ODE)."""
from __future__ import annotations

import torch
from torch import nn

from ..solving import Solution, SolverOptions, SolverStats, odeint
from .stats_log import StatsLog

__all__ = ["ODEBlock"]


class ODEBlock(nn.Module):
    """Integrate ``field`` from ``t0`` to ``t1`` and return the final state.

    Args:
        field: a vector field (``forward(t, y)``), e.g. :class:`~pyhbnode.HBNODE`.
        t0, t1: integration interval (``t0 < t1``), in the field's time units.
        options: solver options; keywords (``backend``, ``rtol``, ``atol``, ``tol``,
            ``adjoint``, ``method``, ``seminorm``, ``max_steps``, ``controller``) override them;
            ``adjoint`` and ``controller`` take objects (``Checkpointed(8)``,
            ``HairerController()``) or their aliases.

    ``forward(y0)``: ``y0`` ``(batch, *state)`` -> ``y(t1)`` of the same shape.
    ``stats``: the summed :class:`SolverStats` of every call since :meth:`reset_stats`
    (backward NFE filled in as ``backward()`` runs), so a block called twice in one forward
    reports both solves.  For the statistics of one piece of code, wrap it in
    ``with pyhbnode.record() as rec:`` and read ``rec.stats``.
    """

    def __init__(
        self, field: nn.Module, t0: float = 0.0, t1: float = 1.0, *,
        options: SolverOptions | None = None, **solver_kwargs,
    ) -> None:
        super().__init__()
        if not t1 > t0:
            raise ValueError(f"need t0 < t1, got t0={t0}, t1={t1}")
        self.field = field
        self.t0, self.t1 = float(t0), float(t1)
        self.options = SolverOptions.from_kwargs(options, **solver_kwargs)
        self._log = StatsLog()

    @property
    def order(self) -> int:
        return getattr(self.field, "order", 1)

    @property
    def stats(self) -> SolverStats:
        return self._log.total

    def reset_stats(self) -> None:
        """Forget the statistics of the calls so far."""
        self._log.reset()

    def solve(self, y0: torch.Tensor, t: torch.Tensor | None = None) -> Solution:
        """The full :class:`Solution` at ``t`` (default ``[t0, t1]``)."""
        if t is None:
            t = torch.tensor([self.t0, self.t1], dtype=y0.dtype, device=y0.device)
        sol = odeint(self.field, y0, t, options=self.options)
        self._log.add(sol.stats)
        return sol

    def forward(self, y0: torch.Tensor) -> torch.Tensor:
        return self.solve(y0).y1

    def extra_repr(self) -> str:
        o = self.options
        return f"t=[{self.t0:g}, {self.t1:g}], backend={o.backend}, rtol={o.rtol:g}, atol={o.atol:g}, adjoint={o.adjoint.spec()}"
