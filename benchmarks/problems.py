"""Classic ODE test problems ``name -> (field, y0, T)`` (float64 fields on a ``(batch, n)``
state, integrated over ``[0, T]``): the step-control benchmark and the controller tests share them."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["VanDerPol", "Arenstorf", "LotkaVolterra", "PROBLEMS"]


class VanDerPol(nn.Module):
    def __init__(self, mu: float) -> None:
        super().__init__()
        self.mu = mu

    def forward(self, t, y):
        x, v = y[..., 0], y[..., 1]
        return torch.stack([v, self.mu * (1 - x * x) * v - x], -1)


class Arenstorf(nn.Module):
    mu = 0.012277471

    def forward(self, t, y):
        x, yy, vx, vy = y[..., 0], y[..., 1], y[..., 2], y[..., 3]
        m, M = self.mu, 1 - self.mu
        d1 = ((x + m) ** 2 + yy ** 2) ** 1.5
        d2 = ((x - M) ** 2 + yy ** 2) ** 1.5
        return torch.stack([vx, vy, x + 2 * vy - M * (x + m) / d1 - m * (x - M) / d2,
                            yy - 2 * vx - M * yy / d1 - m * yy / d2], -1)


class LotkaVolterra(nn.Module):
    def forward(self, t, y):
        a, b = y[..., 0], y[..., 1]
        return torch.stack([1.5 * a - a * b, -3 * b + a * b], -1)


PROBLEMS = {
    "arenstorf": (Arenstorf(), [0.994, 0.0, 0.0, -2.00158510637908252240537862224], 17.0652165601579625588917206249),
    "vdp mu=1": (VanDerPol(1.0), [2.0, 0.0], 20.0),
    "vdp mu=10": (VanDerPol(10.0), [2.0, 0.0], 20.0),
    "lotka-volterra": (LotkaVolterra(), [1.0, 1.0], 15.0),
}
