"""The native PyTorch backend, registered as ``backend="torch"``."""
from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ...adjoints import Adjoint, Backsolve, Checkpointed, Direct
from ...controllers import IController
from ...options import SolverOptions
from ...solution import SolverStats, Status
from ...validation import reraise_field_failure
from ..base import Backend
from .backsolve import backsolve_backward
from .checkpointed import checkpointed_backward
from .compiled import AUTO_AFTER_ATTEMPTS, Programs, programs_for
from .dopri5 import SMALL, Dopri5
from .forward import Checkpoints, Trajectory
from .integrate import Counter
from .problem import Problem
from .tableau import DOPRI5, DOPRI5_SHAMPINE

__all__ = ["TorchBackend"]

_TABLEAUS = {"shampine": DOPRI5_SHAMPINE, "dp": DOPRI5}


class TorchBackend(Backend):
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

    ``compile`` (``SolverOptions.compile``, else this backend's ``compile``): ``True`` runs
    the forward step attempts and the ``Checkpointed`` backward's per-step VJP as compiled
    programs (:mod:`.compiled`: compiled once per field classes, state shape, dtype and
    device, see :func:`~.compiled.compile_times`; one warning and eager steps where
    compiling fails); ``False`` steps eagerly; ``None`` (default) compiles small states
    (at most :data:`~.dopri5.SMALL` elements) on the CPU once eager solving has made
    :data:`~.compiled.AUTO_AFTER_ATTEMPTS` step attempts on that key — where it was measured
    faster.
    """

    name = "native"
    methods = ("dopri5",)
    takes_controllers = True
    takes_compile = True

    def __init__(self, compile: bool | None = None) -> None:
        if compile is not None and not isinstance(compile, bool):
            raise ValueError(f"compile must be True, False or None, got {compile!r}")
        self.compile = compile

    @property
    def modes(self):
        return dict.fromkeys((Checkpointed, Backsolve, Direct), self._solve)

    def _solve(
        self, field: nn.Module, y0: torch.Tensor, t: torch.Tensor, options: SolverOptions, stats: SolverStats
    ) -> torch.Tensor:
        if t.requires_grad:
            raise ValueError(
                "backend 'torch' computes no gradient with respect to the time grid t; "
                "pass t.detach() (or use backend='torchdiffeq')"
            )
        times = t.tolist()
        direction = 1.0 if times[-1] > times[0] else -1.0
        params = tuple(p for p in field.parameters() if p.requires_grad) if isinstance(field, nn.Module) else ()
        controller = options.controller or IController()
        method = Dopri5(_TABLEAUS[controller.embedded], rtol=float(options.rtol), atol=float(options.atol),
                        estimate_error=controller.adaptive)
        prob = Problem(
            field=field, params=params, times=[direction * x for x in times], direction=direction,
            shape=y0.shape, dtype=y0.dtype, device=y0.device, method=method, controller=controller,
            max_steps=options.max_steps, seminorm=True if options.seminorm is None else bool(options.seminorm),
            stats=stats,
        )
        adjoint = options.adjoint
        needs_grad = torch.is_grad_enabled() and (y0.requires_grad or bool(params))
        compile = self.compile if options.compile is None else options.compile
        account = None  # the auto policy's Programs, while it still steps eagerly
        if isinstance(field, nn.Module) and not isinstance(adjoint, Direct) and \
                (compile or (compile is None and y0.device.type == "cpu" and y0.numel() <= SMALL)):
            programs = programs_for(field, method, y0.shape, y0.dtype, y0.device, direction)
            if compile or programs.eager_attempts >= AUTO_AFTER_ATTEMPTS:
                prob.programs = programs
            else:
                account = programs
        try:
            if not needs_grad:
                with torch.no_grad():
                    out = torch.stack(prob.solve(y0, record=None))
            elif isinstance(adjoint, Direct):
                out = torch.stack(prob.solve(y0, record=None))
                # The package's convention (shared with the torchdiffeq backend): backprop counts
                # one evaluation per forward evaluation.
                recorded = stats.nfe_forward

                def _count(grad: torch.Tensor) -> None:
                    stats.nfe_backward += recorded
                    stats.steps_backward = 0

                out.register_hook(_count)
            else:
                out = _NativeSolve.apply(prob, adjoint, account, y0, *params)
        except (RuntimeError, TypeError, AttributeError) as err:
            # a later evaluation returned something the stepper cannot use (the first one is
            # checked up front): evaluate once more, on the failure path only, and name it
            reraise_field_failure(field, t[0], y0.detach(), err)
        if account is not None:
            account.eager_attempts += stats.steps or 0
        stats.status = Status.SUCCESS
        return out


class _NativeSolve(torch.autograd.Function):
    """``apply(problem, adjoint, account, y0, *params) -> ys`` ``(T, *y0.shape)``: the
    forward solve without a graph; ``backward`` runs the gradient mode (and adds its step
    attempts to ``account``, the auto compile policy's :class:`~.compiled.Programs`, unless
    ``None``).  Errors of the backward pass are
    :class:`~pyhbnode.solving.errors.SolverError` with ``phase="backward"``."""

    @staticmethod
    def forward(ctx, prob: Problem, adjoint: Adjoint, account: Programs | None, y0: torch.Tensor,
                *params: torch.Tensor) -> torch.Tensor:
        record = Trajectory(checkpoints=Checkpoints(adjoint.max_checkpoints)) \
            if isinstance(adjoint, Checkpointed) else None
        out = torch.stack(prob.solve(y0.detach(), record=record))
        ctx.prob, ctx.adjoint, ctx.account = prob, adjoint, account
        if isinstance(adjoint, Backsolve):
            ctx.save_for_backward(out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):
        prob: Problem = ctx.prob
        counter = Counter()
        try:
            with torch.enable_grad():
                if isinstance(ctx.adjoint, Backsolve):
                    gy0, gparams = backsolve_backward(prob, ctx.saved_tensors[0].detach(), g, counter)
                else:
                    gy0, gparams = checkpointed_backward(prob, g, counter)
        finally:
            stats = prob.stats
            stats.nfe_backward += counter.nfe
            stats.steps_backward = (stats.steps_backward or 0) + counter.attempts
            if ctx.account is not None:
                ctx.account.eager_attempts += counter.attempts
        gparams = tuple(x.detach() for x in gparams) if gparams else (None,) * len(prob.params)
        return (None, None, None, gy0.detach(), *gparams)
