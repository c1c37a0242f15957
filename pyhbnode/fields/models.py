"""The five vector fields of the heavy-ball paper (the HBNODE paper).

Every field is an ``nn.Module`` with ``forward(t, y) -> dy/dt`` and an ``order``:

* first order (NODE, ANODE): ``y`` is ``h`` of shape ``(batch, *features)``;
* second order (SONODE, HBNODE, GHBNODE): ``y`` stacks two halves along dim 1,
  ``(batch, 2, *features)``, with ``y[:, 0] = h`` and ``y[:, 1]`` the velocity ``v``
  (SONODE) or momentum ``m`` ((G)HBNODE).

Sign convention: the paper's, ``dh/dt = σ(m)``, ``dm/dt = -γ m + f(h) - ξ h``.  The
authors' reference code stores ``-m`` instead (``dh/dt = -m`` with ``f`` negated); the two
are the same family under ``m -> -m``.

``f`` is any ``nn.Module`` mapping ``(batch, *features) -> (batch, *features)``
(SONODE: ``(batch, 2*C, ...) -> (batch, C, ...)``, the two halves concatenated along the
channel dimension).  A :class:`~pyhbnode.fields.nets.TimeModule` ``f`` also receives ``t``.
"""

from __future__ import annotations

import abc

import torch
from torch import nn

from .coefficients import Damping, Restoring
from .nets import activation, call_net

__all__ = ["VectorField", "NODE", "ANODE", "SONODE", "HBNODE", "GHBNODE"]


class VectorField(nn.Module, abc.ABC):
    """Base class of the five fields.  ``order`` is 1 or 2 (see module docstring)."""

    order: int = 1

    def __init__(self, f: nn.Module) -> None:
        super().__init__()
        if not isinstance(f, nn.Module):
            raise TypeError(f"f must be an nn.Module, got {type(f).__name__}")
        self.f = f

    @abc.abstractmethod
    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``dy/dt`` at time ``t`` (0-d tensor) and state ``y``."""

    def check_start(self, t0: float, name: str = "t0") -> None:
        """Raise ``ValueError`` if the field cannot be integrated from ``t0`` (named ``name``
        in the message).  Every time is valid for these five fields."""

    def readout(self, ts: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """The model's output at times ``ts`` ``(T,)`` from the solved states ``ys``
        ``(T, batch, *state)``; the layers apply it to every output time but the initial one.
        The solved state itself for these five fields (NesterovNODE maps it algebraically)."""
        return ys


class NODE(VectorField):
    """Neural ODE: ``dh/dt = f(h, t)``.  State ``(batch, *features)``."""

    order = 1

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return call_net(self.f, t, y)


class ANODE(NODE):
    """Augmented neural ODE: NODE dynamics on ``h = [x, 0_p]``.

    ``augment`` is the number ``p`` of zero channels appended to the input (dim 1) by
    :class:`~pyhbnode.fields.states.InitialState`; the dynamics are NODE's.
    """

    def __init__(self, f: nn.Module, augment: int) -> None:
        super().__init__(f)
        if augment < 0:
            raise ValueError(f"augment must be >= 0, got {augment}")
        self.augment = int(augment)


class SONODE(VectorField):
    """Second-order neural ODE: ``dh/dt = v``, ``dv/dt = f([h, v], t)``.

    State ``(batch, 2, C, *rest)``; ``f`` sees ``(batch, 2C, *rest)``.
    """

    order = 2

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        dv = call_net(self.f, t, y.flatten(1, 2))
        return torch.stack([y[:, 1], dv], dim=1)


class GHBNODE(VectorField):
    """Generalised heavy-ball neural ODE (eq. 15).

    ``dh/dt = σ(m)``, ``dm/dt = -γ m + f(h, t) - ξ h``; state ``(batch, 2, *features)``.

    Args:
        f: the network.
        gamma: fixed damping γ, or ``None`` for learnable ``γ = eps·sigmoid(ω)``.
        omega, eps: initial ω and scale ε of the learnable damping.
        xi: fixed ξ, or ``None`` for learnable ``ξ = softplus(χ)``.
        chi: initial χ of the learnable ξ (0 gives ξ = ln 2).
        sigma: ``"tanh"`` (default), ``"hardtanh"`` (clipped to [-5, 5]), ``"identity"``,
            or any module.
    """

    order = 2

    def __init__(
        self,
        f: nn.Module,
        *,
        gamma: float | None = None,
        omega: float = -3.0,
        eps: float = 1.0,
        xi: float | None = None,
        chi: float = 0.0,
        sigma: str | nn.Module = "tanh",
    ) -> None:
        super().__init__(f)
        self.damping = Damping(gamma, omega=omega, eps=eps)
        self.restoring = Restoring(xi, chi=chi)
        self.sigma = activation(sigma)

    @property
    def gamma(self) -> torch.Tensor:
        return self.damping()

    @property
    def xi(self) -> torch.Tensor:
        return self.restoring()

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h, m = y[:, 0], y[:, 1]
        dm = call_net(self.f, t, h) - self.damping() * m - self.restoring() * h
        return torch.stack([self.sigma(m), dm], dim=1)


class HBNODE(GHBNODE):
    """Heavy-ball neural ODE (eq. 10): ``dh/dt = m``, ``dm/dt = -γ m + f(h, t)``.

    GHBNODE with ``ξ = 0`` and ``σ = identity``.  State ``(batch, 2, *features)``.
    """

    def __init__(self, f: nn.Module, *, gamma: float | None = None, omega: float = -3.0, eps: float = 1.0) -> None:
        super().__init__(f, gamma=gamma, omega=omega, eps=eps, xi=0.0, sigma="identity")
