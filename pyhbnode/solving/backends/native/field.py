"""The vector field as the native solver calls it: on rows ``(1, N)``, in the integration
variable ``s = direction · t`` (``direction = -1`` integrates a decreasing grid forward in
``s``), and its vector–Jacobian product for the adjoints."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...validation import field_output_error
from .dopri5 import RHS

__all__ = ["row_field", "row_vjp"]


def row_field(
    field: nn.Module, shape: torch.Size, dtype: torch.dtype, device: torch.device, direction: float
) -> tuple[RHS, RHS]:
    """``(first, rhs)``: ``rhs(s, z_row) -> (dz/ds row, None)``; ``first`` is the same and
    checks, on the first evaluation, that the field returns a tensor like the state."""
    scalar = torch.scalar_tensor
    n = shape.numel()
    sign = float(direction)

    def rhs(s: float, z: torch.Tensor):
        f = field(scalar(sign * s, dtype=dtype, device=device), z.view(shape))
        # a shape check costs ~0.1 µs; without it a 0-d or (B, 1) output would broadcast silently
        if not isinstance(f, torch.Tensor) or f.shape != shape:
            check_output(f, shape, dtype, device)
        f = f.reshape(1, n)
        return (f if sign > 0 else f.neg()), None

    def first(s: float, z: torch.Tensor):
        try:
            f = field(scalar(sign * s, dtype=dtype, device=device), z.view(shape))
        except RuntimeError as err:  # torch's own shape/dtype complaints, e.g. a wrong feature width
            raise ValueError(
                f"the vector field failed on its first evaluation, on y0 of shape "
                f"{tuple(shape)} and dtype {dtype} (check that y0's shape is what the field "
                f"takes): {err}"
            ) from err
        check_output(f, shape, dtype, device)
        f = f.reshape(1, n)
        return (f if sign > 0 else f.neg()), None

    return first, rhs


def check_output(f, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> None:
    """Raise ``ValueError``/``TypeError`` naming what the field returned for a state."""
    err = field_output_error(f, shape, dtype, device)
    if err is not None:
        raise err


def row_vjp(
    field: nn.Module, params: Sequence[torch.Tensor], dtype: torch.dtype, device: torch.device, direction: float
):
    """``vjp(s, y, a) -> (F, a ∂F/∂y, (a ∂F/∂θ_i)_i or None)`` for ``F(s, y) = direction ·
    field(direction · s, y)`` (``y``, ``a`` shaped like the state; ``y`` becomes a leaf)."""
    scalar = torch.scalar_tensor
    grad = torch.autograd.grad
    params = tuple(params)
    sign = float(direction)

    def vjp(s: float, y: torch.Tensor, a: torch.Tensor):
        y.requires_grad_(True)
        f = field(scalar(sign * s, dtype=dtype, device=device), y)
        if not isinstance(f, torch.Tensor) or f.shape != y.shape:
            check_output(f, y.shape, dtype, device)
        if sign < 0:
            f = f.neg()
        if not f.requires_grad:  # f depends on neither y nor θ
            return f, torch.zeros_like(y), (tuple(torch.zeros_like(p) for p in params) or None)
        gs = grad(f, (y, *params), a, allow_unused=True)
        vy = gs[0] if gs[0] is not None else torch.zeros_like(y)
        if not params:
            return f, vy, None
        vq = gs[1:]
        if any(x is None for x in vq):
            vq = tuple(g if g is not None else torch.zeros_like(p) for g, p in zip(vq, params, strict=True))
        return f, vy, vq

    return vjp
