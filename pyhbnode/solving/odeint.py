"""``odeint``: the one solve path of the package."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .adjoints import Adjoint
from .backends import get_backend
from .controllers import Controller
from .options import SolverOptions
from .recording import register
from .solution import Solution, SolverStats
from .validation import check_problem

__all__ = ["odeint"]


def odeint(
    field: nn.Module,
    y0: torch.Tensor,
    t: torch.Tensor | Sequence[float],
    *,
    backend: str | None = None,
    method: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    adjoint: Adjoint | str | None = None,
    seminorm: bool | None = None,
    max_steps: int | None = None,
    controller: Controller | str | None = None,
    compile: bool | str | None = None,
    options: SolverOptions | None = None,
) -> Solution:
    """Solve ``dy/dt = field(t, y)``, ``y(t[0]) = y0``, and return the states at ``t``.

    Args:
        field: ``nn.Module`` with ``forward(t, y) -> dy/dt`` (``t`` a 0-d tensor).
        y0: initial state ``(batch, *state)``; for the heavy-ball fields ``(batch, 2, *features)``.
        t: strictly monotonic output times ``(T,)`` (increasing, or decreasing to integrate
            backward in time), same dtype and device as ``y0``.
        backend, method, rtol, atol, adjoint, seminorm, max_steps, controller, compile: override the
            fields of ``options`` (see :class:`SolverOptions`); ``adjoint`` is an
            :class:`~pyhbnode.solving.adjoints.Adjoint` or its alias (default
            ``Checkpointed()``), ``controller`` a
            :class:`~pyhbnode.solving.controllers.Controller` or its alias (native backend),
            ``compile`` whether the native backend runs compiled steps (``True``, ``False``,
            ``"auto"``).
        options: base options; defaults to ``SolverOptions()``.

    Returns:
        A :class:`Solution` with ``ys`` of shape ``(T, *y0.shape)`` and ``stats``, whose
        ``nfe_backward`` is filled in when the backward pass runs.

    Raises:
        TypeError / ValueError: bad arguments (named in the message), before any solving.
        SolverError: a subclass saying why the solve stopped (max steps, step underflow,
            non-finite state), with the time reached and the NFE so far.
    """
    opts = SolverOptions.from_kwargs(
        options, backend=backend, method=method, rtol=rtol, atol=atol, adjoint=adjoint,
        seminorm=seminorm, max_steps=max_steps, controller=controller, compile=compile,
    )
    t = check_problem(field, y0, t)
    solver = get_backend(opts.backend, adjoint=opts.adjoint.name)
    solver.check_options(opts)
    stats = SolverStats()
    register(stats)
    ys = solver.solve(field, y0, t, opts, stats)
    return Solution(ts=t, ys=ys, stats=stats)
