"""``odeint``: the one solve path of the package."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .adjoints import Adjoint
from .backends import get_backend
from .finite_gradients import guarded_solve
from .options import SolverOptions, solver_argument
from .recording import register
from .solution import Solution, SolverStats
from .validation import check_problem

__all__ = ["odeint"]


def odeint(
    field: nn.Module,
    y0: torch.Tensor,
    t: torch.Tensor | Sequence[float],
    *,
    solver: SolverOptions | None = None,
    **options: Any,
) -> Solution:
    """Solve ``dy/dt = field(t, y)``, ``y(t[0]) = y0``, and return the states at ``t``.

    Args:
        field: ``nn.Module`` with ``forward(t, y) -> dy/dt`` (``t`` a 0-d tensor).
        y0: initial state ``(batch, *state)``; for the heavy-ball fields ``(batch, 2, *features)``.
        t: strictly monotonic output times ``(T,)`` (increasing, or decreasing to integrate
            backward in time), same dtype and device as ``y0``.
        solver: the options (default ``SolverOptions()``).
        **options: fields of :class:`SolverOptions` that override ``solver``'s (``backend``,
            ``rtol``, ``atol``, ``tol``, ``adjoint``, ``controller``, ``compile``, ...);
            ``adjoint`` is an :class:`~pyhbnode.solving.adjoints.Adjoint` or its alias
            (default ``Checkpointed()``), ``controller`` a
            :class:`~pyhbnode.solving.controllers.Controller` or its alias.

    Returns:
        A :class:`Solution` with ``ys`` of shape ``(T, *y0.shape)`` and ``stats``, whose
        ``nfe_backward`` is filled in when the backward pass runs.

    Raises:
        TypeError / ValueError: bad arguments (named in the message), before any solving.
        SolverError: a subclass saying why the solve stopped (max steps, step underflow,
            non-finite state), with the time reached and the NFE so far; in backward, a
            non-finite gradient is a ``NonFiniteState`` with ``phase="backward"`` in every
            gradient mode.
    """
    opts = solver_argument(solver, options, where="odeint")
    t = check_problem(field, y0, t)
    assert isinstance(
        opts.adjoint, Adjoint
    )  # parsed by SolverOptions; the field's type is what the constructor accepts
    backend = get_backend(opts.backend, adjoint=opts.adjoint)
    backend.check_options(opts)
    stats = SolverStats()
    register(stats)
    if opts.adjoint.by_autograd:
        # autograd runs this mode's backward pass, not the backend: check its gradients here
        ys = guarded_solve(field, y0, t, stats, lambda f, y, s: backend.solve(f, y, s, opts, stats))
    else:
        ys = backend.solve(field, y0, t, opts, stats)
    return Solution(ts=t, ys=ys, stats=stats)
