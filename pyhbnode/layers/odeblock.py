"""``ODEBlock``: a continuous-depth layer (the ResNet-style use of a neural ODE)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from ..checks import check_callable, check_real, describe
from ..solving import Solution, SolverOptions, odeint
from ..solving.options import solver_argument
from ..solving.validation import reraise_field_failure

__all__ = ["ODEBlock"]


class ODEBlock(nn.Module):
    """Integrate ``field`` from ``t0`` to ``t1`` and return the final state.

    Args:
        field: a vector field (``forward(t, y)``), e.g. :class:`~pyhbnode.HBNODE`.  A field with
            ``check_start(t0, name)`` may refuse the interval (NesterovNODE needs ``t0 > 0``);
            one with ``readout(ts, ys)`` has it applied to every output time after the first.
        t0, t1: integration interval (``t0 < t1``), in the field's time units.
        solver: a :class:`SolverOptions`; keywords that are its fields (``backend``,
            ``rtol``, ``atol``, ``tol``, ``adjoint``, ``compile``, ...) override it;
            ``adjoint`` and ``controller`` take objects (``Checkpointed(8)``,
            ``HairerController()``) or their aliases.

    ``forward(y0)``: ``y0`` ``(batch, *state)`` -> ``y(t1)`` of the same shape (read out).  The
    block keeps no statistics: wrap the code to measure in ``with pyhbnode.record() as rec:``
    and read ``rec.stats`` (forward and, once ``backward()`` ran, backward NFE).
    """

    def __init__(
        self,
        field: nn.Module,
        t0: float = 0.0,
        t1: float = 1.0,
        *,
        solver: SolverOptions | None = None,
        **solver_options: Any,
    ) -> None:
        super().__init__()
        check_callable("field", field, what="a vector field (an nn.Module with forward(t, y))")
        t0, t1 = check_real("t0", t0), check_real("t1", t1)
        if not t1 > t0:
            raise ValueError(f"need t0 < t1, got t0={t0}, t1={t1}")
        self.options = solver_argument(solver, solver_options, where="ODEBlock")
        check_start(field, t0, "t0")
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
        elif isinstance(t, torch.Tensor) and t.numel():
            check_start(self.field, float(t.min()), "t (the output times' smallest)")
        try:
            sol = odeint(self.field, y0, t, solver=self.options)
        except Exception as err:
            reraise_field_failure(self.field, t[0] if isinstance(t, torch.Tensor) else None, y0, err)
        return read_out(self.field, sol)

    def forward(self, y0: torch.Tensor) -> torch.Tensor:
        return self.solve(y0).y_final

    def extra_repr(self) -> str:
        o = self.options
        return (
            f"t=[{self.t0:g}, {self.t1:g}], backend={o.backend}, rtol={o.rtol:g}, atol={o.atol:g}, "
            f"adjoint={o.as_dict()['adjoint']}"
        )


def check_start(field: nn.Module, t0: float, name: str) -> None:
    """Let ``field`` refuse an interval starting at ``t0`` (NesterovNODE's singular ``k(0)``)."""
    check = getattr(field, "check_start", None)
    if check is not None:
        check(t0, name)


def read_out(field: nn.Module, sol: Solution) -> Solution:
    """``sol`` with ``field.readout`` applied to every output time but the initial one (the
    authors' convention), sharing ``sol.stats`` so the backward NFE still lands there."""
    readout = getattr(field, "readout", None)
    if readout is None or sol.ys.shape[0] < 2:
        return sol
    tail = sol.ys[1:]
    mapped = readout(sol.ts[1:], tail)
    if mapped is tail:
        return sol
    return dataclasses.replace(sol, ys=torch.cat([sol.ys[:1], mapped]))
