"""The native PyTorch backend, registered as ``backend="torch"``."""
from __future__ import annotations

import torch
from torch import nn

from ...options import SolverOptions
from ...solution import SolverStats, Status
from ..base import Backend
from .adjoint import AdjointSolve, Problem
from .compiled import compiled_for
from .controller import Controller, IController, PIController
from .tableau import DOPRI5, DOPRI5_SHAMPINE

__all__ = ["TorchBackend"]

_CONTROLLERS = {"i": IController, "pi": PIController}
_TABLEAUS = {"dp": DOPRI5, "shampine": DOPRI5_SHAMPINE}


class TorchBackend(Backend):
    """Dormand–Prince 5(4) in plain PyTorch, with four gradient modes.

    ``adjoint``:

    * ``"backsolve"`` — continuous adjoint, state re-integrated backward (torchdiffeq's
      ``odeint_adjoint``); O(1) memory in the number of steps.
    * ``"interpolating"`` — continuous adjoint reading ``y(t)`` from the forward dense
      output; no backward re-integration of the state (accurate for damped fields such
      as HBNODE/GHBNODE), memory three states per forward step.
    * ``"checkpointed"`` — keeps the state at the start of every accepted step and
      backpropagates through one recomputed step at a time: the exact gradient of the
      discrete solution (like ``direct``) with one state per step and one step's graph in
      memory; no backward error control is needed.
    * ``"direct"`` — backpropagation through the solver's operations (exact gradient of
      the discrete solution; memory grows with the steps and the field's activations).

    ``seminorm=True`` leaves the parameters' adjoint out of the backward step control
    (Kidger et al. 2021); ``None`` means True.  It matters for ``backsolve`` and
    ``interpolating`` only (``checkpointed`` and ``direct`` have no backward step control).
    It is safe whenever the loss reaches the parameters through the state: the parameters'
    adjoint is a quadrature of ``a ∂f/∂θ`` that never feeds back into the solve, so
    controlling ``a`` (and ``y``) controls its integrand.  It stops being safe when ``a``
    is far below ``atol``, e.g. a loss scaled down by many orders of magnitude: the steps are
    then loose for ``a``, and nothing else controls the quadrature.  Statistics: ``nfe_forward`` counts every
    field evaluation of the forward solve including the 2 start-up ones (the initial
    derivative and Hairer's initial-step probe), ``steps/accepted/rejected`` the forward
    step attempts, ``nfe_backward`` one per vector–Jacobian product of the field (for
    ``direct``: equal to ``nfe_forward``, the package's convention for backprop through
    the solver), ``steps_backward`` the backward step attempts (0 for ``direct``).

    Args:
        controller: ``"i"`` (torchdiffeq's integral controller, default) or ``"pi"``, or a
            :class:`~.controller.Controller` factory (a class or zero-argument callable).
        error_weights: ``"shampine"`` (default: Shampine's embedded 4th-order solution, as
            in torchdiffeq and ode45, so both backends take the same steps) or ``"dp"``
            (Dormand & Prince's, as in Hairer's DOPRI5).
        max_checkpoints: ``adjoint="checkpointed"`` keeps every step's state when ``None``
            (fastest); an int caps the kept states, and the backward replays the steps
            between them by recursive bisection (flat memory, more forward evaluations).
        compile: ``True`` runs the forward step attempts and the checkpointed backward's
            per-step VJP as ``torch.compile``d programs (:mod:`.compiled`), compiled once per
            field class, state shape, dtype and device (seconds to minutes, see
            :func:`~.compiled.compile_times`) and falling back to the eager step with one
            warning where compiling fails; ``False`` always steps eagerly.
    """

    name = "torch"
    adjoints = ("backsolve", "interpolating", "checkpointed", "direct")
    default_adjoint = "checkpointed"  # exact gradient of the discrete solve, fewest backward NFE
    methods = ("dopri5",)

    def __init__(
        self, controller: str | type = "i", error_weights: str = "shampine", max_checkpoints: int | None = None,
        compile: bool = False,
    ) -> None:
        if isinstance(controller, str):
            if controller not in _CONTROLLERS:
                raise ValueError(f"unknown controller {controller!r}; choose one of {sorted(_CONTROLLERS)}")
            controller = _CONTROLLERS[controller]
        self._controller = controller
        if error_weights not in _TABLEAUS:
            raise ValueError(f"unknown error_weights {error_weights!r}; choose one of {sorted(_TABLEAUS)}")
        self._tableau = _TABLEAUS[error_weights]
        if max_checkpoints is not None and not (isinstance(max_checkpoints, int) and max_checkpoints >= 1):
            raise ValueError(f"max_checkpoints must be a positive int or None, got {max_checkpoints!r}")
        self._max_checkpoints = max_checkpoints
        if not isinstance(compile, bool):
            raise ValueError(f"compile must be True or False, got {compile!r}")
        self._compile = compile

    def _ctrl(self) -> Controller:
        return self._controller()

    def solve(
        self, field: nn.Module, y0: torch.Tensor, t: torch.Tensor, options: SolverOptions, stats: SolverStats
    ) -> torch.Tensor:
        if t.requires_grad:
            raise ValueError(
                "backend 'torch' computes no gradient with respect to the time grid t; "
                "pass t.detach() (or use backend='torchdiffeq')"
            )
        times = t.tolist()
        params = tuple(p for p in field.parameters() if p.requires_grad) if isinstance(field, nn.Module) else ()
        seminorm = True if options.seminorm is None else bool(options.seminorm)
        prob = Problem(
            field, params, times, rtol=float(options.rtol), atol=float(options.atol),
            max_steps=options.max_steps, seminorm=seminorm, strategy=options.adjoint, stats=stats,
            ctrl=self._ctrl(), bctrl=self._ctrl(), dtype=y0.dtype, device=y0.device,
            tableau=self._tableau, max_checkpoints=self._max_checkpoints,
        )
        if self._compile:
            prob.compiled = compiled_for(field, self._tableau, y0.shape, y0.dtype, y0.device,
                                         prob.rtol, prob.atol)
        needs_grad = torch.is_grad_enabled() and (y0.requires_grad or bool(params))
        if not needs_grad:
            with torch.no_grad():
                ys, _ = prob.solve(y0, record=None)
                out = torch.stack(ys)
        elif options.adjoint == "direct":
            ys, tally = prob.solve(y0, record=None)
            out = torch.stack(ys)
            # The package's convention (shared with the torchdiffeq backend): backprop counts
            # one evaluation per forward evaluation.  The evaluations actually differentiated
            # through are fewer: f(y0) and the 6 new ones of each accepted step (the last
            # step's FSAL one only when an output needs it); ``stats.steps_backward`` stays 0.
            recorded = tally.nfe

            def _count(grad: torch.Tensor) -> None:
                stats.nfe_backward += recorded
                stats.steps_backward = 0

            out.register_hook(_count)
        else:
            out = AdjointSolve.apply(prob, y0, *params)
        stats.status = Status.SUCCESS
        return out
