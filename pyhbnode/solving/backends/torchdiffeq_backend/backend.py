"""The ``torchdiffeq`` backend: torchdiffeq's solvers, ``odeint`` and ``odeint_adjoint``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ...adjoints import Adjoint, Backsolve, Checkpointed, Direct
from ...errors import MaxStepsExceeded, NonFiniteState, SolverFailure, StepSizeUnderflow
from ...solution import SolverStats, Status
from ..base import Backend, GradientMode
from .counting import CountingField

if TYPE_CHECKING:
    from ...options import SolverOptions

__all__ = ["TorchDiffEqBackend"]

# Field evaluations per step attempt; with FSAL, dopri5 costs 6 per step plus 2 at start-up.
EVALS_PER_STEP = {
    "dopri5": 6,
    "bosh3": 3,
    "fehlberg2": 3,
    "adaptive_heun": 2,
    "dopri8": 13,
    "euler": 1,
    "midpoint": 2,
    "heun3": 3,
    "rk4": 4,
}
ADAPTIVE = {"dopri5", "bosh3", "fehlberg2", "adaptive_heun", "dopri8"}


class TorchDiffEqBackend(Backend):
    """torchdiffeq's integrators behind the package's ``odeint``, with three gradient modes.

    ``adjoint``:

    * ``"checkpointed"`` (default, as on every backend) — the forward solve runs without a
      graph; the first backward pass through it replays the solve once from ``y0`` under
      autograd (same steps, same operations: the field must be deterministic given the
      random state, which is restored for the replay) and backpropagates through the replay.
      The gradient is exactly ``direct``'s; memory holds the replay's graph during backward
      only.  Every backward pass replays again (a ``retain_graph`` loop costs one replay each).
    * ``"backsolve"`` — torchdiffeq's ``odeint_adjoint``: the continuous adjoint, the state
      re-integrated backward, one torchdiffeq solve per output interval; O(1) memory.
    * ``"direct"`` — ``torchdiffeq.odeint`` under autograd: backprop through every operation.

    ``"interpolating"`` needs the native solver's dense record and is not offered here.

    Statistics: ``nfe_forward`` counts every field evaluation of the forward solve (dopri5:
    2 start-up + 6 per attempt), ``steps``/``accepted``/``rejected`` its step attempts.
    ``nfe_backward`` adds, per backward pass, one per vector-Jacobian product of the field:
    for ``backsolve`` each evaluation of the augmented dynamics (one field evaluation + one VJP,
    counted as it happens); for ``checkpointed`` each replayed evaluation (its backprop is one
    VJP), so one pass adds ``nfe_forward``; for ``direct`` the package's convention for backprop
    through the solver, ``nfe_forward`` per pass.  ``steps_backward`` counts the backward
    attempts (the replay's for ``checkpointed``; 0 for ``direct``).

    ``max_steps`` is the step-attempt budget of each pass over the whole pass, as on the native
    backend, not torchdiffeq's per-interval ``max_num_steps``; the backward solve of ``backsolve``
    (a fresh solve per output interval) gets one extra attempt per interval, so a grid with more
    intervals than ``max_steps`` still differentiates.  A step size at the float64 floor raises
    :class:`StepSizeUnderflow`, a pace that cannot finish within the budget raises
    :class:`MaxStepsExceeded` early (see
    :mod:`pyhbnode.solving.backends.torchdiffeq_backend.counting`).  Time grids may be increasing or
    decreasing (integration backward in time), with gradients in every mode.
    """

    name = "torchdiffeq"
    methods = tuple(EVALS_PER_STEP)

    def __init__(self) -> None:
        self._modes: dict[type[Adjoint], GradientMode] = {
            mode: _counted(run)
            for mode, run in ((Direct, _direct), (Backsolve, _backsolve), (Checkpointed, _checkpointed))
        }

    @property
    def modes(self) -> dict[type[Adjoint], GradientMode]:
        return self._modes


class _Run:
    """One solve: the counted field, its trainable parameters and torchdiffeq's settings."""

    def __init__(
        self, field: nn.Module, y0: torch.Tensor, t: torch.Tensor, options: SolverOptions, stats: SolverStats
    ) -> None:
        self.counted = CountingField(field, stats, t, options.max_steps, adaptive=options.method in ADAPTIVE)
        self.params = tuple(p for p in field.parameters() if p.requires_grad) if isinstance(field, nn.Module) else ()
        self.common = dict(rtol=options.rtol, atol=options.atol, method=options.method, options={})
        self.y0, self.t, self.options, self.stats = y0, t, options, stats
        self.needs_grad = torch.is_grad_enabled() and (y0.requires_grad or t.requires_grad or bool(self.params))


def _counted(mode: Callable[[_Run], torch.Tensor]) -> GradientMode:
    """A gradient mode of this backend: count, solve (without a graph when none is needed),
    check the solution."""

    def solve(
        field: nn.Module, y0: torch.Tensor, t: torch.Tensor, options: SolverOptions, stats: SolverStats
    ) -> torch.Tensor:
        run = _Run(field, y0, t, options, stats)
        ys = mode(run) if run.needs_grad else _direct(run)
        _check_finite_solution(ys, t, run.counted)
        stats.status = Status.SUCCESS
        run.counted.begin_pass("backward")
        return ys

    return solve


def _direct(run: _Run) -> torch.Tensor:
    import torchdiffeq

    ys = _integrate(torchdiffeq.odeint, run.counted, run.y0, run.t, run.common)
    if ys.requires_grad:
        stats, recorded = run.stats, run.stats.nfe_forward

        def _count_backward(grad: torch.Tensor) -> None:
            stats.nfe_backward += recorded
            stats.steps_backward = 0

        ys.register_hook(_count_backward)
    return ys


def _backsolve(run: _Run) -> torch.Tensor:
    import torchdiffeq

    o = run.options
    adjoint_options = {"norm": "seminorm"} if o.seminorm else {}
    ys = _integrate(
        torchdiffeq.odeint_adjoint,
        run.counted,
        run.y0,
        run.t,
        dict(
            run.common,
            adjoint_rtol=o.rtol,
            adjoint_atol=o.atol,
            adjoint_options=adjoint_options,
            adjoint_params=run.params,
        ),
    )
    counted = run.counted
    # runs as the backward pass reaches ys, before odeint_adjoint's backward solve
    ys.register_hook(lambda grad: counted.begin_pass("backward", restarts_per_interval=True))
    return ys


def _checkpointed(run: _Run) -> torch.Tensor:
    import torchdiffeq

    counted, common = run.counted, run.common

    def replay(y: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        return _integrate(torchdiffeq.odeint, counted, y, times, common)

    return _ReplayOnce.apply(replay, counted, run.y0, run.t, *run.params)


def _integrate(solver: Callable, counted: CountingField, y0: torch.Tensor, t: torch.Tensor, kwargs: dict):
    """Run a torchdiffeq entry point; its assertion failures come out as our typed errors."""
    try:
        return solver(counted, y0, t, **kwargs)
    except AssertionError as err:  # torchdiffeq reports solver failures by assert
        msg = str(err)
        if "underflow in dt" in msg:
            raise counted.error(StepSizeUnderflow, f"step size underflow (torchdiffeq: {msg})") from err
        if "max_num_steps" in msg:
            raise counted.error(MaxStepsExceeded, f"max_steps exceeded (torchdiffeq: {msg})") from err
        if "non-finite" in msg:
            raise counted.error(NonFiniteState, "non-finite values in the state y") from err
        raise counted.error(SolverFailure, f"torchdiffeq failed: {msg}") from err


def _check_finite_solution(ys: torch.Tensor, t: torch.Tensor, counted: CountingField) -> None:
    """Every evaluation was finite, but the dense output between steps can still overflow."""
    finite = torch.isfinite(ys.detach()).reshape(len(ys), -1).all(1)
    if bool(finite.all()):
        return
    i = int((~finite).nonzero()[0])
    largest = float(ys.detach()[:i].abs().max()) if i > 0 else float("nan")
    raise counted.error(
        NonFiniteState,
        f"non-finite values in the solution at output time t[{i}] though every field evaluation was "
        f"finite (largest |y| before it: {largest:.3g}; the largest {ys.dtype} is "
        f"{torch.finfo(ys.dtype).max:.3g}): the interpolated state overflows; rescale y0 or use float64",
        t=float(t[i]),
    )


class _ReplayOnce(torch.autograd.Function):
    """``adjoint="checkpointed"``: solve without a graph; in backward, replay and backprop."""

    @staticmethod
    def forward(ctx, run, counted, y0, t, *params):
        ctx.run, ctx.counted, ctx.params = run, counted, params
        ctx.rng = _rng_state(y0.device)
        ctx.save_for_backward(y0, t)
        return run(y0, t)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_ys):
        y0, t = ctx.saved_tensors
        counted: CountingField = ctx.counted
        counted.begin_pass("replay")
        need_y0, need_t = ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        y0_ = y0.detach().requires_grad_(need_y0)
        t_ = t.detach().requires_grad_(need_t)
        with torch.enable_grad(), torch.random.fork_rng(devices=_rng_devices(y0.device)):
            _set_rng_state(ctx.rng, y0.device)
            ys = ctx.run(y0_, t_)
            inputs = [x for x, need in ((y0_, need_y0), (t_, need_t)) if need]
            inputs += [p for p, need in zip(ctx.params, ctx.needs_input_grad[4:], strict=True) if need]
            # a scalar, not grad_outputs: autograd.grad's check of given output gradients imports
            # sympy (seconds, once per process); d/dys of sum(ys * grad_ys) is grad_ys exactly
            grads = iter(torch.autograd.grad((ys * grad_ys).sum(), inputs, allow_unused=True))
        out = [next(grads) if need_y0 else None, next(grads) if need_t else None]
        out += [next(grads) if need else None for need in ctx.needs_input_grad[4:]]
        for name, g in zip(("y0", "t", *(f"parameter {i}" for i in range(len(ctx.params)))), out, strict=True):
            if g is not None and not bool(torch.isfinite(g).all()):
                raise counted.error(
                    NonFiniteState,
                    f"non-finite gradient with respect to {name}: the vector-Jacobian "
                    "product of the field is NaN/Inf (is the field differentiable there? e.g. sqrt(|y|) at y = 0)",
                    t=counted.t_start,
                )
        return (None, None, *out)


def _rng_devices(device: torch.device) -> list:
    return [device] if device.type == "cuda" else []


def _rng_state(device: torch.device):
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state, device: torch.device) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)
