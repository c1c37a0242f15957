"""torchdiffeq's test problems (tests/problems.py of rtqichen/torchdiffeq), written anew from
their definitions, with closed-form solutions *and* closed-form gradients, on states without a
batch axis (0-d and 1-D) — the layout a solver most easily gets wrong.

Each problem is an ``nn.Module`` field with:

* ``y0(t0)``: the initial state at ``t0`` (a leaf that requires grad);
* ``exact(t, y0)``: ``y(t)`` for every time in the 1-D tensor ``t`` (``y(t[0]) = y0``);
* ``gradients(t0, t1, y0, w)``: the exact ``∂L/∂y0`` and ``∂L/∂θ`` (per parameter name) of
  ``L = Σ w · y(t1)``.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import torch
from torch import nn

__all__ = ["ConstantODE", "SineODE", "LinearODE", "ExpODE", "PROBLEMS"]


class ConstantODE(nn.Module):
    """``y' = a + (y - (a t + b))^5``: ``y = a t + b`` from ``y(t0) = a t0 + b``; 0-d state.

    Along that solution the quintic term and its derivative vanish, so a perturbation of ``y0``
    persists (``∂y/∂y0 = 1``), one of ``a`` grows like ``t - t0`` and one of ``b`` vanishes."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.2))
        self.b = nn.Parameter(torch.tensor(3.0))

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.a + (y - (self.a * t + self.b)) ** 5

    def y0(self, t0: float) -> torch.Tensor:
        return (self.a * t0 + self.b).detach().clone().requires_grad_(True)

    def exact(self, t: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
        return (self.a * t + self.b).detach()

    def gradients(self, t0: float, t1: float, y0: torch.Tensor, w: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y0": w.clone(), "a": w * (t1 - t0), "b": torch.zeros_like(w)}


class SineODE(nn.Module):
    """``y' = 2y/t + t^4 sin 2t - t^2 + 4t^3`` on ``t >= 1``; 0-d state, no parameters.

    Linear in ``y`` with ``∂f/∂y = 2/t``: ``∂y(t1)/∂y0 = (t1/t0)^2``."""

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 2 * y / t + t ** 4 * torch.sin(2 * t) - t ** 2 + 4 * t ** 3

    @staticmethod
    def particular(t: torch.Tensor) -> torch.Tensor:
        return (-0.5 * t ** 4 * torch.cos(2 * t) + 0.5 * t ** 3 * torch.sin(2 * t)
                + 0.25 * t ** 2 * torch.cos(2 * t) - t ** 3 + 2 * t ** 4 + (math.pi - 0.25) * t ** 2)

    def y0(self, t0: float) -> torch.Tensor:
        return self.particular(torch.tensor(t0, dtype=torch.float64)).requires_grad_(True)

    def exact(self, t: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
        # the homogeneous part C t^2 carries any offset of y0 from the particular solution
        t0 = t[0]
        c = (y0.detach() - self.particular(t0)) / t0 ** 2
        return self.particular(t) + c * t ** 2

    def gradients(self, t0: float, t1: float, y0: torch.Tensor, w: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y0": w * (t1 / t0) ** 2}


class LinearODE(nn.Module):
    """``y' = A y`` with ``A`` a small random nearly antisymmetric ``dim x dim`` matrix; 1-D state
    ``(dim,)``.  ``y(t) = expm(A (t - t0)) y0``; the gradient with respect to ``A`` is the
    adjoint Fréchet derivative of the matrix exponential, ``τ L(τ A^T, w y0^T)``."""

    def __init__(self, dim: int = 10) -> None:
        super().__init__()
        u = torch.randn(dim, dim, generator=torch.Generator().manual_seed(0)) * 0.1
        self.A = nn.Parameter(2 * u - (u + u.T))
        self.dim = dim

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (self.A @ y.reshape(self.dim, 1)).reshape(-1)

    def y0(self, t0: float) -> torch.Tensor:
        return torch.ones(self.dim, dtype=torch.float64, requires_grad=True)

    def _a(self) -> np.ndarray:
        return self.A.detach().double().numpy()

    def exact(self, t: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
        y = y0.detach().double().numpy()
        t0 = float(t[0])
        return torch.stack([torch.from_numpy(scipy.linalg.expm(self._a() * (float(s) - t0)) @ y) for s in t])

    def gradients(self, t0: float, t1: float, y0: torch.Tensor, w: torch.Tensor) -> dict[str, torch.Tensor]:
        tau, a = t1 - t0, self._a()
        wn, yn = w.double().numpy(), y0.detach().double().numpy()
        _, frechet = scipy.linalg.expm_frechet(tau * a.T, np.outer(wn, yn))
        return {"y0": torch.from_numpy(scipy.linalg.expm(tau * a.T) @ wn), "A": torch.from_numpy(tau * frechet)}


class ExpODE(nn.Module):
    """``y' = k y``: ``y = y0 e^{k (t - t0)}``; ``shape`` ``()`` (0-d) or ``(n,)``."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.tensor(-0.7))
        self.shape = shape

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.k * y

    def y0(self, t0: float) -> torch.Tensor:
        return torch.linspace(0.5, 1.5, math.prod(self.shape), dtype=torch.float64).reshape(self.shape).requires_grad_(True)

    def exact(self, t: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
        growth = torch.exp(self.k.detach() * (t - t[0]))
        return growth.reshape(-1, *([1] * len(self.shape))) * y0.detach()

    def gradients(self, t0: float, t1: float, y0: torch.Tensor, w: torch.Tensor) -> dict[str, torch.Tensor]:
        growth = torch.exp(self.k.detach() * (t1 - t0))
        return {"y0": w * growth, "k": (w * y0.detach() * (t1 - t0) * growth).sum()}


# name -> (constructor, the state's rank): 0-d and 1-D, as torchdiffeq's own tests use them
PROBLEMS = {
    "constant": (ConstantODE, 0),
    "sine": (SineODE, 0),
    "exp-0d": (lambda: ExpODE(()), 0),
    "exp-1d": (lambda: ExpODE((3,)), 1),
    "linear": (LinearODE, 1),
}
