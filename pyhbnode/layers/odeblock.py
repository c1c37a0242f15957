"""``ODEBlock``: a continuous-depth layer (the ResNet-style use of a neural ODE)."""
from __future__ import annotations

import torch
from torch import nn

from typing import Any

from ..solving import Solution, SolverOptions, odeint
from ..solving.options import solver_argument
from ..solving.validation import reraise_field_failure
from ..checks import check_callable, check_real, describe

__all__ = ["ODEBlock"]


class ODEBlock(nn.Module):
    """Integrate ``field`` from ``t0`` to ``t1`` and return the final state.

    Args:
        field: a vector field (``forward(t, y)``), e.g. :class:`~pyhbnode.HBNODE`.
        t0, t1: integration interval (``t0 < t1``), in the field's time units.
        solver: a :class:`SolverOptions`; keywords that are its fields (``backend``,
            ``rtol``, ``atol``, ``tol``, ``adjoint``, ``compile``, ...) override it;
            ``adjoint`` and ``controller`` take objects (``Checkpointed(8)``,
            ``HairerController()``) or their aliases.

    ``forward(y0)``: ``y0`` ``(batch, *state)`` -> ``y(t1)`` of the same shape.  The block
    keeps no statistics: wrap the code to measure in ``with pyhbnode.record() as rec:`` and
    read ``rec.stats`` (forward and, once ``backward()`` ran, backward NFE).
    """

    def __init__(
        self, field: nn.Module, t0: float = 0.0, t1: float = 1.0, *,
        solver: SolverOptions | None = None, **solver_options: Any,
    ) -> None:
        super().__init__()
        check_callable("field", field, what="a vector field (an nn.Module with forward(t, y))")
        t0, t1 = check_real("t0", t0), check_real("t1", t1)
        if not t1 > t0:
            raise ValueError(f"need t0 < t1, got t0={t0}, t1={t1}")
        self.options = solver_argument(solver, solver_options, where="ODEBlock")
        self.field = field
        self.t0, self.t1 = t0, t1

    @property
    def order(self) -> int:
        return getattr(self.field, "order", 1)

    def solve(self, y0: torch.Tensor, t: torch.Tensor | None = None) -> Solution:
        """The full :class:`Solution` at ``t`` (default ``[t0, t1]``)."""
        if not isinstance(y0, torch.Tensor):
            raise TypeError(f"y0 (the ODEBlock's input) must be a torch.Tensor, got {describe(y0)}")
        if t is None:
            t = torch.tensor([self.t0, self.t1], dtype=y0.dtype, device=y0.device)
        try:
            sol = odeint(self.field, y0, t, solver=self.options)
        except Exception as err:
            reraise_field_failure(self.field, t[0] if isinstance(t, torch.Tensor) else None, y0, err)
        return sol

    def forward(self, y0: torch.Tensor) -> torch.Tensor:
        return self.solve(y0).y_final

    def extra_repr(self) -> str:
        o = self.options
        return f"t=[{self.t0:g}, {self.t1:g}], backend={o.backend}, rtol={o.rtol:g}, atol={o.atol:g}, adjoint={o.adjoint.spec()}"
