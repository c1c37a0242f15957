"""A finiteness check on the gradients of one solve, for the gradient modes that backpropagate
through the solver's operations (:class:`~pyhbnode.solving.adjoints.Direct`).

``Checkpointed`` and ``Backsolve`` run their own backward pass and check the vector-Jacobian
products there; ``Direct`` leaves the backward pass to autograd, which returns NaN silently
when the field's derivative is infinite at the solution (``dy/dt = -sqrt(|y|)`` from ``y = 0``).
:func:`guarded_solve` routes ``y0``, ``t`` and the field's parameters through one identity
autograd function for the duration of the solve, so its backward sees exactly this solve's
gradients — once per backward pass, whatever the number of steps — and raises
:class:`~pyhbnode.solving.errors.NonFiniteState` (phase ``"backward"``) naming the input.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .errors import NonFiniteState
from .solution import SolverStats

__all__ = ["guarded_solve"]

Solve = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


class _CheckGradients(torch.autograd.Function):
    """``apply(names, stats, t0, *tensors) -> tensors`` (copies); backward refuses non-finite gradients.

    Copies, not views: a view made inside a custom Function may not be modified in place, and a
    field that modifies its input must meet the backends' own diagnosis, not autograd's."""

    @staticmethod
    def forward(ctx, names: tuple[str, ...], stats: SolverStats, t0: float, *tensors: torch.Tensor):
        ctx.names, ctx.stats, ctx.t0 = names, stats, t0
        return tuple(x.clone() for x in tensors)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: torch.Tensor):
        bad = [
            name
            for name, g in zip(ctx.names, grads, strict=True)
            if g is not None and not bool(torch.isfinite(g).all())
        ]
        if bad:
            stats: SolverStats = ctx.stats
            raise NonFiniteState(
                f"non-finite gradient with respect to {', '.join(bad)} (adjoint='direct'): the vector-Jacobian "
                "product of the field is NaN/Inf (is the field differentiable there? e.g. sqrt(|y|) at y = 0)",
                phase="backward",
                t=ctx.t0,
                nfe_forward=stats.nfe_forward,
                nfe_backward=stats.nfe_backward,
            )
        return (None, None, None, *grads)


class _Solve(nn.Module):
    """The solve as a module with ``field`` as its child, for ``torch.func.functional_call``."""

    def __init__(self, field: nn.Module, solve: Solve) -> None:
        super().__init__()
        self.field, self.solve = field, solve

    def forward(self, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.solve(self.field, y0, t)


def guarded_solve(
    field: nn.Module, y0: torch.Tensor, t: torch.Tensor, stats: SolverStats, solve: Solve
) -> torch.Tensor:
    """``solve(field, y0, t)`` with the gradients of ``y0``, ``t`` and ``field``'s trainable
    parameters checked for finiteness in backward (see the module docstring)."""
    params = dict(field.named_parameters()) if isinstance(field, nn.Module) else {}
    params = {name: p for name, p in params.items() if p.requires_grad}
    inputs = {"y0": y0, "t": t} | {f"field parameter {name!r}": p for name, p in params.items()}
    inputs = {name: x for name, x in inputs.items() if x.requires_grad}
    if not inputs or not torch.is_grad_enabled():
        return solve(field, y0, t)
    guarded = dict(
        zip(inputs, _CheckGradients.apply(tuple(inputs), stats, float(t[0].detach()), *inputs.values()), strict=True)
    )
    y0, t = guarded.pop("y0", y0), guarded.pop("t", t)
    if not params:
        return solve(field, y0, t)
    # The swap lasts for the whole solve (not one call per evaluation): the graph built during
    # it reaches the parameters through the check, and the field's own tensors are back after.
    swapped = {f"field.{name}": guarded[f"field parameter {name!r}"] for name in params}
    return torch.func.functional_call(_Solve(field, solve), swapped, (y0, t), strict=False)
