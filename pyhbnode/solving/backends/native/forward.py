"""The forward solve over an output grid, and the record of its accepted steps.

Steps are not forced onto interior output times: those are read off the dense output (as
torchdiffeq does); the last step lands on the grid's end.  A solve runs in the variable
``s = direction · t`` with ``direction = ±1``, so that a decreasing grid is integrated with
positive steps by the same loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ...controllers import Controller
from ...errors import NonFiniteState
from .dopri5 import RHS, Dopri5
from .initial_step import initial_step
from .integrate import Counter, StepFailure, floor_step, integrate

__all__ = ["Checkpoints", "Trajectory", "solve_forward", "first_step"]


class Checkpoints:
    """States at the start of accepted steps, by step index.

    ``limit=None`` keeps every step's state; an int keeps at most that many, every
    ``stride``-th step, the stride doubling (and every other kept state dropped) when full.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.stride = 1
        self.states: dict[int, torch.Tensor] = {}

    def add(self, i: int, z: torch.Tensor) -> None:
        if i % self.stride:
            return
        if self.limit is not None and len(self.states) >= self.limit:
            self.stride *= 2
            for key in [key for key in self.states if key % self.stride]:
                del self.states[key]
            if i % self.stride:
                return
        self.states[i] = z

    def marks(self) -> list[int]:
        """The kept step indices, increasing."""
        return sorted(self.states)


@dataclass
class Trajectory:
    """The accepted steps of a forward solve, in ``s``: their starts and sizes, and the
    kept states (:class:`Checkpoints`)."""

    starts: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    checkpoints: Checkpoints = field(default_factory=Checkpoints)

    def end(self, n: int, s_final: float) -> float:
        """Where step ``n`` ends (the last one exactly on ``s_final``)."""
        return s_final if n == len(self.starts) - 1 else self.starts[n + 1]


def first_step(
    method: Dopri5,
    controller: Controller,
    rhs: RHS,
    s0: float,
    s_end: float,
    z0: torch.Tensor,
    k0: torch.Tensor,
    counter: Counter,
) -> float:
    """The controller's fixed first step, or Hairer's selection (one evaluation, counted)."""
    if controller.initial is not None:
        return controller.initial
    h_min = 10.0 * floor_step(s0, s_end, z0.dtype)
    h = initial_step(
        rhs,
        s0,
        z0,
        k0,
        order=method.tableau.order,
        rtol=method.rtol,
        atol=method.atol,
        groups=method.groups,
        h_min=min(h_min, abs(s_end - s0)),
    )
    counter.nfe += 1
    return h


def solve_forward(
    method: Dopri5,
    rhs: RHS,
    y0: torch.Tensor,
    times: list[float],
    *,
    controller: Controller,
    counter: Counter,
    max_steps: int,
    trajectory: Trajectory | None = None,
    first: RHS | None = None,
) -> list[torch.Tensor]:
    """Solve from ``y0`` at ``times[0]`` (``times`` increasing, in ``s``); states at ``times``.

    ``rhs(s, z_row) -> (f_row, None)`` evaluates the field on a row ``(1, N)`` view of the
    state; ``first`` (default ``rhs``) is used for the very first evaluation and may check
    what the field returns.  With ``trajectory`` every accepted step is recorded into it.

    Returns:
        The states at ``times`` as rows ``(1, N)``, except the first, which is ``y0`` itself.

    Raises:
        StepFailure: the loop could not go on (the caller adds the phase and NFE).
    """
    t0, t_end = times[0], times[-1]
    z = y0.reshape(1, -1)
    k, _ = (first or rhs)(t0, z)
    counter.nfe += 1
    if not bool(torch.isfinite(k).all()):
        raise StepFailure(NonFiniteState, "non-finite values in the vector field at the initial state", t0, None)
    h = first_step(method, controller, rhs, t0, t_end, z, k, counter)
    n_out = len(times)
    ys: list = [None] * n_out
    ys[0] = y0
    j = 1  # the next interior output
    for acc in integrate(method, rhs, t0, t_end, z, k, h, controller=controller, counter=counter, max_steps=max_steps):
        if trajectory is not None:
            trajectory.checkpoints.add(len(trajectory.starts), acc.z0)
            trajectory.starts.append(acc.s)
            trajectory.steps.append(acc.h)
        s1 = acc.s + acc.h
        r5 = None
        while j < n_out - 1 and times[j] <= s1:
            if times[j] == s1:
                ys[j] = acc.step.z
            else:
                if r5 is None:
                    r5 = method.r5(acc.h, acc.step)
                ys[j] = method.interpolate((times[j] - acc.s) / acc.h, acc.h, acc.z0, acc.step, r5)
            j += 1
        z = acc.step.z
        del acc, r5  # not alive through the next step
    ys[-1] = z
    return ys
