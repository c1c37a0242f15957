"""The vector-field wrapper that the torchdiffeq backend solves through.

It is where forward and backward NFE are born, and where a blow-up, a wrong output, a step
size that underflows or a solve that cannot finish within ``max_steps`` is caught while it
happens, with our typed errors, rather than after many seconds or as a torchdiffeq assert.

Two hooks see the solve:

* ``forward(t, y)`` — every field evaluation: counted, and its output checked (a tensor of
  ``y``'s shape, dtype and device, finite; ``y`` not modified in place).  This is the hot
  path: a few attribute compares and one ``isfinite`` reduction per evaluation.
* ``callback_step(t0, y0, dt)`` — torchdiffeq's per-attempt callback (``callback_step_adjoint``
  in ``odeint_adjoint``'s backward solve): counts step attempts against the budget, checks the
  step size against the floor and the state for finiteness, and every so often checks the pace.

Budget (one *pass* = the forward solve, or one backward pass through the solution):
``max_steps`` step attempts chosen by the step-size control, per pass, over the whole pass
(torchdiffeq's own ``max_num_steps`` counts per output interval and is not used).  Attempts the
output grid forces are not charged: a pass that restarts at every output time (the backward
solve of ``odeint_adjoint``, one torchdiffeq solve per interval) or steps on the grid (the
fixed-grid methods) gets extra attempts per output interval: 3 for a restart (its initial step
and the growth to the interval's length), 1 for a fixed-grid step.  Every backward pass starts a
fresh budget, so gradcheck, jacobians and ``retain_graph`` loops never accumulate into it.

Early stops, so that a solve that cannot make progress fails within seconds, not minutes:

* step-size floor (adaptive methods): an attempt with ``|dt| <= 4 eps |t|max`` (``eps`` of
  float64, torchdiffeq's time dtype; ``|t|max`` the largest ``|t|`` of the grid) raises
  :class:`StepSizeUnderflow` — such a step no longer moves ``t`` by a meaningful amount;
* pace: from 10 % of the budget on, every 5 % of it, the progress of the last 5 % is
  extrapolated; if the rest of the time span needs more than twice the attempts left, the
  solve raises :class:`MaxStepsExceeded` now instead of after the whole budget (raising
  ``max_steps`` raises this bar with it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ...errors import MaxStepsExceeded, NonFiniteState, SolverError, StepSizeUnderflow
from ...solution import SolverStats
from ...validation import field_output_error

__all__ = ["CountingField"]

_EPS_TIME = torch.finfo(torch.float64).eps  # torchdiffeq keeps time in float64 (adaptive methods)
_FLOOR_ULPS = 4.0
_PACE_START = 0.10  # fraction of the budget spent before the pace is judged
_PACE_EVERY = 0.05  # fraction of the budget between two pace checks (the window judged)
_PACE_MARGIN = 2.0  # abort when the rest needs more than this many times the attempts left
_MIN_WINDOW = 50
# Attempts an output interval may take free in a pass that restarts at every output time:
# the restart's initial step and its growth to the interval's length (measured on oscillators
# and HBNODEs, grids of 10 to 10,000 intervals, tol 1e-3 to 1e-8: 1 to 3 per interval).
_RESTART_ATTEMPTS = 3


class CountingField(nn.Module):
    """Wrap ``field`` for one solve over the grid ``t``; count into ``stats``.

    Args:
        field: the vector field, ``field(t, y) -> dy/dt`` (an ``nn.Module`` or a callable).
        stats: the solve's statistics; ``nfe_forward``/``steps``/``accepted``/``rejected``
            during the forward pass, ``nfe_backward``/``steps_backward`` during backward.
        t: the output grid ``(T,)`` (increasing or decreasing).
        max_steps: step attempts per pass (see the module docstring).
        adaptive: whether the method controls its step size (the floor and the pace apply).
    """

    def __init__(self, field: Callable, stats: SolverStats, t: torch.Tensor, max_steps: int, adaptive: bool) -> None:
        super().__init__()
        self.field = field
        self.stats = stats
        self.max_steps = max_steps
        self.adaptive = adaptive
        grid = t.detach().double().tolist()
        self.t_start, self.t_end = grid[0], grid[-1]
        self.intervals = len(grid) - 1
        # odeint_adjoint hands its adjoint callback the negated time when the grid decreases
        self._adjoint_time_negated = grid[-1] < grid[0]
        self.dt_floor = _FLOOR_ULPS * _EPS_TIME * max(abs(v) for v in grid)
        self.t_last: torch.Tensor | float | None = None  # a tensor in the hot path: no device sync
        self.evaluations = 0  # over the whole solve: the first one gets the friendliest diagnosis
        if adaptive:
            # torchdiffeq calls these only when the field has them; fixed-grid solvers know only
            # callback_step (and would warn about the others), so they are set per instance.
            self.callback_accept_step = self._on_accept
            self.callback_reject_step = self._on_reject
        self.begin_pass("forward")

    # -- passes -------------------------------------------------------------------------
    def begin_pass(self, phase: str, restarts_per_interval: bool = False) -> None:
        """Start the forward pass or one backward pass: a fresh attempt budget.

        ``restarts_per_interval``: the pass is one solve per output interval (``odeint_adjoint``'s
        backward), so each interval's forced first attempt is not charged."""
        self.phase = phase
        self._forward = phase == "forward"
        self.attempts = 0
        if restarts_per_interval:
            forced = _RESTART_ATTEMPTS * self.intervals
        else:
            forced = 0 if self.adaptive else self.intervals
        self.limit = self.max_steps + forced
        self._goal = self.t_end if (self._forward or phase == "replay") else self.t_start
        self._stride = max(_MIN_WINDOW, int(self.limit * _PACE_EVERY))
        # the first check only marks where the judged window starts
        self._next_check = max(self._stride, int(self.limit * _PACE_START) - self._stride)
        self._window_t: float | None = None

    @property
    def time_reached(self) -> float | None:
        t = self.t_last
        return None if t is None else float(t.detach() if isinstance(t, torch.Tensor) else t)

    def error(self, cls: type[SolverError], what: str, t: float | None = None, dt: float | None = None) -> SolverError:
        """A typed error for the current pass, with the time reached and the NFE so far."""
        return cls(
            what,
            phase="forward" if self._forward else "backward",
            t=self.time_reached if t is None else t,
            dt=dt,
            nfe_forward=self.stats.nfe_forward,
            nfe_backward=self.stats.nfe_backward,
        )

    # -- every evaluation (hot path) ----------------------------------------------------
    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self._forward:
            self.stats.nfe_forward += 1
        else:
            self.stats.nfe_backward += 1
        self.evaluations += 1
        self.t_last = t
        version = y._version
        try:
            dy = self.field(t, y)
        except (RuntimeError, IndexError) as err:
            raise self._diagnose_raise(err, y) from err
        if y._version != version:
            raise ValueError(
                self._where() + "field modified its input y in place; field(t, y) must "
                "return dy/dt as a new tensor and leave y unchanged (the solver owns y)"
            )
        if not isinstance(dy, torch.Tensor) or dy.shape != y.shape or dy.dtype != y.dtype or dy.device != y.device:
            raise self._bad_output(dy, y)
        if not bool(torch.isfinite(dy).all()):
            raise self._non_finite(t, y)
        return dy

    def _non_finite(self, t: torch.Tensor, y: torch.Tensor) -> Exception:
        if not bool(torch.isfinite(t).all()):
            # the step-size heuristic itself produced inf/NaN: tolerances the dtype cannot resolve
            return ValueError(
                f"{self._where()}the solver's step size is not finite (t = {float(t.detach())}): the "
                f"tolerances rtol/atol are outside what {y.dtype} can resolve; use values between about "
                "1e-14 and 1"
            )
        what = "the state y" if not bool(torch.isfinite(y).all()) else "the output of field(t, y)"
        return self.error(NonFiniteState, f"non-finite values in {what}")

    def _where(self) -> str:
        return f"at t = {self.time_reached:.6g} (evaluation {self.evaluations}, {self.phase} pass): "

    def _diagnose_raise(self, err: Exception, y: torch.Tensor) -> Exception:
        """A torch error raised inside the field, explained where we know the cause; else itself."""
        if "in-place operation" in str(err):
            return ValueError(
                self._where() + "field modified its input y in place "
                f"({type(err).__name__}: {err}); field(t, y) must return dy/dt as a new tensor"
            )
        if self.evaluations == 1:
            return ValueError(
                f"field raised {type(err).__name__} on its first evaluation, field(t0, y0) with y0 of shape "
                f"{tuple(y.shape)} and dtype {y.dtype}: {err}. Check that y0 has the layout the field "
                "expects (NODE/ANODE: (batch, n); SONODE/HBNODE/GHBNODE: (batch, 2, n))"
            )
        return err

    def _bad_output(self, dy: object, y: torch.Tensor) -> Exception:
        at = f" at t = {self.time_reached:.6g} (evaluation {self.evaluations}, {self.phase} pass)"
        err = field_output_error(dy, y.shape, y.dtype, y.device, at)
        assert err is not None  # asked only of an output the caller found bad
        return err

    # -- every step attempt -------------------------------------------------------------
    def callback_step(self, t0: torch.Tensor, y0, dt: torch.Tensor) -> None:
        """torchdiffeq's per-attempt callback (forward solve and the checkpointed replay)."""
        n = self.attempts = self.attempts + 1
        self.t_last = t0
        if self.adaptive:
            h = abs(float(dt.detach()))
            if not h > self.dt_floor:
                self._check_state(y0)
                raise self.error(StepSizeUnderflow, "step size underflow", t=float(t0.detach()), dt=h)
        if n > self.limit:
            raise self.error(
                MaxStepsExceeded,
                f"more than max_steps = {self.max_steps} step attempts "
                f"({self.limit} with the ones the output grid forces)",
                t=float(t0),
            )
        if n >= self._next_check:
            self._check_pace(float(t0.detach()))
        if self._forward:
            self.stats.steps = self.attempts
            if not self.adaptive:
                self.stats.accepted, self.stats.rejected = self.attempts, 0
        else:
            self.stats.steps_backward = (self.stats.steps_backward or 0) + 1

    # odeint_adjoint calls this one in its backward solve, with the augmented state tuple
    def callback_step_adjoint(self, t0: torch.Tensor, y_aug, dt: torch.Tensor) -> None:
        if self._adjoint_time_negated:
            t0 = -t0
        self._check_state(y_aug)
        self.callback_step(t0, None, dt)

    def _on_accept(self, t0, y0, dt) -> None:
        if self._forward:
            self.stats.accepted = (self.stats.accepted or 0) + 1

    def _on_reject(self, t0, y0, dt) -> None:
        if self._forward:
            self.stats.rejected = (self.stats.rejected or 0) + 1

    def _check_state(self, y0) -> None:
        parts = y0 if isinstance(y0, (tuple, list)) else (y0,)
        for i, part in enumerate(parts):
            if isinstance(part, torch.Tensor) and not bool(torch.isfinite(part).all()):
                what = (
                    "the state y"
                    if len(parts) == 1 or i == 1
                    else (
                        "the adjoint state: the vector-Jacobian product of the field is NaN/Inf "
                        "(is the field differentiable there? e.g. sqrt(|y|) at y = 0)"
                    )
                )
                raise self.error(NonFiniteState, f"non-finite values in {what}")

    def _check_pace(self, t_now: float) -> None:
        n, limit = self.attempts, self.limit
        self._next_check = n + self._stride
        previous, self._window_t = self._window_t, t_now
        if previous is None or not self.adaptive or n >= limit:
            return  # (the last attempt of the budget is left to the hard limit)
        pace = abs(t_now - previous) / self._stride  # time span per attempt, last window
        remaining = abs(self._goal - t_now)
        left = limit - n
        if remaining > _PACE_MARGIN * left * pace:
            need = "no progress" if pace == 0 else f"about {remaining / pace:.3g} more attempts"
            raise self.error(
                MaxStepsExceeded,
                f"the solve cannot finish within max_steps = {self.max_steps}: after {n} attempts, "
                f"{remaining:.3g} of the time span is left and the last {self._stride} attempts advanced "
                f"{abs(t_now - previous):.3g} ({need}, {left} left)",
                t=t_now,
            )
