"""The first step size of a solve: Hairer, Nørsett & Wanner's selection (Solving ODEs I,
II.4), as torchdiffeq and scipy use it, guarded against overflow and a state at rest."""

from __future__ import annotations

import math

import torch

from ...errors import StepSizeUnderflow
from .dopri5 import RHS
from .integrate import StepFailure

__all__ = ["initial_step"]


def _rms(x: torch.Tensor, groups: int) -> float:
    """The mixed RMS norm; recomputed in float64 where the state's dtype overflows."""
    r = _rms_in(x, groups, None)
    return r if math.isfinite(r) or not bool(torch.isfinite(x).all()) else _rms_in(x, groups, torch.float64)


def _rms_in(x: torch.Tensor, groups: int, dtype) -> float:
    if groups == 1:
        return torch.linalg.vector_norm(x, dtype=dtype).item() / math.sqrt(x.numel())
    n = x.numel() // groups
    return torch.linalg.vector_norm(x.reshape(groups, n), dim=1, dtype=dtype).max().item() / math.sqrt(n)


def initial_step(
    rhs: RHS,
    s0: float,
    z0: torch.Tensor,
    k0: torch.Tensor,
    *,
    order: int,
    rtol: float,
    atol: float,
    groups: int = 1,
    h_min: float = 0.0,
) -> float:
    """The first step to try from ``(s0, z0)`` with derivative ``k0``; one extra evaluation.

    ``order`` sets the exponent ``1/order`` of the curvature estimate (5 for DP5: its error
    estimate is of order 4, and Hairer's rule uses ``1/(order_err + 1)``), ``groups`` as in
    the solver's norm.  The step is at least ``h_min`` (a few times the solver's step
    floor): the heuristic's fallback ``1e-6`` for a state at rest is below that floor in
    float32 at moderate times.

    Raises:
        StepFailure (StepSizeUnderflow): the derivative is so large that no positive step
            is representable (e.g. ``|f| ~ 1e16`` in float32).
    """
    with torch.no_grad():
        scale = z0.abs().mul_(rtol).add_(atol)
        d0 = _rms(z0 / scale, groups)
        d1 = _rms(k0 / scale, groups)
        h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
        h0 = max(h0, h_min)
        if not (h0 > 0.0 and math.isfinite(h0)):
            raise StepFailure(
                StepSizeUnderflow,
                f"no usable initial step: the vector field's RMS "
                f"relative to the tolerances is {d1:.3g} (too large for dtype {z0.dtype})",
                s0,
                h0,
            )
        z1 = torch.add(z0, k0, alpha=h0)
    k1 = rhs(s0 + h0, z1)[0]  # outside no_grad: an adjoint's rhs differentiates the field
    with torch.no_grad():
        d2 = _rms((k1 - k0).div_(scale), groups) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    elif math.isfinite(d2):
        h1 = (0.01 / max(d1, d2)) ** (1.0 / order)
    else:
        h1 = h0
    return max(min(100.0 * h0, h1), h_min)
