"""The rest of the momentum family: NesterovNODE, GNesterovNODE and AdamNODE.

Every field follows :class:`~pyhbnode.fields.models.VectorField`'s protocol (``forward(t, y)``
and an ``order``); ``f`` is any ``nn.Module`` mapping ``(batch, *features)`` to itself (a
:class:`~pyhbnode.fields.nets.TimeModule` also receives ``t``).

NesterovNODE (Nguyen et al., NeurIPS 2022; official ``base.py`` ``NesterovNODE``)
    State ``(batch, 2, *features)``: ``y[:, 0] = a``, ``y[:, 1] = b``, the two channels the
    authors integrate (``k(t)``-scaled position and velocity).  With ``r(t) = t^{3/2} e^{-t/2}``
    (``= 1/k(t)``) and ``m = (3/2·t^{1/2} e^{-t/2} - r/2)·a + r·b``::

        da/dt = σ_h(m)
        db/dt = σ_dm( σ_m( s·σ_f(f(t, a)) - m ) - ξ a )

    ``s = ±1`` is the sign of ``f`` (the authors' ``sign``).  The solution is read out at
    every output time ``T`` except the first by :meth:`NesterovNODE.readout`; ``k(t)`` is
    singular at ``t = 0`` so the field refuses intervals that start at ``t <= 0``.

AdamNODE (Cho et al., arXiv 2207.06066; official ``base.py`` ``AdamNODEs``)
    State ``(batch, 3, *features)``: ``h``, first moment ``m``, second moment ``v``::

        dh/dt = σ_h(m) / (√φ(v) + 1e-8)
        dm/dt = β₁ (f(t, h) - m) - ξ₁ h
        dv/dt = β₂ (f(t, h)² - v) + ξ₂ h

    with ``β = sigmoid(α)`` and ``φ`` softplus (the CIFAR-10 script: sigmoid).  Sign
    convention: the paper's heavy-ball one, as :class:`~pyhbnode.fields.models.GHBNODE`; the
    official code stores ``-m`` (``dh/dt = σ_h(-m)/…``, ``dm/dt = β₁(-f - m) + ξ₁ h``), the
    same family under ``m -> -m`` (for an odd ``σ_h``).  ``v`` is not flipped.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .coefficients import Damping, Restoring
from .models import VectorField
from .nets import activation, call_net

__all__ = ["NesterovNODE", "GNesterovNODE", "AdamNODE", "MomentInitialState"]


class GNesterovNODE(VectorField):
    """Generalised Nesterov neural ODE (see the module docstring for the equations).

    Args:
        f: the network.
        sign: ``s``, +1 or -1, the sign ``f`` enters with.
        xi: fixed ξ ≥ 0, or ``None`` for a learnable ``ξ = softplus(χ)`` (the authors'
            trainable ``corr``).
        chi: initial χ of the learnable ξ.
        sigma_h, sigma_f, sigma_m, sigma_dm: the activations σ_h (on ``m`` in ``da/dt``), σ_f
            (on ``f``), σ_m and σ_dm (inside and around ``db/dt``); names as
            :func:`~pyhbnode.fields.nets.activation` takes them, or modules.
        sigma_k: σ_k, applied to ``k(T)`` in the readout.
        sigma_out: σ_o, applied to both read-out channels.
    """

    order = 2

    def __init__(
        self,
        f: nn.Module,
        *,
        sign: int = 1,
        xi: float | None = None,
        chi: float = 0.0,
        sigma_h: str | nn.Module = "identity",
        sigma_f: str | nn.Module = "identity",
        sigma_m: str | nn.Module = "identity",
        sigma_dm: str | nn.Module = "identity",
        sigma_k: str | nn.Module = "identity",
        sigma_out: str | nn.Module = "identity",
    ) -> None:
        super().__init__(f)
        if sign not in (1, -1):
            raise ValueError(f"sign must be +1 or -1 (the sign f enters db/dt with), got {sign!r}")
        self.sign = int(sign)
        self.restoring = Restoring(xi, chi=chi)
        self.sigma_h, self.sigma_f = activation(sigma_h), activation(sigma_f)
        self.sigma_m, self.sigma_dm = activation(sigma_m), activation(sigma_dm)
        self.sigma_k, self.sigma_out = activation(sigma_k), activation(sigma_out)

    @property
    def xi(self) -> torch.Tensor:
        return self.restoring()

    def check_start(self, t0: float, name: str = "t0") -> None:
        """Refuse an interval starting at ``t0 <= 0``, where ``k(t) = t^{-3/2} e^{t/2}`` is singular."""
        if not t0 > 0:
            raise ValueError(
                f"{name}={t0:g}: {type(self).__name__} integrates the Nesterov system whose "
                "k(t) = t^(-3/2) e^(t/2) is singular at t = 0, so its interval must start at t > 0; "
                f"shift the interval, e.g. {name}=1 (the authors integrate over [1, 2])"
            )

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a, b = y[:, 0], y[:, 1]
        r = t**1.5 * torch.exp(-t / 2)  # 1/k(t)
        m = (1.5 * t.sqrt() * torch.exp(-t / 2) - 0.5 * r) * a + r * b
        force = self.sign * self.sigma_f(call_net(self.f, t, a))
        db = self.sigma_dm(self.sigma_m(force - m) - self.restoring() * a)
        return torch.stack([self.sigma_h(m), db], dim=1)

    def readout(self, ts: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """The authors' algebraic map from the integrated channels to ``(h, dh)``.

        ``ts``: ``(T,)`` times (all > 0); ``ys``: ``(T, batch, 2, *features)`` states at them.
        Returns the same shape: with ``k = σ_k(T^{-3/2} e^{T/2})``,
        ``h = σ_o(k·a)`` and ``dh = σ_o(k·(b - (3/2·T^{1/2} e^{-T/2} - 1/(2k))·h))``.
        The layers apply it to every output time but the initial one."""
        shape = (-1,) + (1,) * (ys.dim() - 2)  # broadcast over batch and features
        t = ts.to(ys.dtype).reshape(shape)
        k = self.sigma_k(t**-1.5 * torch.exp(t / 2))
        a, b = ys[:, :, 0], ys[:, :, 1]
        h = self.sigma_out(k * a)
        dh = self.sigma_out(k * (b - (1.5 * t.sqrt() * torch.exp(-t / 2) - 0.5 / k) * h))
        return torch.stack([h, dh], dim=2)


class NesterovNODE(GNesterovNODE):
    """Nesterov neural ODE: :class:`GNesterovNODE` with every σ the identity and ``ξ`` fixed
    (0 by default; the authors' frozen ``corr = -100`` is ``ξ = softplus(-100) ≈ 0``).
    State ``(batch, 2, *features)``."""

    def __init__(self, f: nn.Module, *, sign: int = 1, xi: float = 0.0) -> None:
        super().__init__(f, sign=sign, xi=xi)


_SECOND_MOMENT: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"softplus": F.softplus, "sigmoid": torch.sigmoid}


class AdamNODE(VectorField):
    """Adaptive-moment neural ODE (see the module docstring for the equations).

    State ``(batch, 3, *features)``: ``y[:, 0] = h``, ``y[:, 1] = m``, ``y[:, 2] = v``.

    Args:
        f: the network.
        beta1, beta2: fixed β₁, β₂, or ``None`` for learnable ``β = sigmoid(α)``.
        alpha1, alpha2: initial α₁, α₂ of the learnable forms (the authors' -5 and +5).
        xi1, xi2: fixed ξ₁, ξ₂ ≥ 0 (default 0: the authors' frozen ``corr = -100``), or
            ``None`` for learnable ``softplus(χ)``.
        chi1, chi2: initial χ of a learnable ξ.
        sigma_h: σ_h on ``m`` in ``dh/dt``.
        second_moment: φ, ``"softplus"`` (``base.py``) or ``"sigmoid"`` (their CIFAR-10 script).
        eps: the ``1e-8`` added to ``√φ(v)``.
    """

    order = 3

    def __init__(
        self,
        f: nn.Module,
        *,
        beta1: float | None = None,
        beta2: float | None = None,
        alpha1: float = -5.0,
        alpha2: float = 5.0,
        xi1: float | None = 0.0,
        xi2: float | None = 0.0,
        chi1: float = 0.0,
        chi2: float = 0.0,
        sigma_h: str | nn.Module = "identity",
        second_moment: str = "softplus",
        eps: float = 1e-8,
    ) -> None:
        super().__init__(f)
        for name, value in (("beta1", beta1), ("beta2", beta2)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] (a sigmoid's range) or None for learnable, got {value}")
        if second_moment not in _SECOND_MOMENT:
            raise ValueError(f"second_moment must be one of {sorted(_SECOND_MOMENT)}, got {second_moment!r}")
        # β = 1·sigmoid(α): the damping's learnable form with ε = 1.
        self.beta1, self.beta2 = Damping(beta1, omega=alpha1), Damping(beta2, omega=alpha2)
        self.restoring1, self.restoring2 = Restoring(xi1, chi=chi1), Restoring(xi2, chi=chi2)
        self.sigma_h = activation(sigma_h)
        self.second_moment = second_moment
        self.eps = float(eps)

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h, m, v = y[:, 0], y[:, 1], y[:, 2]
        force = call_net(self.f, t, h)
        dh = self.sigma_h(m) / (_SECOND_MOMENT[self.second_moment](v).sqrt() + self.eps)
        dm = self.beta1() * (force - m) - self.restoring1() * h
        dv = self.beta2() * (force**2 - v) + self.restoring2() * h
        return torch.stack([dh, dm, dv], dim=1)


class MomentInitialState(nn.Module):
    """AdamNODE's initial state from an input ``x`` ``(batch, C, *rest)``: ``[x, g, g²]``
    along dim 1, viewed as ``(batch, 3, width, *rest)`` (the authors' ``*_initial_velocity_adam``).

    Args:
        width: channels ``n`` of each of ``h``, ``m``, ``v``.
        net: maps ``x`` to ``g`` with ``(3·width - C) / 2`` channels, so that
            ``C + 2·channels(g) = 3·width``.  (The channels thus straddle the parts: with
            ``C < width`` the head of ``g`` completes ``h``, exactly as in their code.)
    """

    def __init__(self, width: int, net: nn.Module) -> None:
        super().__init__()
        self.width, self.net = int(width), net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f"x must be (batch, channels, ...), got shape {tuple(x.shape)}")
        g = self.net(x)
        channels = x.shape[1] + 2 * g.shape[1]
        if channels != 3 * self.width:
            raise ValueError(
                f"the AdamNODE initial state [x, g, g^2] needs 3 x width = {3 * self.width} channels, but x has "
                f"{x.shape[1]} and the network gives g {g.shape[1]} (total {channels}); the network must output "
                f"(3*width - C)/2 = {(3 * self.width - x.shape[1]) / 2:g} channels"
            )
        return torch.cat([x, g, g * g], dim=1).unflatten(1, (3, self.width))
