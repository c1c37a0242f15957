"""Step-size controllers and the initial step selection.

A controller maps ``(h, r)`` — the step just attempted and its error ratio ``r`` (the RMS
norm of the local error estimate divided by ``atol + rtol * |y|``; the step is accepted
when ``r <= 1``) — to the next step size.  Everything here is plain Python floats: the
solver pays one ``.item()`` per step to read ``r`` and nothing else.
"""
from __future__ import annotations

import abc
import math

import torch

__all__ = ["Controller", "IController", "PIController", "FixedStep", "initial_step"]


class Controller(abc.ABC):
    """Interface: ``accepts(r)`` and ``next_step(h, r, accepted)``.

    ``adaptive`` is False for controllers that ignore the error estimate (the solver then
    skips computing it) and ``initial`` is their first step (``None``: Hairer's selection).
    """

    adaptive = True
    initial: float | None = None

    def reset(self) -> None:
        """Forget the history (called at the start of each solve)."""

    def accepts(self, r: float) -> bool:
        return r <= 1.0

    @abc.abstractmethod
    def next_step(self, h: float, r: float, accepted: bool) -> float:
        """The next step size after a step of size ``h`` with error ratio ``r``."""


class IController(Controller):
    """Integral controller ``h_new = h * clip(safety * r^(-1/order), dfactor, ifactor)``.

    With the defaults this is torchdiffeq's ``dopri5`` controller (safety 0.9, factors
    in [0.2, 10], no shrinking after an accepted step), so both solvers take the same
    steps on the same problem; a non-finite ``r`` shrinks the step by ``dfactor``.
    """

    def __init__(self, order: int = 5, safety: float = 0.9, ifactor: float = 10.0, dfactor: float = 0.2) -> None:
        self.exponent = -1.0 / order
        self.safety, self.ifactor, self.dfactor = safety, ifactor, dfactor

    def next_step(self, h: float, r: float, accepted: bool) -> float:
        if r == 0.0:
            return h * self.ifactor
        if not math.isfinite(r):
            return h * self.dfactor
        factor = self.safety * r ** self.exponent
        low = 1.0 if accepted else self.dfactor
        return h * min(self.ifactor, max(factor, low))


class PIController(Controller):
    """Proportional–integral controller (Gustafsson; Hairer's DOPRI5 with ``beta = 0.04``).

    ``h_new = h * clip(safety * r^(-alpha) * r_prev^beta, dfactor, ifactor)`` with
    ``alpha = 1/order - 0.75 beta``; after a rejection the step never grows.
    """

    def __init__(
        self, order: int = 5, beta: float = 0.04, safety: float = 0.9, ifactor: float = 10.0, dfactor: float = 0.2
    ) -> None:
        self.alpha = 1.0 / order - 0.75 * beta
        self.beta, self.safety, self.ifactor, self.dfactor = beta, safety, ifactor, dfactor
        self.r_prev = 1e-4
        self.last_rejected = False

    def reset(self) -> None:
        self.r_prev = 1e-4
        self.last_rejected = False

    def next_step(self, h: float, r: float, accepted: bool) -> float:
        if not math.isfinite(r):
            self.last_rejected = True
            return h * self.dfactor
        if r == 0.0:
            factor = self.ifactor
        else:
            factor = self.safety * r ** (-self.alpha) * self.r_prev ** self.beta
        if accepted:
            self.r_prev = max(r, 1e-4)
            high = 1.0 if self.last_rejected else self.ifactor
            self.last_rejected = False
            return h * min(high, max(factor, 1.0 if r <= 1.0 else self.dfactor))
        self.last_rejected = True
        return h * min(1.0, max(factor, self.dfactor))


class FixedStep(Controller):
    """Constant steps of size ``h`` (every step accepted; no error estimate computed).

    Used for convergence-order tests and as a stub that makes step counts exact: a solve
    over ``[t0, t1]`` takes ``ceil((t1 - t0) / h)`` steps (the last one clipped).
    """

    adaptive = False

    def __init__(self, h: float) -> None:
        if not h > 0:
            raise ValueError(f"fixed step must be positive, got {h!r}")
        self.initial = float(h)

    def next_step(self, h: float, r: float, accepted: bool) -> float:
        return self.initial


def _rms(x: torch.Tensor, groups: int) -> float:
    """The mixed RMS norm: the largest RMS over ``groups`` equal slices of the flat ``x``."""
    if groups == 1:
        return torch.linalg.vector_norm(x).item() / math.sqrt(x.numel())
    n = x.numel() // groups
    return torch.linalg.vector_norm(x.reshape(groups, n), dim=1).max().item() / math.sqrt(n)


def initial_step(rhs, s0: float, z0: torch.Tensor, k0: torch.Tensor, *, order: int, rtol: float,
                 atol: float, groups: int = 1) -> float:
    """Hairer, Nørsett & Wanner's initial step (Solving ODEs I, II.4): one extra evaluation.

    ``rhs(s, z) -> (k, q)``; ``k0 = rhs(s0, z0)[0]``; ``order`` sets the exponent
    ``1/order`` of the second estimate (5 for DP5, which is torchdiffeq's ``order - 1``
    plus one), so that both solvers start alike.  ``groups`` as in the solver's norm.
    """
    with torch.no_grad():
        scale = z0.abs().mul_(rtol).add_(atol)
        d0 = _rms(z0 / scale, groups)
        d1 = _rms(k0 / scale, groups)
        h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
        z1 = torch.add(z0, k0, alpha=h0)
    k1 = rhs(s0 + h0, z1)[0]  # outside no_grad: an adjoint's rhs differentiates the field
    with torch.no_grad():
        d2 = _rms((k1 - k0).div_(scale), groups) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / order)
    return min(100.0 * h0, h1)
