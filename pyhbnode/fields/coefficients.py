"""The heavy-ball coefficients: damping γ and the GHBNODE restoring coefficient ξ.

Both are non-negative scalars, either fixed or learnable through an unconstrained
parameter (the HBNODE paper): γ = ε·sigmoid(ω) with ω initialised at -3, ξ = softplus(χ).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Damping", "Restoring"]


class Damping(nn.Module):
    """Damping γ ≥ 0 of the heavy-ball momentum equation.

    Args:
        gamma: a fixed value (no parameter is created), or ``None`` for the learnable
            form ``γ = eps * sigmoid(omega)``.
        omega: initial ω of the learnable form (paper default -3, γ ≈ 0.047).
        eps: the scale ε of the learnable form.
    """

    fixed: torch.Tensor  # the buffer of a fixed value

    def __init__(self, gamma: float | None = None, *, omega: float = -3.0, eps: float = 1.0) -> None:
        super().__init__()
        self.eps = float(eps)
        self.omega: nn.Parameter | None
        if gamma is None:
            self.omega = nn.Parameter(torch.tensor(float(omega)))
        else:
            if gamma < 0:
                raise ValueError(f"damping gamma must be >= 0, got {gamma}")
            self.omega = None
            self.register_buffer("fixed", torch.tensor(float(gamma)))

    @property
    def learnable(self) -> bool:
        return self.omega is not None

    def forward(self) -> torch.Tensor:
        if self.omega is None:
            return self.fixed
        return self.eps * torch.sigmoid(self.omega)

    def extra_repr(self) -> str:
        return f"learnable, eps={self.eps}" if self.learnable else f"gamma={float(self.fixed):g}"


class Restoring(nn.Module):
    """Restoring coefficient ξ ≥ 0 of GHBNODE (the ``-ξ h`` term of eq. 15).

    Args:
        xi: a fixed value, or ``None`` for the learnable ``ξ = softplus(chi)``.
        chi: initial χ of the learnable form (0 gives ξ = ln 2, the Silverbox setting).
    """

    fixed: torch.Tensor  # the buffer of a fixed value

    def __init__(self, xi: float | None = None, *, chi: float = 0.0) -> None:
        super().__init__()
        self.chi: nn.Parameter | None
        if xi is None:
            self.chi = nn.Parameter(torch.tensor(float(chi)))
        else:
            if xi < 0:
                raise ValueError(f"restoring coefficient xi must be >= 0, got {xi}")
            self.chi = None
            self.register_buffer("fixed", torch.tensor(float(xi)))

    @property
    def learnable(self) -> bool:
        return self.chi is not None

    def forward(self) -> torch.Tensor:
        if self.chi is None:
            return self.fixed
        return F.softplus(self.chi)

    def extra_repr(self) -> str:
        return "learnable" if self.learnable else f"xi={float(self.fixed):g}"
