"""One native solve's inputs, shared by the forward solve and the gradient modes."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import TYPE_CHECKING

import torch
from torch import nn

from ...controllers import Controller
from ...errors import SolverError
from ...solution import SolverStats
from .dopri5 import Dopri5
from .field import row_field
from .forward import Trajectory, solve_forward
from .integrate import Counter, StepFailure

if TYPE_CHECKING:  # torch's compiler is imported only once a compile is decided
    from .compiled import Programs

__all__ = ["Problem"]


@dataclass
class Problem:
    """A solve of ``field`` over the grid ``times`` (in ``s = direction · t``, increasing).

    Attributes:
        method: the step method (its tolerances are the solve's).
        controller: the controller template (each solve, forward or backward, starts a copy).
        seminorm: leave the parameters' adjoint out of the backward step control.
        trajectory: the forward's accepted steps, when the gradient mode needs them.
        programs: the compiled attempt and step VJP (:mod:`.compiled`) to use, or ``None``
            (eager steps).
    """

    field: nn.Module
    params: tuple[torch.Tensor, ...]
    times: list[float]
    direction: float
    shape: torch.Size
    dtype: torch.dtype
    device: torch.device
    method: Dopri5
    controller: Controller
    max_steps: int
    seminorm: bool
    stats: SolverStats
    trajectory: Trajectory | None = dc_field(default=None)
    programs: Programs | None = dc_field(default=None)

    def rhs(self):
        """``(first, rhs)`` of the field on rows, in ``s`` (see :func:`~.field.row_field`)."""
        return row_field(self.field, self.shape, self.dtype, self.device, self.direction)

    def fail(self, f: StepFailure, phase: str, backward_nfe: int = 0) -> SolverError:
        """The public error for a loop failure; ``s`` is in the phase's variable (the
        backward solve runs in ``-s``)."""
        s = f.s if phase == "forward" else -f.s
        stats = self.stats
        if phase == "forward":
            stats.status = f.kind.status
        return f.kind(
            f.what,
            phase=phase,
            t=self.direction * s,
            dt=f.h,
            nfe_forward=stats.nfe_forward,
            nfe_backward=stats.nfe_backward + backward_nfe,
        )

    def fail_backward(self, kind: type[SolverError], what: str, s: float, counter: Counter) -> SolverError:
        """The public error for a failure of the backward pass at ``s`` (forward variable)."""
        stats = self.stats
        return kind(
            what,
            phase="backward",
            t=self.direction * s,
            nfe_forward=stats.nfe_forward,
            nfe_backward=stats.nfe_backward + counter.nfe,
        )

    def solve(self, y0: torch.Tensor, keep: Trajectory | None) -> list[torch.Tensor]:
        """Solve forward from ``y0``; the states at ``times`` shaped like ``y0``; with
        ``keep``, the accepted steps are kept there (and in ``self.trajectory``) for the
        gradient mode's backward pass."""
        counter = Counter()
        first, rhs = self.rhs()
        method = self.method
        if self.programs is not None and not torch.is_grad_enabled():
            from .compiled import CompiledDopri5

            method = CompiledDopri5(method, self.programs, self.field)
        try:
            ys = solve_forward(
                method,
                rhs,
                y0,
                self.times,
                controller=self.controller.start(self.method.tableau.order),
                counter=counter,
                max_steps=self.max_steps,
                trajectory=keep,
                first=first,
            )
        except StepFailure as f:
            self._store(counter)
            raise self.fail(f, "forward") from None
        finally:
            self._store(counter)
        self.trajectory = keep
        return [y.view(self.shape) for y in ys]

    def _store(self, counter: Counter) -> None:
        stats = self.stats
        stats.nfe_forward = counter.nfe
        stats.steps, stats.accepted, stats.rejected = counter.attempts, counter.accepted, counter.rejected
