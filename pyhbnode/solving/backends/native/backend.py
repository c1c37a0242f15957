"""The native PyTorch backend, registered as ``backend="torch"``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ...adjoints import Adjoint, Backsolve, Checkpointed, Direct
from ...controllers import IController
from ...options import SolverOptions
from ...solution import SolverStats, Status
from ...validation import reraise_field_failure
from ..base import Backend, GradientMode
from .backsolve import backsolve_backward
from .checkpointed import checkpointed_backward
from .decide import decide_compile
from .dopri5 import Dopri5
from .forward import Checkpoints, Trajectory
from .integrate import Counter
from .problem import Problem
from .tableau import DOPRI5, DOPRI5_SHAMPINE

__all__ = ["NativeBackend"]

_TABLEAUS = {"shampine": DOPRI5_SHAMPINE, "dp": DOPRI5}


class NativeBackend(Backend):
    """Dormand–Prince 5(4) in plain PyTorch, with three gradient modes.

    ``adjoint`` (see :mod:`pyhbnode.solving.adjoints`): ``Checkpointed()`` (default: the
    exact gradient of the discrete solve, one state per step), ``Backsolve()``,
    ``Direct()``.  ``Interpolating()`` is not offered (README, "Gradient modes").

    ``seminorm=True`` (``None`` means True) leaves the parameters' adjoint out of the
    backward step control of ``Backsolve`` (Kidger et al. 2021).  It is safe whenever the
    loss reaches the parameters through the state: the parameters' adjoint is a quadrature
    of ``a ∂f/∂θ`` that never feeds back into the solve, so controlling ``a`` (and ``y``)
    controls its integrand.  It stops being safe when ``a`` is far below ``atol``, e.g. a
    loss scaled down by many orders of magnitude.

    ``controller`` (:mod:`pyhbnode.solving.controllers`): ``IController()`` by default
    (torchdiffeq's rule and error weights, so both backends take the same steps); the
    controller's ``embedded`` picks the DP5 pair's error estimator.

    Statistics: ``nfe_forward`` counts every field evaluation of the forward solve
    including the 2 start-up ones (the initial derivative and Hairer's initial-step probe),
    ``steps/accepted/rejected`` the forward step attempts, ``nfe_backward`` one per
    vector–Jacobian product of the field (for ``Direct``: equal to ``nfe_forward``, the
    package's convention for backprop through the solver), ``steps_backward`` the backward
    step attempts (replayed steps for ``Checkpointed``, 0 for ``Direct``).

    ``compile`` (``SolverOptions.compile``): ``True`` runs the forward step attempts and the
    ``Checkpointed`` backward's per-step VJP as compiled programs (:mod:`.compiled`: compiled
    once per field classes, state shape, dtype and device, see
    :func:`~.compiled.compile_times`; one warning and eager steps where compiling fails);
    ``False`` steps eagerly; ``"auto"`` (default) decides per solve by
    :func:`~.decide.decide_compile` — a single solve steps eagerly, ``fit`` decides for a
    whole run from its iterations, state size and device.

    Gradient modes are objects (:attr:`modes`): each supported
    :class:`~pyhbnode.solving.adjoints.Adjoint` class maps to the method that solves with it.
    """

    name = "native"
    methods = ("dopri5",)
    takes_controllers = True
    takes_compile = True

    def __init__(self) -> None:
        self._modes: dict[type[Adjoint], GradientMode] = {
            Checkpointed: self._checkpointed,
            Backsolve: self._backsolve,
            Direct: self._direct,
        }

    @property
    def modes(self) -> dict[type[Adjoint], GradientMode]:
        return self._modes

    def _checkpointed(
        self, field: nn.Module, y0: torch.Tensor, t: torch.Tensor, options: SolverOptions, stats: SolverStats
    ) -> torch.Tensor:
        assert isinstance(options.adjoint, Checkpointed)  # solve() dispatched on its type
        limit = options.adjoint.max_checkpoints
        return self._run(
            field,
            y0,
            t,
            options,
            stats,
            compiled=True,
            differentiate=lambda prob, y0, params: _NativeSolve.apply(
                prob, lambda: Trajectory(checkpoints=Checkpoints(limit)), _replay, False, y0, *params
            ),
        )

    def _backsolve(
        self, field: nn.Module, y0: torch.Tensor, t: torch.Tensor, options: SolverOptions, stats: SolverStats
    ) -> torch.Tensor:
        return self._run(
            field,
            y0,
            t,
            options,
            stats,
            compiled=True,
            differentiate=lambda prob, y0, params: _NativeSolve.apply(
                prob, _nothing, backsolve_backward, True, y0, *params
            ),
        )

    def _direct(
        self, field: nn.Module, y0: torch.Tensor, t: torch.Tensor, options: SolverOptions, stats: SolverStats
    ) -> torch.Tensor:
        def differentiate(prob: Problem, y0: torch.Tensor, params: tuple) -> torch.Tensor:
            out = torch.stack(prob.solve(y0, keep=None))
            # The package's convention (shared with the torchdiffeq backend): backprop counts
            # one evaluation per forward evaluation.
            recorded = stats.nfe_forward

            def _count(grad: torch.Tensor) -> None:
                stats.nfe_backward += recorded
                stats.steps_backward = 0

            out.register_hook(_count)
            return out

        # backprop through the steps: the compiled attempt has no graph to backprop through
        return self._run(field, y0, t, options, stats, compiled=False, differentiate=differentiate)

    def _run(
        self,
        field: nn.Module,
        y0: torch.Tensor,
        t: torch.Tensor,
        options: SolverOptions,
        stats: SolverStats,
        *,
        compiled: bool,
        differentiate: Callable[[Problem, torch.Tensor, tuple], torch.Tensor],
    ) -> torch.Tensor:
        """The solve every gradient mode shares; ``differentiate(problem, y0, params)`` is the
        mode's differentiable solve, used when a gradient is needed; ``compiled``: whether the
        mode can use compiled programs."""
        if t.requires_grad:
            raise ValueError(
                "backend 'torch' computes no gradient with respect to the time grid t; "
                "pass t.detach() (or use backend='torchdiffeq')"
            )
        times = t.tolist()
        direction = 1.0 if times[-1] > times[0] else -1.0
        params = tuple(p for p in field.parameters() if p.requires_grad) if isinstance(field, nn.Module) else ()
        assert not isinstance(
            options.controller, str
        )  # parsed by SolverOptions; the field's type is what the constructor accepts
        controller = options.controller or IController()
        method = Dopri5(
            _TABLEAUS[controller.embedded],
            rtol=float(options.rtol),
            atol=float(options.atol),
            estimate_error=controller.adaptive,
        )
        prob = Problem(
            field=field,
            params=params,
            times=[direction * x for x in times],
            direction=direction,
            shape=y0.shape,
            dtype=y0.dtype,
            device=y0.device,
            method=method,
            controller=controller,
            max_steps=options.max_steps,
            seminorm=True if options.seminorm is None else bool(options.seminorm),
            stats=stats,
        )
        compile = options.compile
        if compile == "auto":
            compile = decide_compile(field, y0, y0.device, iterations=1)
        if compile and compiled and isinstance(field, nn.Module):
            from .compiled import programs_for  # torch's compiler is imported once a compile is decided

            prob.programs = programs_for(field, method, y0.shape, y0.dtype, y0.device, direction)
        try:
            if torch.is_grad_enabled() and (y0.requires_grad or bool(params)):
                out = differentiate(prob, y0, params)
            else:
                with torch.no_grad():
                    out = torch.stack(prob.solve(y0, keep=None))
        except (RuntimeError, TypeError, AttributeError) as err:
            # a later evaluation returned something the stepper cannot use (the first one is
            # checked up front): evaluate once more, on the failure path only, and name it
            reraise_field_failure(field, t[0], y0.detach(), err)
        stats.status = Status.SUCCESS
        return out


def _nothing() -> None:
    """Backsolve keeps no trajectory: it re-integrates the state backward."""
    return None


def _replay(prob: Problem, ys: None, g: torch.Tensor, counter: Counter):
    """Checkpointed's backward: replay the kept steps (it needs no forward outputs)."""
    return checkpointed_backward(prob, g, counter)


class _NativeSolve(torch.autograd.Function):
    """``apply(problem, keep, backward, needs_ys, y0, *params) -> ys`` ``(T, *y0.shape)``: the
    forward solve without a graph, keeping the trajectory ``keep()`` makes (or none);
    ``backward(problem, ys, g, counter) -> (dL/dy0, (dL/dθ_i)_i)`` is the gradient mode's
    backward pass, given the forward states ``ys`` where ``needs_ys`` (else ``None``: keeping
    them alive through backward would cost a state per output).  Errors of the backward pass are
    :class:`~pyhbnode.solving.errors.SolverError` with ``phase="backward"``."""

    @staticmethod
    def forward(
        ctx,
        prob: Problem,
        keep: Callable[[], Trajectory | None],
        backward: Callable,
        needs_ys: bool,
        y0: torch.Tensor,
        *params: torch.Tensor,
    ) -> torch.Tensor:
        out = torch.stack(prob.solve(y0.detach(), keep=keep()))
        ctx.prob, ctx.backward, ctx.needs_ys = prob, backward, needs_ys
        if needs_ys:
            ctx.save_for_backward(out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):
        prob: Problem = ctx.prob
        counter = Counter()
        try:
            with torch.enable_grad():
                ys = ctx.saved_tensors[0].detach() if ctx.needs_ys else None
                gy0, gparams = ctx.backward(prob, ys, g, counter)
        finally:
            stats = prob.stats
            stats.nfe_backward += counter.nfe
            stats.steps_backward = (stats.steps_backward or 0) + counter.attempts
        gparams = tuple(x.detach() for x in gparams) if gparams else (None,) * len(prob.params)
        return (None, None, None, None, gy0.detach(), *gparams)
